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


def _assert_agree(des, fast, deployments=("api",)) -> None:
    """The oracle (tests/agreement.py): every summary figure and series mean within 4 combined SE,
    each deployment's desired replicas within one on ≥ 95 % of the samples."""
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    assert figure_disagreements([series_means(r.series) for r in des], [series_means(r.series) for r in fast]) == []
    for dep in deployments:
        share = trajectory_share([r.series[f"{dep}/replicas_desired"].to_numpy() for r in des],
                                 [r.series[f"{dep}/replicas_desired"].to_numpy() for r in fast])
        assert share >= TRAJECTORY_SHARE, dep


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


@pytest.mark.slow
def test_the_compiled_data_plane_agrees_with_the_general_engine_through_kills_a_drain_and_a_rollout():
    """The autoscaled pressure scenario (without its OOMKills) on three nodes with a PodDisruptionBudget, and events
    (components/events.py): a pod killed at 90 s (its requests fail when its grace period ends), a
    node drained at 170 s (evictions that wait for the budget, retried every 5 s), a rolling
    update at 250 s (a new ReplicaSet, surge pods, the old ones terminated). Every figure within
    4 combined SE, the series means too, the trajectory within one replica."""
    data = _autoscaled_pressure()
    data["cluster"] = {"nodes": 3}
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "1Gi"  # no OOMKills: pods stay Ready
    data["deployments"]["api"]["pdb"] = {"maxUnavailable": 1}
    data["events"] = [{"at": 90, "pod_kill": {"deployment": "api", "count": 1}},
                      {"at": 170, "drain": {"count": 1}},
                      {"at": 250, "rolling_update": "api"}]
    scenario = parse_scenario(data)
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    for r in des + fast:
        events = {e.event for e in r.record.recorder.pod_events}
        assert {"Killing", "Evicted", "RolloutComplete"} <= events, events
    _assert_agree(des, fast)


def test_the_compiled_data_plane_agrees_with_the_general_engine_through_datastore_slowdowns_and_outages():
    """The pressure scenario with datastore events (components/events.py): PostgreSQL's cores at a
    third of their speed for 40 s (the finishes under way re-timed), the LLM API refusing calls for
    20 s, Neo4j down for 15 s with calls failing only when it is back (the client waiting on a dead
    host), the LLM's latency doubled for 20 s. Every figure within 4 combined SE, the series too,
    and the refused calls as many."""
    data = _pressure()
    data["events"] = [{"at": 60, "datastore_slowdown": {"datastore": "postgres", "factor": 3, "duration": 40}},
                      {"at": 130, "datastore_outage": {"datastore": "llm", "duration": 20, "mode": "refused"}},
                      {"at": 180, "datastore_outage": {"datastore": "neo4j", "duration": 15, "mode": "timeout"}},
                      {"at": 205, "datastore_slowdown": {"datastore": "llm", "factor": 2, "duration": 20}}]
    scenario = parse_scenario(data)
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    assert figure_disagreements([series_means(r.series) for r in des], [series_means(r.series) for r in fast]) == []
    refused = [[int((r.requests["reason"] == "connection_refused").sum()) for r in runs] for runs in (des, fast)]
    assert min(refused[0] + refused[1]) > 100, refused  # both outages' paths are taken
    assert figure_disagreements([{"refused": n} for n in refused[0]], [{"refused": n} for n in refused[1]]) == []


@pytest.mark.slow
def test_the_compiled_data_plane_agrees_with_the_general_engine_through_config_changes():
    """config_change events (engine/des/events.py's plan, components/events.py): the HPA's ceiling
    lowered at 100 s (its state kept), then a new pod template at 200 s (a larger CPU request, two
    processes a pod and a limit of two cores: a rollout whose new pods get slots of the new shape;
    a limit below the processes would bring in a binding CFS quota, which the capability table
    checks in every state the changes leave). Every figure
    within 4 combined SE, the series too, the trajectory within one replica."""
    data = _autoscaled_pressure()
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "1Gi"  # no OOMKills
    data["events"] = [{"at": 100, "config_change": {"set": {"deployments.api.hpa.maxReplicas": 4}}},
                      {"at": 200, "config_change": {"set": {"deployments.api.resources.requests.cpu": "750m",
                                                            "deployments.api.resources.limits.cpu": 2,
                                                            "deployments.api.processes": 2}}}]
    scenario = parse_scenario(data)
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    for r in des + fast:
        assert "RolloutComplete" in {e.event for e in r.record.recorder.pod_events}
    _assert_agree(des, fast)


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


@pytest.mark.slow
def test_the_compiled_data_plane_agrees_with_the_general_engine_on_node_loss_yaml():
    """node-loss.yaml (model.md §9, components/events.py): at 2 min the node with the most API pods
    stops. Until the node controller marks its pods NotReady (40 s) the balancer still sends them
    requests, which fail at once with 502 node_lost; the workers there stop taking jobs; 300 s later
    the pods are evicted and replaced. Every figure within 4 combined SE, the series means too, and
    the node_lost failures as many on both engines (the share of traffic sent to the dead pods for
    40 s)."""
    scenario = load_scenario(SCENARIOS / "node-loss.yaml")
    assert capabilities.choose(scenario).engine == "fast"
    des, fast = _both(scenario)
    assert disagreements([r.summary for r in des], [r.summary for r in fast]) == []
    assert figure_disagreements([series_means(r.series) for r in des], [series_means(r.series) for r in fast]) == []

    def node_lost(r) -> int:
        return int((r.requests["reason"] == "node_lost").sum())

    lost = [[node_lost(r) for r in runs] for runs in (des, fast)]
    assert min(lost[0] + lost[1]) > 100, lost  # the path is taken on every seed
    assert figure_disagreements([{"node_lost": n} for n in lost[0]], [{"node_lost": n} for n in lost[1]]) == []


def test_the_loops_reason_codes_are_the_recorders():
    """The loop writes reasons as integers: each must be components/recorder.py's code of its label."""
    from memstack_capacity.components.recorder import REASON_CODE
    from memstack_capacity.engine.fast import loop

    assert (loop.R_BACKLOG_FULL, loop.R_NO_ENDPOINTS, loop.R_TIMEOUT, loop.R_OOM, loop.R_RESTARTED,
            loop.R_CONNECTION_REFUSED) == tuple(REASON_CODE[k] for k in (
                "backlog_full", "no_endpoints", "timeout", "oom_killed", "container_restarted", "connection_refused"))
