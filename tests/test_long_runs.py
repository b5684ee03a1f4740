"""Runs too long to keep every request: a sampled log, exact counts, sketched percentiles.

Sampling the per-request log does not touch the simulation (no random stream is involved),
so a run with a tiny log limit and the same run keeping everything must agree: counts
exactly, percentiles within the sketch's relative error (0.5 %, DDSketch's guarantee, against
the lower order statistic; numpy's default interpolation adds at most one neighbouring gap,
hence the 1 % tolerance).
"""

from __future__ import annotations

import pytest

from memstack_capacity import simulate
from memstack_capacity.engine.des import build
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario


def test_sampled_log_gives_the_same_figures(monkeypatch):
    data = pod_scenario(300.0, 0.004, processes=2, concurrency=4, replicas=2, duration=300.0, warmup=30.0)
    data["workload"]["requests"].append({"name": "slow", "weight": 0.2, "steps": [{"cpu": {"dist": "exponential", "mean": 0.02}}]})
    scenario = parse_scenario(data)
    full = simulate(scenario, seed=4).summary["requests"]
    monkeypatch.setattr(build, "REQUEST_LOG_LIMIT", 5000)
    sampled_result = simulate(scenario, seed=4)
    sampled = sampled_result.summary["requests"]
    assert sampled["log_every"] == 18 and full["log_every"] == 1  # ceil(90 000 / 5 000)
    assert len(sampled_result.requests) == pytest.approx(sampled_result.record.arrived / 18, abs=2)
    for key in ("completed", "failed", "errors"):
        assert sampled[key] == full[key]
    assert sampled["throughput_rps"] == full["throughput_rps"]
    for name in ("r", "slow"):
        assert sampled["by_class"][name]["completed"] == full["by_class"][name]["completed"]
    for stat in ("p50", "p95", "p99"):
        assert sampled["latency_s"][stat] == pytest.approx(full["latency_s"][stat], rel=0.01)
    assert sampled["latency_s"]["mean"] == pytest.approx(full["latency_s"]["mean"], rel=1e-9)
    assert sampled["latency_s"]["max"] == full["latency_s"]["max"]


def test_expected_requests_bounds_the_real_count():
    scenario = parse_scenario(pod_scenario(100.0, 0.001, duration=120.0, warmup=10.0))
    assert build.expected_requests(scenario) == pytest.approx(12_000)
    arrived = simulate(scenario, seed=1).record.arrived
    assert abs(arrived - 12_000) < 4 * 12_000**0.5


def test_pool_wait_percentiles_beyond_the_exact_limit(monkeypatch):
    """WaitStats keeps positive waits exactly up to a limit, then answers from the sketch."""
    import numpy as np

    from memstack_capacity.components.datastores import stats as datastores_stats

    rng = np.random.default_rng(2)
    waits = np.concatenate([np.zeros(3000), rng.exponential(0.1, 7000)])
    rng.shuffle(waits)
    exact, capped = datastores_stats.WaitStats(), None
    exact.measuring = True
    for w in waits.tolist():
        exact.add(w)
    monkeypatch.setattr(datastores_stats, "EXACT_WAITS_LIMIT", 100)
    capped = datastores_stats.WaitStats()
    capped.measuring = True
    for w in waits.tolist():
        capped.add(w)
    assert len(capped.positive) == 100
    for q in (50.0, 95.0, 99.0):
        assert capped.run_percentile(q) == pytest.approx(exact.run_percentile(q), rel=0.01)
    assert capped.run_percentile(10.0) == 0.0
