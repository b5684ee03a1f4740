"""The fluid mode against the discrete-event engine and the closed forms (docs/fluid.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memstack_capacity.api import simulate
from memstack_capacity.engine import fluid_pods
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario, parse_scenario
from memstack_capacity.theory import mmc

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _fluid_requests(result) -> dict:
    return result.record.extras["fluid_summary"]["requests"]


def _single_tier(processes: int, concurrency: int, rps: float, cpu: float = 0.01, cores: str = "4") -> object:
    return parse_scenario({
        "name": "one-tier", "duration": "10m", "warmup": "1m", "sample_interval": "5s",
        "workload": {"arrivals": {"profile": [{"at": "0s", "rps": rps}]},
                     "requests": [{"name": "r", "weight": 1, "steps": [{"cpu": {"dist": "exponential", "mean": cpu}}]}]},
        "deployments": {"api": {"replicas": 1, "processes": processes, "concurrency": concurrency,
                                "resources": {"requests": {"cpu": "1", "memory": "512Mi"},
                                              "limits": {"cpu": cores, "memory": "2Gi"}}}},
    }, "one-tier")


@pytest.fixture(scope="module")
def flash():
    sc = load_scenario(SCENARIOS / "flash-crowd.yaml")
    return simulate(sc), simulate(sc, mode="fluid")


def test_mmc_single_tier_is_exact():
    # processes 3, concurrency 1, exponential CPU: an M/M/3 pod; mean and percentiles in closed form
    result = simulate(_single_tier(3, 1, rps=240.0), mode="fluid")
    req = _fluid_requests(result)
    ref = mmc(240.0, 100.0, 3)
    assert req["latency_s"]["mean"] == pytest.approx(ref.w_s, rel=1e-9)
    assert req["throughput_rps"] == pytest.approx(240.0, rel=1e-9)
    # P(T > p99) = 0.01 for T = S + W (S ~ Exp(μ), W = 0 w.p. 1 - C, else Exp(cμ - λ))
    t, mu, theta = req["latency_s"]["p99"], 100.0, 3 * 100.0 - 240.0
    tail = (1 - ref.p_wait) * np.exp(-mu * t) + ref.p_wait * (theta * np.exp(-mu * t) - mu * np.exp(-theta * t)) / (theta - mu)
    assert tail == pytest.approx(0.01, rel=1e-6)
    assert req["latency_s"]["p50"] < req["latency_s"]["p95"] < t


def test_processor_sharing_pod_mean_and_no_percentiles():
    # one process, concurrency 100: M/M/1-PS, T = D / (1 - ρ); percentiles have no closed form here
    result = simulate(_single_tier(1, 100, rps=70.0), mode="fluid")
    req = _fluid_requests(result)
    assert req["latency_s"]["mean"] == pytest.approx(0.01 / (1 - 0.7), rel=1e-9)
    assert req["latency_s"]["p99"] is None
    assert any("percentiles" in c.lower() for c in result.record.extras["fluid"]["caveats"])


def test_single_tier_matches_des():
    sc = _single_tier(2, 1, rps=150.0)
    des, flu = simulate(sc).summary["requests"], _fluid_requests(simulate(sc, mode="fluid"))
    assert flu["throughput_rps"] == pytest.approx(des["throughput_rps"], rel=0.05)
    assert flu["latency_s"]["mean"] == pytest.approx(des["latency_s"]["mean"], rel=0.10)


def test_small_scenario_matches_des():
    sc = load_scenario(SCENARIOS / "small.yaml")
    des, flu = simulate(sc).summary["requests"], _fluid_requests(simulate(sc, mode="fluid"))
    assert flu["throughput_rps"] == pytest.approx(des["throughput_rps"], rel=0.10)
    assert flu["latency_s"]["mean"] == pytest.approx(des["latency_s"]["mean"], rel=0.10)
    assert flu["error_rate"] == pytest.approx(0.0, abs=1e-6)


def test_flash_crowd_replicas_and_throughput_follow_des(flash):
    des, flu = flash
    a, b = des.series, flu.series
    times = a.index.intersection(b.index)
    diff = (a.loc[times, "api/replicas_desired"] - b.loc[times, "api/replicas_desired"]).abs()
    assert (diff <= 1).mean() >= 0.8
    assert _fluid_requests(flu)["throughput_rps"] == pytest.approx(des.summary["requests"]["throughput_rps"], rel=0.10)
    # steady state before the crowd (1 min .. 2 min): mean latency within 10 %
    quiet = [t for t in times if 60 < t <= 120]
    lat_des = a.loc[quiet, "ingress/latency_mean_s"].mean()
    lat_flu = b.loc[quiet, "ingress/latency_mean_s"].mean()
    assert lat_flu == pytest.approx(lat_des, rel=0.10)


def test_hpa_decisions_go_through_reconcile(flash, monkeypatch):
    des, flu = flash
    assert len(flu.scaling) > 0
    assert {"t_s", "deployment", "desired_replicas", "reason", "cpu_utilization_pct"} <= set(flu.scaling.columns)
    assert set(flu.scaling.columns) <= set(des.scaling.columns)  # the DES adds memory_error while workers crash-loop
    calls = []
    real = fluid_pods.reconcile

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(fluid_pods, "reconcile", spy)
    sc = load_scenario(SCENARIOS / "flash-crowd.yaml").with_overrides({"duration": "2m"})
    result = simulate(sc, mode="fluid")
    assert len(calls) == len(result.scaling) > 0
    assert calls[0] == pytest.approx(1.0)  # the DES controller's phase: 1 s after the first scrape


def test_fluid_writes_the_monitor_series(flash):
    des, flu = flash
    for key in ("api/replicas_desired", "api/pods_ready", "api/cpu_utilization", "api/memory_utilization",
                "ingress/throughput_rps", "ingress/error_rate", "neo4j/utilization", "postgres/connections_in_use"):
        assert key in flu.series.columns and key in des.series.columns
    assert len(flu.record.recorder.requests) == 0
    assert flu.record.extras["mode"] == "fluid"


def test_unsupported_events_are_rejected():
    sc = load_scenario(SCENARIOS / "node-loss.yaml")
    with pytest.raises(ScenarioError, match="not supported in fluid mode"):
        simulate(sc, mode="fluid")


def test_week_follows_the_diurnal_profile():
    """A week at up to 10 000 req/s (its wall time is in benchmarks/, not asserted here)."""
    sc = load_scenario(SCENARIOS / "week.yaml")
    result = simulate(sc, mode="fluid")
    req = _fluid_requests(result)
    assert req["throughput_rps"] > 4000
    replicas = result.series["api/replicas_desired"]
    assert replicas.max() > 3 * replicas.min()  # the HPA follows the diurnal profile
    assert len(result.scaling) == pytest.approx(sc.duration / sc.cluster.hpa_sync_period, abs=1)


def test_fluid_run_writes_its_figures_into_the_summary(tmp_path, capsys):
    """`run --mode fluid`: summary.json carries the flow model's request figures and says
    which targets it cannot judge (no percentiles for a multi-tier chain)."""
    import json
    from pathlib import Path

    from memstack_capacity.cli import main

    small = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"
    assert main(["run", str(small), "--mode", "fluid", "--out", str(tmp_path / "f")]) == 0
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["mode"] == "fluid"
    # 60 users, 1 s think, ~10 ms response: the machine-repairman throughput is ~59 req/s.
    assert summary["requests"]["throughput_rps"] == pytest.approx(59, rel=0.05)
    p99 = next(v for v in summary["targets"] if v["name"] == "latency_p99")
    assert p99["met"] is False and "fluid mode" in p99["note"]
    assert "caveat:" in capsys.readouterr().out
