"""Every bundled scenario validates and runs, with assertions on what it produces.

``peak.yaml`` is an hour at ~1000 users; the test runs its first seven minutes (the ramp
from 200 users towards 1200) so the suite stays fast, and checks the parts it exercises.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.cli import main
from tests.factory import assert_conservation

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_scenario_validates(path, capsys):
    assert main(["validate", str(path)]) == 0


def test_small_scenario_meets_its_targets(tmp_path):
    result = simulate(load_scenario(SCENARIOS / "small.yaml"))
    assert_conservation(result)
    summary = result.summary
    # 60 users, 1 s think, ~15 ms response: throughput ≈ 60 / 1.015 ≈ 59 req/s (machine repairman).
    assert summary["requests"]["throughput_rps"] == pytest.approx(59, rel=0.05)
    assert summary["met"] is True
    assert summary["datastores"]["postgres"]["refused"] == 0
    assert main(["run", str(SCENARIOS / "small.yaml"), "--out", str(tmp_path / "small")]) == 0
    for name in ("summary.json", "timeseries.csv", "requests.csv.gz", "scaling.csv", "report.md", "report.html"):
        assert (tmp_path / "small" / name).exists(), name


def test_peak_ramp_scales_the_api_and_shows_the_datastores():
    scenario = load_scenario(SCENARIOS / "peak.yaml").with_overrides({"duration": "7m", "warmup": "1m"})
    result = simulate(scenario)
    assert_conservation(result)
    summary = result.summary
    api = summary["deployments"]["api"]
    assert api["replicas"]["min"] >= 3 and api["replicas"]["max"] > 3, api["replicas"]
    assert (result.scaling.deployment == "api").sum() >= 25  # a decision every 15 s for 7 minutes
    assert result.scaling.query("deployment == 'api' and rescaled").shape[0] >= 1
    assert {"postgres", "neo4j", "embeddings"} <= set(summary["datastores"])
    assert summary["datastores"]["postgres"]["budget"]["fits"] is False
    # 100 activity slots × 64Mi per episode on a 2Gi limit: the workers are OOMKilled as the backlog floods them.
    assert summary["deployments"]["worker"]["oom_kills"] > 0


def test_run_with_replications_writes_intervals(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["run", str(SCENARIOS / "small.yaml"), "--replications", "2", "--workers", "1", "--out", str(out)]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["replications"] == 2 and summary["seeds"] == [7, 8]
    lo, hi = summary["requests"]["throughput_rps_ci95"]
    assert lo <= summary["requests"]["throughput_rps"] <= hi
    assert "2 replications" in capsys.readouterr().out
    assert main(["run", str(SCENARIOS / "small.yaml"), "--replications", "0"]) == 2
