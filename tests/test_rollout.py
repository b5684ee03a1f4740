"""Rolling updates: the Deployment controller's arithmetic and its invariants through the engine.

Ported from ``kubernetes/kubernetes`` ``pkg/controller/deployment/rolling.go``
(``reconcileNewReplicaSet``, ``reconcileOldReplicaSets``), ``util/deployment_util.go``
(``ResolveFenceposts``: surge rounded up, unavailable rounded down, 1 when both are 0;
``NewRSNewReplicas``) and ``sync.go`` (``scale``: proportional scaling mid-rollout).
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstack_capacity.components import rollout
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import start_model
from memstack_capacity.scenario.deployment import PodDisruptionBudget, Strategy
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import assert_conservation, pod_scenario


def strategy(surge, unavailable, kind="RollingUpdate"):
    return Strategy.model_validate({"type": kind, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})


def test_fenceposts_round_surge_up_and_unavailable_down():
    assert rollout.fenceposts(strategy("25%", "25%"), 10) == (3, 2)  # 2.5 → 3 up, 2 down
    assert rollout.fenceposts(strategy("25%", "25%"), 1) == (1, 0)
    assert rollout.fenceposts(strategy("10%", "10%"), 3) == (1, 0)
    assert rollout.fenceposts(strategy(0, "10%"), 3) == (0, 1)  # both zero → unavailable 1
    assert rollout.fenceposts(strategy(1, 0), 3) == (1, 0)
    assert rollout.max_unavailable(strategy(0, 5), 3) == 3  # capped at replicas


def test_rollout_step_follows_rolling_go_example():
    """rolling.go's comment: 10 replicas, maxUnavailable 2, maxSurge 3."""
    s = strategy(3, 2)
    avail = {0: 10, 1: 0}
    step = rollout.rollout_step(s, 10, 1, {0: 10, 1: 0}, lambda r: sum(avail.values()) if r is None else avail[r], lambda: 10)
    assert step == {1: 3}  # NewRSNewReplicas: 13 - 10 = 3
    step = rollout.rollout_step(s, 10, 1, {0: 10, 1: 3}, lambda r: sum(avail.values()) if r is None else avail[r], lambda: 10)
    assert step == {0: 8}  # maxScaledDown = 13 - 8 - 3 = 2; available 10 - 8 = 2
    avail = {0: 8, 1: 3}
    step = rollout.rollout_step(s, 10, 1, {0: 8, 1: 3}, lambda r: sum(avail.values()) if r is None else avail[r], lambda: 8)
    assert step == {1: 5}
    # Recreate: old to zero, then the new one once no old pod is left
    r = strategy(1, 0).model_copy(update={"type": "Recreate"})
    assert rollout.rollout_step(r, 3, 1, {0: 3, 1: 0}, lambda _r: 3, lambda: 3) == {0: 0}
    assert rollout.rollout_step(r, 3, 1, {0: 0, 1: 0}, lambda _r: 0, lambda: 1) == {}
    assert rollout.rollout_step(r, 3, 1, {0: 0, 1: 0}, lambda _r: 0, lambda: 0) == {1: 3}


def test_proportional_scaling_mid_rollout():
    """sync.go scale: 10 → 15 replicas, maxSurge 3, RSs old 8 / new 5 (annotation 13): allowed 18, +5."""
    sizes = rollout.proportional_scale([(0, 8), (1, 5)], 15, strategy(3, 2), 13, 1)
    assert sum(sizes.values()) == 18 and sizes[0] >= 8 and sizes[1] >= 5
    assert sizes == {0: 11, 1: 7}  # round(8 × 18/13) = 11, round(5 × 18/13) = 7
    down = rollout.proportional_scale([(0, 8), (1, 5)], 5, strategy(3, 2), 13, 1)
    assert sum(down.values()) == 5 + 3


def test_pdb_desired_healthy():
    pdb = PodDisruptionBudget.model_validate
    assert rollout.desired_healthy(pdb({"minAvailable": 2}), 5) == 2
    assert rollout.desired_healthy(pdb({"minAvailable": "50%"}), 5) == 3  # rounded up
    assert rollout.desired_healthy(pdb({"maxUnavailable": "30%"}), 5) == 3  # 5 - ceil(1.5)
    assert rollout.desired_healthy(pdb({"maxUnavailable": 1}), 5) == 4


def rollout_data(replicas, surge, unavailable, duration=150.0):
    data = pod_scenario(20.0, 0.01, replicas=replicas, duration=duration, warmup=0.0, concurrency=100)
    data["deployments"]["api"].update({
        "image_pull": 3, "startup": 4, "readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 5},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
    })
    data["cluster"] = {"nodes": 20, "node": {"cpu": 8, "memory": "32Gi"}}
    return data


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replicas=st.integers(1, 6),
    surge=st.sampled_from([0, 1, 2, "25%", "50%"]),
    unavailable=st.sampled_from([0, 1, "25%", "50%"]),
    scale_changes=st.lists(st.tuples(st.floats(12, 90), st.integers(1, 8)), max_size=3),
)
def test_rolling_update_invariants(replicas, surge, unavailable, scale_changes):
    """Ready pods never fall below replicas − maxUnavailable (once at replicas, replicas unchanged) and live pods
    (not being deleted) never exceed replicas + maxSurge — also while the HPA changes replicas mid-rollout."""
    if surge in (0, "0%") and unavailable in (0, "0%"):
        surge = 1
    # A new pod is Ready about 13 s after it is created (pull 3 s, start 4 s, readiness probe at
    # 5 s fails, the next at 10 s passes). At the worst, 8 replicas replaced one at a time after
    # the second rollout (70 s) or the last scale change (≤ 90 s) take 8 × 13 ≈ 104 s, so the
    # run lasts long enough for every rollout to finish: 90 + 2 × 104 < 400.
    data = rollout_data(replicas, surge, unavailable, duration=400.0)
    data["events"] = [{"at": 10, "rolling_update": "api"}, {"at": 70, "rolling_update": "api"}]
    scenario = parse_scenario(data)
    model = build(scenario, 1)
    api = model.runtimes["api"]
    state = {"changed": False}
    s = scenario.api.strategy

    def check():
        n = api.spec_replicas
        live = sum(1 for p in api.pods if not p.deleting and p.phase != "Gone")
        assert live <= n + rollout.max_surge(s, n), (model.env.now, live, n)
        if not state["changed"]:
            assert api.available() >= n - rollout.max_unavailable(s, n), (model.env.now, api.available())

    # checked after each controller action (not inside one, where pods are created or deleted one by one)
    for name in ("_set_ready", "scale_to", "rolling_update", "reconcile"):
        original = getattr(api, name)

        def wrapped(*args, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            check()
            return out

        setattr(api, name, wrapped)

    def scaler(t, n):
        yield model.env.timeout(t)
        state["changed"] = True
        api.scale_to(n)

    start_model(model)
    for t, n in scale_changes:
        model.env.process(scaler(t, n))
    model.env.run(until=scenario.duration)
    assert model.ingress.arrived == len(model.recorder.requests) + model.ingress.in_flight
    final = api.spec_replicas
    assert not api.rolling and all(p.revision == api.revision for p in api.pods if p.phase != "Gone")
    assert sum(1 for p in api.pods if p.ready) == final


def test_rollout_through_the_engine_replaces_every_pod_with_the_real_strategy():
    from memstack_capacity import simulate

    data = rollout_data(3, 1, 0)
    data["events"] = [{"at": 10, "rolling_update": {"deployment": "api"}}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    events = result.record.recorder.pod_events
    created = [e.pod for e in events if e.event == "Created"]
    assert created == ["api-3", "api-4", "api-5"]  # one at a time (maxSurge 1, maxUnavailable 0)
    assert (result.requests["status"] == "ok").all()


def test_hpa_replicas_stay_within_bounds_through_a_rollout():
    from memstack_capacity import simulate
    from tests.test_hpa_engine import autoscaled

    data = autoscaled(240.0, duration=150.0)
    data["deployments"]["api"]["strategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    data["events"] = [{"at": 20, "rolling_update": "api"}]
    result = simulate(parse_scenario(data))
    assert_conservation(result)
    desired = result.scaling["desired_replicas"]
    assert desired.between(3, 20).all() and desired.max() > 3
    assert any(e.event == "RolloutComplete" for e in result.record.recorder.pod_events)
