"""report.html in a real headless Chromium, on a short run of ``scenarios/peak.yaml`` (every figure).

The page is opened once, in a 1100 × 900 window, with a probe script added; the tests read
what the probe saw: every interactive figure drawn (a plotly graph with an SVG and its
series), no errors in the console, nothing fetched from outside the file, and the first
screen naming the binding constraint. A screenshot of the first screen is taken too.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.outputs import plots
from memstack_capacity.outputs.report_files import write_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]
WIDTH, HEIGHT = 1100, 900

CATCH = """<script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const __err = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); __err(...a); };</script>"""

#: After load (and a moment for plotly), what the page shows, as JSON in ``body[data-probe]``.
PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  const graphs = [...document.querySelectorAll('.js-plotly-plot')];
  const binding = [...document.querySelectorAll('h2')]
    .find(h => h.textContent.trim().startsWith('Binding constraint'));
  const external = [...document.querySelectorAll('[src],[href]')]
    .map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !/^(data:|#|blob:)/.test(u));
  const fetched = performance.getEntriesByType('resource').map(e => e.name).filter(u => !/^(data:|blob:)/.test(u));
  document.body.setAttribute('data-probe', JSON.stringify({
    graphs: graphs.length,
    drawn: graphs.filter(g => g.querySelector('svg.main-svg') && g.querySelector('.scatterlayer .trace')).length,
    images: document.images.length,
    images_ok: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
    external: external.concat(fetched),
    errors: window.__errors,
    viewport: [window.innerWidth, window.innerHeight],
    binding_top: binding ? binding.getBoundingClientRect().top + window.scrollY : null,
  }));
}, 1000));</script>"""


def _short_peak():
    return load_scenario(ROOT / "scenarios" / "peak.yaml").with_overrides({"duration": "2m", "warmup": "30s"})


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *args],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """(report.html, the figures the run has, what the probe saw, Chromium's stderr, the output directory)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    base = tmp_path_factory.mktemp("browser")
    out = base / "report"
    out.mkdir()
    result = simulate(_short_peak(), seed=1)
    write_report(result, out)
    page = out / "report.html"
    probed = base / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CATCH, 1)
                      .replace("</body>", PROBE + "</body>"), encoding="utf-8")  # fmt: skip
    dom = _chromium(base / "profile", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found, dom.stdout[-1000:]
    return page, list(plots.all_figures(result)), json.loads(html.unescape(found.group(1))), dom.stderr, out


@pytest.mark.browser
def test_every_interactive_figure_is_drawn(opened):
    page, figures, probe, _, _ = opened
    assert len(figures) == 5  # latency, replicas, utilisation, datastores, jobs: peak.yaml has them all
    assert probe["graphs"] == probe["drawn"] == len(figures), probe
    assert probe["images_ok"] == probe["images"], probe
    assert page.read_text(encoding="utf-8").count("* plotly.js v") == 1  # embedded once, not once per figure


@pytest.mark.browser
def test_no_console_errors(opened):
    _, _, probe, stderr, _ = opened
    assert probe["errors"] == [], probe["errors"]
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console


@pytest.mark.browser
def test_nothing_is_loaded_from_outside_the_file(opened):
    page, _, probe, _, _ = opened
    assert probe["external"] == [], probe["external"]
    text = page.read_text(encoding="utf-8")
    assert text.count("<script") == 2 and "<script src" not in text and "<link" not in text
    # The report's own text and figures name no web address (plotly.js itself mentions a few, and loads none).
    without_plotly = re.sub(r"<script>/\*\*\n\* plotly\.js v.*?</script>", "", text, count=1, flags=re.S)
    assert "http://" not in without_plotly and "https://" not in without_plotly


@pytest.mark.browser
def test_the_first_screen_names_the_binding_constraint(opened):
    """The heading's top lies within the first 900 px of the page laid out 1100 px wide.

    Under ``--dump-dom`` Chromium keeps part of the 1100 × 900 window for toolbars it does not
    draw (the viewport is 1100 × 757), so the heading's offset from the top of the page is
    compared with the 900 px screen; nothing in the layout depends on the viewport's height.
    """
    _, _, probe, _, _ = opened
    assert probe["viewport"][0] == WIDTH, probe["viewport"]
    assert probe["binding_top"] is not None, "no <h2> beginning 'Binding constraint'"
    assert 0 <= probe["binding_top"] < HEIGHT, probe["binding_top"]


@pytest.mark.browser
def test_a_screenshot_of_the_first_screen(opened):
    page, _, _, _, out = opened
    shot = out / "report-screenshot.png"
    run = _chromium(out.parent / "profile", f"--screenshot={shot}", "--virtual-time-budget=10000", page.as_uri())
    assert run.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
