"""report.html in a real headless Chromium: no console errors, every image decodes, a screenshot.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from report_scenarios import scenario

from memstack_capacity import simulate
from memstack_capacity.outputs.report_files import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]

CATCH = """<script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const __err = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); __err(...a); };</script>"""

PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-ok', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  document.body.setAttribute('data-external', [...document.querySelectorAll('[src],[href]')]
    .filter(e => !/^(data:|#)/.test(e.getAttribute('src') || e.getAttribute('href'))).length);
  document.body.setAttribute('data-errors', window.__errors.length);
});</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_html_renders_in_chromium(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    write_report(simulate(scenario(**{"deployments.api.resources": {
        "requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}})), out)
    page = out / "report.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + CATCH).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = re.search(r'data-images="(\d+)"', dom.stdout)
    ok = re.search(r'data-images-ok="(\d+)"', dom.stdout)
    external = re.search(r'data-external="(\d+)"', dom.stdout)
    assert images and ok and external, dom.stdout[:500]
    assert int(images.group(1)) >= 3 and ok.group(1) == images.group(1) and external.group(1) == "0"
    assert 'data-errors="0"' in dom.stdout, "errors in the page's console"
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = out / "report-screenshot.png"
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                          "--window-size=1100,2400", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
