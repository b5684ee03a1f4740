"""The servers' throughput bound (results/bounds.py) that lets ``recommend`` rule points out unrun.

References: the utilisation law U = X·D ≤ c (Denning and Buzen, Computing Surveys 10(3), 1978;
the asymptotic bound X ≤ c / D, Lazowska et al., *Quantitative System Performance*, §5.2), and
for the heaviest share cut off a lognormal demand its partial expectation
E[D·1{D ≤ q(p)}] = E[D]·Φ(z(p) − σ).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.results import bounds
from memstack_capacity.results.bounds import DRAWS, EDGE, throughput_bound

SMALL = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"


def test_a_constant_demand_gives_cores_over_the_cut_demand_plus_the_edge_margin():
    # One class, one 10 ms query on 2 cores, 1 % errors allowed: the heaviest 1 % of requests cut to zero
    # leaves a mean of 9.9 ms, and no spread: 2 / 0.0099 × (1 + 1 %).
    sc = load_scenario(SMALL, {"workload.requests": [{"name": "q", "weight": 1, "memory": "1Mi", "steps": [
        {"call": "postgres", "time": {"dist": "constant", "mean": "10ms"}}]}], "datastores.postgres.cores": 2})
    b = throughput_bound(sc)
    assert b.store == "postgres"
    assert b.rps == pytest.approx(2 / 0.0099 * (1 + EDGE), rel=1e-9)


def test_the_cut_mean_of_a_lognormal_demand_is_its_partial_expectation():
    sc = load_scenario(SMALL, {"workload.requests": [{"name": "q", "weight": 1, "memory": "1Mi", "steps": [
        {"call": "postgres", "time": {"dist": "lognormal", "mean": "4ms", "cv": 1.2}}]}]})
    bounds._cut_demand.cache_clear()
    mean, sd = bounds._cut_demand(sc.workload.model_dump_json(), ("call", "postgres"), 0.01)
    sigma = math.sqrt(math.log1p(1.2**2))
    exact = 0.004 * NormalDist().cdf(NormalDist().inv_cdf(0.99) - sigma)
    # The draws' mean: its standard error is sd / √DRAWS ≈ 0.27 % of the mean; 4 of them.
    assert mean == pytest.approx(exact, rel=4 * 1.2 / math.sqrt(DRAWS))
    assert sd == pytest.approx(0.004 * 1.2, rel=0.05)


def test_no_error_target_or_no_throughput_target_means_no_bound():
    sc = load_scenario(SMALL)
    assert throughput_bound(sc.with_overrides({"targets.error_rate": None})) is None
    assert throughput_bound(sc.with_overrides({"targets.throughput_rps": None})) is None
    assert throughput_bound(sc) is not None


def test_no_run_of_a_saturated_server_passes_the_bound_and_the_bound_is_near():
    """small.yaml's PostgreSQL at one core under 2000 users (2.2 ms of queries a request, so about
    450 req/s): over five seeds every run's throughput is under the bound, and within 10 % of it,
    so the bound is both safe and worth having."""
    sc = load_scenario(SMALL, {"datastores.postgres.cores": 1, "deployments.api.replicas": 4,
                               "deployments.api.processes": 2, "duration": "60s", "warmup": "10s",
                               "workload.users.profile": [{"at": "0s", "users": 2000}],
                               "targets.throughput_rps.min": 300})
    b = throughput_bound(sc)
    assert b.store == "postgres"
    runs = [simulate(sc, seed=s).summary["requests"]["throughput_rps"] for s in range(1, 6)]
    assert max(runs) <= b.rps, (runs, b)
    assert min(runs) >= 0.9 * b.rps, (runs, b)


def test_a_passing_runs_cpu_usage_is_at_least_the_work_the_targets_imply():
    """api_cpu_work: small.yaml (60 users, ≈ 59 req/s against a target of 50 req/s, 1 % errors
    allowed): in every run that meets the targets the API's measured CPU in the window is at least
    the bound, and the bound is not loose beyond the load's own ratio (59/50) and its margins."""
    from memstack_capacity.results.bounds import api_cpu_work

    sc = load_scenario(SMALL)
    work = api_cpu_work(sc)
    warmup = float(sc.warmup)
    for seed in range(1, 4):
        r = simulate(sc, seed=seed)
        assert r.summary["met"]
        cores = r.series["api/cpu_cores"]
        used = float(cores[cores.index > warmup].sum() * float(sc.sample_interval))
        assert work <= used <= 1.4 * work, (work, used)


def test_the_passing_cost_floor_adds_the_cpu_work_beyond_the_requests():
    """api/recommend.passing_cost_floor on peak.yaml: the throughput target (900 req/s) needs about
    5 cores of API CPU for the 55-minute window, above the 3 pods × 500m the HPA's floor requests:
    the floor rises by that CPU at the OpenCost core-hour price, and stays below a passing run's cost
    (985 per month for Neo4j 24 / PostgreSQL 8 cores, docs/performance.md)."""
    from memstack_capacity.api.recommend import cost_floor, passing_cost_floor
    from memstack_capacity.results.bounds import api_cpu_work

    sc = load_scenario(SMALL.parent / "peak.yaml", {"datastores.neo4j.cores": 24, "datastores.postgres.cores": 8})
    work = api_cpu_work(sc)
    window = float(sc.duration) - float(sc.warmup)
    assert 4.0 < work / window < 6.0
    extra = (work - 3 * 0.5 * window) / float(sc.duration) * 0.031611 * 730
    assert passing_cost_floor(sc) == pytest.approx(cost_floor(sc) + extra, rel=1e-9)
    assert cost_floor(sc) < passing_cost_floor(sc) < 985


def test_a_server_made_faster_by_an_event_has_no_bound_and_pod_events_void_the_cpu_floor():
    """A datastore_slowdown with a factor below 1 runs the server above its cores: the law no longer
    caps it, so that server gives no bound. Events that delete pods take usage out of the bill
    without a limit on how many, so the passing floor's CPU term is dropped."""
    from memstack_capacity.results.bounds import api_cpu_work

    sc = load_scenario(SMALL)
    faster = sc.with_overrides({"events": [{"at": "10s", "datastore_slowdown": {
        "datastore": "postgres", "factor": 0.5, "duration": "30s"}}]})
    slower = sc.with_overrides({"events": [{"at": "10s", "datastore_slowdown": {
        "datastore": "postgres", "factor": 2, "duration": "30s"}}]})
    assert throughput_bound(faster) is None
    assert throughput_bound(slower) == throughput_bound(sc)
    killed = sc.with_overrides({"events": [{"at": "10s", "pod_kill": {"deployment": "api"}}]})
    assert api_cpu_work(sc) > 0 and api_cpu_work(killed) is None
