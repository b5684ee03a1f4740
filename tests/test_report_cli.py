"""The `manifests` and `capacity` commands' exit codes, and `run` writing the report."""

from __future__ import annotations

import yaml
from report_scenarios import BASE

from memstack_capacity.cli import main


def _write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_manifests_ok(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["manifests", _write(tmp_path, BASE), "--out", str(out)]) == 0
    assert (out / "api-deployment.yaml").exists() and "api-deployment.yaml" in capsys.readouterr().out


def test_manifests_bad_input(tmp_path):
    assert main(["manifests", str(tmp_path / "missing.yaml")]) == 2
    bad = dict(BASE, deployments={"api": BASE["deployments"]["api"], "w1": dict(BASE["deployments"]["api"]),
                                  "w2": dict(BASE["deployments"]["api"])})
    assert main(["manifests", _write(tmp_path, bad), "--out", str(tmp_path / "x")]) == 2


def test_capacity_exit_codes(tmp_path, capsys):
    assert main(["capacity", _write(tmp_path, BASE), "--rel-tol", "0.5", "--out", str(tmp_path / "c1")]) == 0
    assert "capacity:" in capsys.readouterr().out
    impossible = dict(BASE, targets={"latency_p99": {"max": "1ms"}})
    assert main(["capacity", _write(tmp_path, impossible, "i.yaml"), "--rel-tol", "0.5",
                 "--out", str(tmp_path / "c2")]) == 1
    assert main(["capacity", _write(tmp_path, BASE), "--replications", "0"]) == 2
    assert main(["capacity", _write(tmp_path, dict(BASE, targets={}), "n.yaml")]) == 2


def test_run_writes_report_plots_and_manifests(tmp_path):
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, BASE), "--out", str(out)]) == 0
    for name in ("report.md", "report.html", "plots/latency.png", "manifests/api-deployment.yaml"):
        assert (out / name).exists(), name
    assert (out / "report.md").read_text().splitlines()[2].startswith("**Targets")
