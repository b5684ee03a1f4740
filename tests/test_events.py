"""Events in time through the engine: spikes, node loss, evictions under a PDB, config changes,
datastore trouble, the liveness death spiral and queue-length scaling of the workers.

Delays ported from Kubernetes (model.md §9, components/events.py): the node lifecycle
controller marks a silent node NotReady after ``--node-monitor-grace-period`` (40 s) and the
taint manager evicts its pods ``tolerationSeconds: 300`` later (the DefaultTolerationSeconds
admission plugin's not-ready/unreachable tolerations); ``kubectl drain`` retries a refused
eviction every 5 s; the Eviction API refuses while ``disruptionsAllowed`` is 0
(``pkg/controller/disruption``, ``pkg/registry/core/pod/storage/eviction.go``).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from memstack_capacity import simulate
from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.engine.des.build import build
from memstack_capacity.components.spikes import fold_spike
from memstack_capacity.engine.des.run import start_model
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import assert_conservation, closed_scenario, pod_scenario
from tests.test_hpa_engine import autoscaled


def lifecycle(data: dict, **api) -> dict:
    data = copy.deepcopy(data)
    data["deployments"]["api"].update({
        "image_pull": 5, "startup": 8, "readinessProbe": {"initialDelaySeconds": 10, "periodSeconds": 5},
        "anti_affinity": "preferred", **api,
    })
    return data


def events_of(result, event: str, deployment: str | None = None) -> list:
    return [e for e in result.record.recorder.pod_events
            if e.event == event and (deployment is None or e.deployment == deployment)]


# ---- traffic spikes ---------------------------------------------------------------------------------
def test_fold_spike_multiplies_the_profile_with_ramps_and_steps():
    points = fold_spike([(0.0, 10.0)], 100.0, 3.0, 100.0, 20.0)
    from memstack_capacity.components.workload import PiecewiseLinearRate

    rate = PiecewiseLinearRate(points)
    assert rate.rate(50) == 10 and rate.rate(110) == pytest.approx(20) and rate.rate(150) == 30
    assert rate.rate(190) == pytest.approx(20) and rate.rate(250) == 10
    step = PiecewiseLinearRate(fold_spike([(0.0, 4.0), (400.0, 8.0)], 100.0, 2.0, 50.0, 0.0))
    assert step.rate(99.999) == pytest.approx(4.0 + 4 * 99.999 / 400) and step.rate(100.001) == pytest.approx(2 * 5.0, rel=1e-3)
    assert step.rate(151) == pytest.approx(4 + 4 * 151 / 400)


def test_open_spike_poisson_counts_match_the_integral_of_the_rate():
    data = pod_scenario(20.0, 0.001, replicas=2, duration=300.0, warmup=0.0)
    data["events"] = [{"at": 100, "traffic_spike": {"factor": 3, "duration": 100, "ramp": 20}}]
    counts_in, counts_out = [], []
    for seed in (1, 2, 3):
        result = simulate(parse_scenario(data), seed=seed)
        assert_conservation(result)
        t = result.requests["t_arrival_s"].to_numpy()
        counts_in.append(((t >= 100) & (t < 200)).sum())
        counts_out.append((t < 100).sum())
    # ∫ over [100, 200): 20 × (20/2 × (1+3) × 2 / 2 ... ) = 20 × (60 × 3 + 2 × 20 × 2) = 5200
    expected_in = 20 * (60 * 3 + 2 * 20 * (1 + 3) / 2)
    assert expected_in == 5200
    for c in counts_in:
        assert abs(c - expected_in) < 4 * np.sqrt(expected_in), counts_in
    for c in counts_out:
        assert abs(c - 2000) < 4 * np.sqrt(2000), counts_out


def test_flash_crowd_of_closed_users_times_five_within_a_minute():
    data = closed_scenario(20, 1.0, 0.001, duration=240.0, warmup=0.0, replicas=2, concurrency=100)
    data["events"] = [{"at": 60, "traffic_spike": {"factor": 5, "duration": 150, "ramp": 60}}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    t = result.requests["t_arrival_s"].to_numpy()
    before = ((t >= 20) & (t < 60)).sum() / 40
    plateau = ((t >= 125) & (t < 145)).sum() / 20
    after = ((t >= 225) & (t < 240)).sum() / 15
    # throughput ≈ users / (think + response): 20 → 100 users
    assert before == pytest.approx(20 / 1.001, rel=0.15)
    assert plateau == pytest.approx(100 / 1.001, rel=0.12)
    assert after == pytest.approx(20 / 1.001, rel=0.3)


# ---- node failure -----------------------------------------------------------------------------------
def node_loss_data(**cluster):
    data = lifecycle(pod_scenario(30.0, 0.01, replicas=3, duration=520.0, warmup=0.0, concurrency=100))
    data["workload"]["arrivals"]["cv"] = 0.001  # nearly deterministic arrivals
    data["cluster"] = {"nodes": 3, "node": {"cpu": 2, "memory": "8Gi"}, **cluster}
    data["events"] = [{"at": 100, "node_failure": 1}]
    return data


def test_node_failure_timeline_hand_derived():
    """One pod per node (preferred anti-affinity). node-0 (api-0) stops at 100 s:
    - [100, 140): the endpoints still list api-0 → 1/3 of arrivals fail with 502 node_lost;
    - 140: NotReady (grace 40 s) → api-0 unready, out of the endpoints → no more errors;
    - 440: evicted (toleration 300 s) → replacement created and scheduled on node-1/2;
      image pull 5 s → started 445, readiness initialDelay 10 s → Ready 455.0005.
    """
    result = simulate(parse_scenario(node_loss_data()))
    assert_conservation(result)
    req = result.requests
    lost = req[req["reason"] == "node_lost"]
    assert lost["t_end_s"].min() >= 100 and lost["t_end_s"].max() < 140.01
    arrivals = ((req["t_arrival_s"] >= 100) & (req["t_arrival_s"] < 140)).sum()
    assert abs(len(lost) - arrivals / 3) <= 3, (len(lost), arrivals)
    assert (req[(req["t_arrival_s"] >= 141)]["status"] == "ok").all()
    not_ready = events_of(result, "NotReady", "api")
    assert [(e.pod, e.t_s) for e in not_ready] == [("api-0", 140.0)]
    assert [e.t_s for e in events_of(result, "TaintManagerEviction")] == [440.0]
    created = [e for e in events_of(result, "Created", "api")]
    assert [(e.pod, e.t_s) for e in created] == [("api-3", 440.0)]
    ready = [e for e in events_of(result, "Ready", "api") if e.pod == "api-3"]
    assert ready[0].t_s == pytest.approx(455.0005)
    scheduled = [e for e in events_of(result, "Scheduled", "api") if e.pod == "api-3"]
    assert scheduled[0].detail in ("node-1", "node-2")


def test_node_failure_delays_are_configurable_and_recovery_restarts_the_pod():
    data = node_loss_data(node_monitor_grace_period="10s", not_ready_toleration="60s")
    result = simulate(parse_scenario(data))
    assert [e.t_s for e in events_of(result, "NotReady", "api")] == [110.0]
    assert [e.t_s for e in events_of(result, "TaintManagerEviction")] == [170.0]
    data = node_loss_data()
    data["events"] = [{"at": 100, "node_failure": {"nodes": ["node-2"], "recover_after": "60s"}}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    assert not events_of(result, "TaintManagerEviction")
    assert [e.pod for e in events_of(result, "NotReady", "api")] == ["api-2"]
    assert events_of(result, "NodeReady")[0].t_s == 160.0
    back = [e for e in events_of(result, "Ready", "api") if e.pod == "api-2"]
    assert back and back[0].t_s > 160.0  # the container restarts once the node is back


# ---- voluntary evictions and the PDB ------------------------------------------------------------------
def watch_invariant(model, check):
    """Call check() after every change of a deployment's pods (creation, readiness, deletion, end)."""
    for runtime in model.runtimes.values():
        for name in ("_set_ready", "delete_pod", "_create_pod", "scale_to"):
            original = getattr(runtime, name)

            def wrapped(*args, _original=original, **kwargs):
                out = _original(*args, **kwargs)
                check()
                return out

            setattr(runtime, name, wrapped)


def run_model(data: dict, seed: int = 1, check=None):
    model = build(parse_scenario(data), seed)
    if check is not None:
        watch_invariant(model, lambda: check(model))
    start_model(model)
    model.env.run(until=model.scenario.duration)
    return model


def test_pod_kill_and_drain_never_break_the_pdb_and_retry_every_5s():
    data = lifecycle(pod_scenario(30.0, 0.01, replicas=3, duration=200.0, warmup=0.0, concurrency=100),
                     pdb={"minAvailable": 2})
    data["cluster"] = {"nodes": 3, "node": {"cpu": 2, "memory": "8Gi"}}
    data["events"] = [{"at": 20, "pod_kill": {"count": 3}}, {"at": 120, "drain": "node-1"}]
    seen = {"min": 99}

    def check(model):
        api = model.runtimes["api"]
        if model.env.now > 0:
            seen["min"] = min(seen["min"], api.available())

    model = run_model(data, check=check)
    api = model.runtimes["api"]
    assert seen["min"] >= 1  # a pod going unready by itself is not the PDB's business; evictions never are:
    events = model.recorder.pod_events
    evicted = [e for e in events if e.event == "Evicted"]
    blocked = [e for e in events if e.event == "EvictionBlocked"]
    assert len(evicted) >= 4 and blocked
    # every eviction happened with at least minAvailable + 1 healthy pods before it
    # (replayed from the event log: Ready / NotReady / Killing)
    ready = {f"api-{i}" for i in range(3)}
    for e in events:
        if e.deployment != "api":
            continue
        if e.event == "Evicted":
            assert len(ready) - 1 >= 2, (e, ready)
        if e.event == "Ready":
            ready.add(e.pod)
        elif e.event in ("NotReady", "Killing"):
            ready.discard(e.pod)
    retry_gaps = {round(b.t_s - a.t_s, 6) for a, b in zip(blocked, blocked[1:]) if a.pod == b.pod}
    assert retry_gaps <= {0.0, 5.0} or 5.0 in retry_gaps
    assert api.available() == 3
    assert model.cluster.node("node-1").schedulable is False
    assert all(p.node.name != "node-1" for p in api.pods if p.node is not None)


def test_pod_kill_without_pdb_respect_deletes_at_once():
    data = lifecycle(pod_scenario(10.0, 0.01, replicas=3, duration=60.0, warmup=0.0), pdb={"minAvailable": 3})
    data["events"] = [{"at": 10, "pod_kill": {"count": 2, "respect_pdb": False}}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    assert len(events_of(result, "Killing", "api")) == 2 and len(events_of(result, "Created", "api")) == 2


# ---- config change ------------------------------------------------------------------------------------
def test_config_change_of_hpa_max_changes_the_next_decision():
    """test_hpa_engine's trajectory goes 3 → 6 at t=16; with maxReplicas 4 from t=10 it stops at 4."""
    data = autoscaled(240.0, cv=0.001, service="constant", duration=40.0)
    data["events"] = [{"at": 10, "config_change": {"set": {"deployments.api.hpa.maxReplicas": 4}}}]
    result = simulate(parse_scenario(data))
    desired = result.scaling.set_index("t_s")["desired_replicas"].to_dict()
    assert desired[1.0] == 3 and desired[16.0] == 4 and desired[31.0] == 4
    assert result.scaling.set_index("t_s").loc[16.0, "proposal"] == 7  # the state (and metrics) carried on


def test_config_change_of_the_pod_template_rolls_out_and_bad_keys_are_rejected():
    data = lifecycle(pod_scenario(10.0, 0.01, replicas=2, duration=120.0, warmup=0.0))
    data["events"] = [{"at": 10, "config_change": {"deployments.api.resources.limits.cpu": 2}}]
    result = simulate(parse_scenario(data))
    assert events_of(result, "RolloutStarted") and events_of(result, "RolloutComplete")
    bad = copy.deepcopy(data)
    bad["events"] = [{"at": 10, "config_change": {"set": {"workload.timeout": "30s"}}}]
    with pytest.raises(ScenarioError, match="workload.timeout"):
        simulate(parse_scenario(bad))
    bad["events"] = [{"at": 10, "config_change": {"set": {"deployments.api.load_balancing": "random"}}}]
    with pytest.raises(ScenarioError, match="load_balancing"):
        simulate(parse_scenario(bad))


# ---- datastores ---------------------------------------------------------------------------------------
def store_data(events):
    data = pod_scenario(20.0, 0.001, replicas=2, duration=90.0, warmup=0.0, concurrency=100)
    data["workload"]["requests"][0]["steps"].append({"call": "pg", "time": {"dist": "constant", "mean": 0.01}})
    data["datastores"] = {"pg": {"kind": "postgresql", "cores": 4, "max_connections": 100}}
    data["events"] = events
    return data


def test_datastore_outage_refuses_then_recovers_and_slowdown_stretches_latency():
    result = simulate(parse_scenario(store_data([{"at": 30, "datastore_outage": {"datastore": "pg", "duration": 20}}])))
    assert_conservation(result)
    req = result.requests
    refused = req[req["reason"] == "connection_refused"]
    assert len(refused) > 300 and refused["t_arrival_s"].between(29.9, 50.1).all()
    assert (req[req["t_arrival_s"] > 50.1]["status"] == "ok").all()
    slow = simulate(parse_scenario(store_data([{"at": 30, "datastore_slowdown": {"datastore": "pg", "factor": 5, "duration": 30}}])))
    lat = slow.requests.assign(lat=lambda f: f["t_end_s"] - f["t_arrival_s"])
    inside = lat[lat["t_arrival_s"].between(35, 55)]["lat"].median()
    outside = lat[lat["t_arrival_s"].between(65, 85)]["lat"].median()
    assert inside == pytest.approx(5 * outside, rel=0.15)


def test_cache_flush_drops_the_hit_ratio_and_it_recovers():
    data = pod_scenario(50.0, 0.001, replicas=1, duration=120.0, warmup=0.0, concurrency=100)
    data["workload"]["requests"][0]["steps"].append(
        {"call": "redis", "key_space": 10000, "key_alpha": 0.9,
         "miss": [{"call": "pg", "time": {"dist": "constant", "mean": 0.002}}]})
    data["datastores"] = {"redis": {"kind": "redis", "maxmemory": "2Mi"},
                          "pg": {"kind": "postgresql", "cores": 4}}
    data["events"] = [{"at": 60, "cache_flush": "redis"}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    ts = result.timeseries
    hits = ts[(ts["component"] == "redis") & (ts["metric"] == "hit_ratio")].set_index("t_s")["value"]
    before, just_after, later = hits.loc[30:60].mean(), hits.loc[61:66].mean(), hits.loc[110:120].mean()
    assert just_after < before - 0.1 and later > just_after


def test_unknown_references_are_scenario_errors():
    data = store_data([{"at": 5, "cache_flush": "pg"}, {"at": 5, "pod_kill": {"deployment": "nope"}},
                       {"at": 5, "node_failure": {"nodes": ["node-99"]}}])
    with pytest.raises(ScenarioError) as err:
        simulate(parse_scenario(data))
    text = str(err.value)
    assert "not a Redis" in text and "pod_kill.deployment" in text and "names no node" in text


# ---- the liveness death spiral --------------------------------------------------------------------------
def spiral_data(replicas: int, rate: float, hpa: bool = False):
    data = lifecycle(pod_scenario(rate, 0.01, replicas=replicas, duration=240.0, warmup=0.0, concurrency=100000,
                                  backlog=0, timeout=60.0),
                     # a lenient readiness probe (it would otherwise take the pod out of the endpoints first)
                     readinessProbe={"initialDelaySeconds": 10, "periodSeconds": 5, "timeoutSeconds": 30,
                                     "failureThreshold": 10},
                     livenessProbe={"initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 1,
                                    "failureThreshold": 3})
    data["deployments"]["api"]["resources"]["limits"]["cpu"] = 1
    if hpa:
        data["deployments"]["api"]["hpa"] = {"minReplicas": replicas, "maxReplicas": replicas, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    return data


def test_liveness_times_out_under_saturation_restarts_and_cascades():
    """Offered 1.5 cores to one core: the backlog grows by 50 requests/s and the 0.5 ms probe, sharing the
    core with n requests, needs n × 0.5 ms; past n = 2000 it misses its 1 s timeout; three misses ⇒ restart."""
    result = simulate(parse_scenario(spiral_data(1, 150.0)))
    assert_conservation(result)
    assert result.summary["deployments"]["api"]["restarts"] >= 1
    req = result.requests
    assert (req["reason"] == "container_restarted").sum() > 1000
    unhealthy = events_of(result, "Unhealthy", "api")
    assert unhealthy and unhealthy[0].t_s > 40
    # 2.4 cores offered to two one-core pods with the HPA at its maximum: when one restarts the other takes
    # all the traffic and spirals faster; the restarted one comes back into the same overload (the cascade)
    result = simulate(parse_scenario(spiral_data(2, 240.0, hpa=True)))
    assert_conservation(result)
    restarted = {e.pod for e in events_of(result, "Unhealthy", "api")}
    assert {"api-0", "api-1"} <= restarted
    not_ready = {e.pod for e in events_of(result, "NotReady", "api")}
    assert restarted <= not_ready  # a restarting container is unready
    cpu = result.scaling["cpu_utilization_pct"].dropna()
    assert (cpu >= 0).all()  # metrics-server restarts its counters with the container (no negative rates)


# ---- queue-length autoscaling of the workers -------------------------------------------------------------
def test_worker_hpa_scales_on_queue_length_average_value():
    from tests.test_workers import scenario as worker_scenario

    base = worker_scenario(rps=2.0, job={"steps": [{"cpu": {"dist": "constant", "mean": 1.0}}]},
                           worker={"replicas": 1, "concurrency": 1, "image_pull": 2, "startup": 2},
                           duration=150.0)
    data = base.model_dump(mode="json")
    data["deployments"]["worker"]["hpa"] = {
        "minReplicas": 1, "maxReplicas": 6,
        "metrics": [{"type": "External", "external": {"metric": {"name": "queue_length"},
                                                        "target": {"type": "AverageValue", "averageValue": 10}}}]}
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    rows = result.scaling[result.scaling.deployment == "worker"].set_index("t_s")
    # backlog grows by ~1 job/s (2 arriving, 1 served); at 31 s ≈ 30 queued → ceil(30/10) = 3 > 1
    assert rows["desired_replicas"].max() >= 3
    first_up = rows[rows["desired_replicas"] > 1].index.min()
    q = rows.loc[first_up, "queue_length_value"]
    assert rows.loc[first_up, "proposal"] == int(np.ceil(q / 10 - 1e-9)) or rows.loc[first_up, "limited_reason"]
