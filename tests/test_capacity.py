"""The capacity search against a known answer: one M/M/1 pod and a mean-latency target.

One pod, one process, concurrency 1, exponential CPU demand of 10 ms (μ = 100/s):
an M/M/1 queue, whose mean response time is W = 1/(μ − λ). With the target
W ≤ 50 ms the largest rate is λ* = μ − 1/0.05 = 80 req/s (checked with
``theory.mmc``); the scenario's base rate is 40 req/s, so the answer is ×2.

Tolerance: 270 s measured at ~80 req/s is ~21 600 requests; the M/M/1 mean
response time at ρ = 0.8 then has a standard error of about 6 % of W (the
asymptotic variance of the sample mean, ≈ ρ(2+5ρ−4ρ²+ρ³)/(1−ρ)⁴ / μ² per request,
inflated by the sample correlation). W = 1/(μ − λ) moves 1 % per 0.4 req/s near
λ*, so ±6 % of W is about ±2.5 % of λ*. The search stops at a 2 % bracket, so
the bracket must lie within 80 ± 6 % (two standard errors plus the bracket).
"""

from __future__ import annotations

import pytest
from report_scenarios import scenario

from memstack_capacity.api.capacity import find_capacity, scale_load
from memstack_capacity.theory.queueing import mmc

MU, TARGET_W, BASE_RPS = 100.0, 0.05, 40.0


def mm1_scenario():
    return scenario(
        duration="300s", warmup="30s",
        **{"workload.arrivals.profile": [{"at": 0, "rps": BASE_RPS}],
           "workload.requests": [{"name": "r", "weight": 1, "steps": [{"cpu": {"dist": "exponential", "mean": "10ms"}}]}],
           "deployments.api.replicas": 1, "deployments.api.concurrency": 1,
           "targets": {"latency_mean": {"max": f"{TARGET_W}s"}}},
    )  # fmt: skip


def test_theory_answer():
    assert mmc(80.0 - 1e-9, MU).w_s == pytest.approx(TARGET_W, rel=1e-6)


def test_search_brackets_the_mm1_capacity():
    result = find_capacity(mm1_scenario(), replications=1, seed=11, rel_tol=0.02)
    assert result.found and result.mode == "rps" and result.hi is not None
    best = MU - 1 / TARGET_W
    assert 0.94 * best <= result.lo.load < result.hi.load <= 1.06 * best
    assert result.hi.load / result.lo.load <= 1.02 + 1e-9
    assert "bracket: passes at" in result.describe()


def test_no_load_passes():
    sc = mm1_scenario().model_copy(update={"targets": mm1_scenario().targets.model_copy(
        update={"latency_mean": mm1_scenario().targets.latency_mean.model_copy(update={"max": 0.001})})})
    result = find_capacity(sc, rel_tol=0.5, min_multiplier=0.25)
    assert not result.found and "no load passes" in result.describe()


def test_scale_load_users_and_rps():
    open_sc = scale_load(mm1_scenario(), 1.5)
    assert open_sc.workload.arrivals.profile[0].rps == pytest.approx(60.0)
    closed = scenario(**{"workload.arrivals": None, "workload.users": {
        "profile": [{"at": 0, "users": 10}, {"at": 60, "users": 30}], "think_time": {"dist": "exponential", "mean": "1s"}}})
    scaled = scale_load(closed, 1.5)
    assert [p.users for p in scaled.workload.users.profile] == [15, 45]


def test_search_needs_targets():
    with pytest.raises(ValueError, match="no targets"):
        find_capacity(scenario(targets={}))


def test_the_confidence_is_the_clopper_pearson_bound_the_closed_form_gave():
    from memstack_capacity.api.capacity import clopper_pearson_lower

    for k in (1, 2, 3, 10, 50):
        assert clopper_pearson_lower(k, k) == pytest.approx(0.05 ** (1 / k), rel=1e-12)
    assert clopper_pearson_lower(0, 5) == 0.0
    assert 0 < clopper_pearson_lower(4, 5) < clopper_pearson_lower(5, 5)
