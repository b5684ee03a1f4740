"""The compiled data plane (engine/fast) against the general engine, the reference.

The compiled loop is the general engine's model written again over arrays; it draws its random
numbers in another order, so a run is another sample of the same model. Each scenario here
runs on both engines over five seeds and every compared figure (tests/agreement.py: the
headline, each class's throughput and latency, each datastore's utilisation, pool waits,
connections, timeouts, refusals, rate limits) must agree within 4 combined standard errors.
The scenarios are chosen to drive every path of the loop: pool waits and timeouts, overflow
connections opened and closed, refused connections at ``max_connections``, ``pool_recycle``
and ``pool_pre_ping``, the Neo4j driver's pool, external APIs' semaphores, rate limits and
retries, parallel branches, backlog 503s, client 504s, user retries and a changing population.
The queueing-theory checks (tests/test_engine_theory.py) also run on this engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.engine import capabilities
from memstack_capacity.scenario.load import parse_scenario
from tests.agreement import TRAJECTORY_SHARE, disagreements, figure_disagreements, series_means, trajectory_share
from tests.factory import assert_conservation, closed_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SEEDS = range(1, 6)


def _both(scenario):
    des = [simulate(scenario, seed=s, engine="des") for s in SEEDS]
    fast = [simulate(scenario, seed=s, engine="fast") for s in SEEDS]
    assert {r.record.engine for r in fast} == {"fast"}
    for r in fast:
        assert_conservation(r)
    return des, fast


def _pressure(**changes) -> dict:
    """Closed users whose requests query PostgreSQL through small pools, Neo4j in parallel
    branches and a rate-limited external API: waits, overflow, timeouts and 429s all happen."""
    data = closed_scenario(60, 0.25, 0.004, duration=240.0, warmup=30.0, replicas=3, concurrency=12, backlog=4)
    data["workload"]["timeout"] = 2.0
    data["workload"]["users"]["profile"] = [{"at": 0, "users": 60}, {"at": 120, "users": 100}, {"at": 200, "users": 80}]
    data["workload"]["users"]["retry"] = {"attempts": 2, "backoff": 0.2}
    data["workload"]["requests"] = [
        {"name": "read", "weight": 0.6, "memory": "1Mi", "steps": [
            {"call": "postgres", "repeat": 2, "time": {"dist": "lognormal", "mean": 0.004, "cv": 0.8}},
            {"cpu": {"dist": "exponential", "mean": 0.003}},
            {"parallel": [{"call": "neo4j", "time": {"dist": "exponential", "mean": 0.01}},
                          {"call": "neo4j", "time": {"dist": "exponential", "mean": 0.006}}]},
        ]},
        {"name": "enrich", "weight": 0.4, "memory": "2Mi", "steps": [
            {"call": "postgres", "time": {"dist": "lognormal", "mean": 0.01, "cv": 0.5}, "write": True},
            {"external": "llm"},
            {"cpu": {"dist": "gamma", "mean": 0.004, "cv": 0.5}},
        ]},
    ]
    data["datastores"] = {
        "postgres": {"kind": "postgresql", "max_connections": 8, "cores": 4,
                     "pool": {"pool_size": 1, "max_overflow": 1, "pool_timeout": 0.02, "pool_pre_ping": True,
                              "pool_recycle": 20}},
        "neo4j": {"kind": "neo4j", "cores": 4,
                  "pool": {"max_connection_pool_size": 6, "connection_acquisition_timeout": 0.2}},
        "llm": {"kind": "external", "latency": {"dist": "lognormal", "mean": 0.08, "cv": 0.6}, "concurrency": 3,
                "rate_limit": "5400/min", "retries": 1, "retry_backoff": 0.05},
    }
    data.update(changes)
    return data


def _autoscaled_pressure() -> dict:
    """The pressure scenario under an HPA with probes, in containers whose memory limit the
    requests in flight can pass: OOMKills, restarts with back-off, pods coming and going."""
    data = _pressure(duration=400.0, warmup=60.0)
    api = data["deployments"]["api"]
    api.update({"replicas": 2, "image_pull": "3s", "startup": "4s", "memory_base": "110Mi",
                "readinessProbe": {"initialDelaySeconds": 2, "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 2},
                "livenessProbe": {"initialDelaySeconds": 10, "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3}})
    api["resources"]["requests"]["memory"], api["resources"]["limits"]["memory"] = "110Mi", "130Mi"
    api["hpa"] = {"minReplicas": 2, "maxReplicas": 8, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]}
    data["workload"]["users"]["profile"] = [{"at": 0, "users": 40}, {"at": 150, "users": 120}, {"at": 300, "users": 60}]
    return data


def test_the_pressure_scenario_can_run_on_the_compiled_data_plane_and_drives_every_path():
    scenario = parse_scenario(_pressure())
    assert capabilities.choose(scenario).engine == "fast"
    result = simulate(scenario, seed=1, engine="fast")
    s = result.summary
    pg, neo, llm = s["datastores"]["postgres"], s["datastores"]["neo4j"], s["datastores"]["llm"]
    assert pg["pool_timeouts"] > 0 and pg["overflow_closed"] > 0 and pg["pool_wait_s"]["p99"] > 0
    assert pg["refused"] > 0  # 3 pods × 2 connections > 8 − 3
    assert neo["pool_waiters_mean"] > 0
    assert llm["rate_limited"] > 0 and llm["failed"] > 0
    assert s["requests"]["errors"]["500"] > 0 and s["requests"]["errors"]["503"] > 0


def test_the_compiled_data_plane_agrees_with_the_general_engine_under_pressure():
    des, fast = _both(parse_scenario(_pressure()))
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []


def test_the_compiled_data_plane_agrees_with_the_general_engine_with_oomkills_probes_and_an_hpa():
    scenario = parse_scenario(_autoscaled_pressure())
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    assert all(r.record.deployments["api"].oom_kills > 0 for r in des + fast)  # the path is taken
    assert all(r.summary["requests"]["errors"]["502"] > 0 for r in fast)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    oom = [[r.record.deployments["api"].oom_kills for r in runs] for runs in (des, fast)]
    restarts = [[r.record.deployments["api"].restarts for r in runs] for runs in (des, fast)]
    assert sum(oom[0]) == pytest.approx(sum(oom[1]), rel=0.2) and sum(restarts[0]) == pytest.approx(sum(restarts[1]), rel=0.2)


def test_the_compiled_data_plane_agrees_with_the_general_engine_on_an_autoscaled_ramp():
    """day.yaml's API tier (HPA, probes) under a ramp: replicas within one pod on ≥ 95 % of samples."""
    from tests.test_engine_agreement import _day_ramp

    scenario = _day_ramp()
    des, fast = _both(scenario)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    replicas = [r.series["api/replicas_desired"].to_numpy() for r in des]
    assert max(r.max() for r in replicas) > min(r.min() for r in replicas)  # the HPA did scale
    share = trajectory_share(replicas, [r.series["api/replicas_desired"].to_numpy() for r in fast])
    assert share >= TRAJECTORY_SHARE


def test_the_compiled_data_plane_agrees_with_the_general_engine_on_small_yaml():
    scenario = load_scenario(SCENARIOS / "small.yaml")
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    means = [series_means(r.series) for r in des]
    assert "series postgres/utilization" in means[0]
    assert figure_disagreements(means, [series_means(r.series) for r in fast]) == []


@pytest.mark.slow
@pytest.mark.parametrize("name, duration", [("flash-crowd.yaml", None), ("peak.yaml", "10m")])
def test_the_compiled_data_plane_agrees_with_the_general_engine_on_the_bundled_scenarios(name, duration):
    """The worker tier (Temporal's queue, OOMKilled workers crash-looping, retries at the
    start-to-close timeout), both HPAs, probes, a traffic spike: every figure within 4 combined
    SE, both trajectories within one replica on ≥ 95 % of the samples. (peak.yaml is cut to its
    first ten minutes here, the ramp and the first crash loops; the whole hour is measured in
    docs/performance.md.)"""
    scenario = load_scenario(SCENARIOS / name)
    if duration is not None:
        scenario = scenario.with_overrides({"duration": duration})
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    assert figure_disagreements([series_means(r.series) for r in des], [series_means(r.series) for r in fast]) == []
    for dep in scenario.deployments:
        replicas = [r.series[f"{dep}/replicas_desired"].to_numpy() for r in des]
        share = trajectory_share(replicas, [r.series[f"{dep}/replicas_desired"].to_numpy() for r in fast])
        assert share >= TRAJECTORY_SHARE, dep
    assert all(r.record.deployments["worker"].oom_kills > 0 for r in fast)  # the crash loop is taken
    assert all(r.summary["jobs"]["totals"]["crashes"] > 0 for r in fast)


def test_the_series_have_the_general_engines_names_and_times():
    scenario = load_scenario(SCENARIOS / "small.yaml")
    des, fast = simulate(scenario, seed=3, engine="des"), simulate(scenario, seed=3, engine="fast")
    assert list(fast.series.columns) == list(des.series.columns)
    assert fast.series.index.equals(des.series.index)
    a, b = des.series["ingress/throughput_rps"].mean(), fast.series["ingress/throughput_rps"].mean()
    assert b == pytest.approx(a, rel=0.03)


def test_a_run_is_the_same_bit_for_bit_with_the_same_seed():
    scenario = parse_scenario(_pressure(duration=60.0, warmup=10.0))
    a, b = simulate(scenario, seed=4, engine="fast"), simulate(scenario, seed=4, engine="fast")
    assert a.requests.equals(b.requests) and a.series.equals(b.series) and a.summary == b.summary


def test_the_oracle_catches_a_slower_database_on_the_compiled_data_plane():
    """The comparison can fail: PostgreSQL at half its cores is caught."""
    base = parse_scenario(_pressure())
    data = _pressure()
    data["datastores"]["postgres"]["cores"] = 1
    des = [simulate(base, seed=s, engine="des").summary for s in SEEDS]
    fast = [simulate(parse_scenario(data), seed=s, engine="fast").summary for s in SEEDS]
    assert any(d.startswith("postgres.utilization_mean") for d in disagreements(des, fast))
