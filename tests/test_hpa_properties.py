"""Hand-derived HPA cases the Go tests do not pin, invariants (hypothesis), and ``hpa:`` validation."""

from __future__ import annotations

import pytest
from test_hpa_fixtures import GO_CONFIG, NOW, calc_pods, controller_pods, cpu_metric, hpa, scaling_rules
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memstack_capacity.components.hpa.decision import ControllerConfig, HPAState, ScaleEvent, reconcile
from memstack_capacity.components.hpa.calc import Tolerances, resource_utilization_replicas
from memstack_capacity.components.hpa.rules import (
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit_with_scaling_rules,
    convert_desired_replicas_with_behavior_rate,
)
from memstack_capacity.scenario.hpa import (
    HorizontalPodAutoscalerSpec,
    HPAScalingPolicy,
    HPAScalingRules,
    default_scale_down_rules,
    default_scale_up_rules,
)

# --- hand-derived -------------------------------------------------------------------


@pytest.mark.parametrize("utilization, expected", [(110, 10), (111, 12), (90, 10), (89, 9)],
                         ids=["upper-bound-inclusive", "above-upper", "lower-bound-inclusive", "below-lower"])
def test_tolerance_boundary_is_inclusive(utilization, expected):
    """Ratio exactly 1.1 or 0.9 keeps the current count: both ends of the band are inclusive."""
    pods, samples = calc_pods(10, requests=[500] * 10, levels=[5 * utilization] * 10)
    assert resource_utilization_replicas(10, 100, "cpu", pods, NOW, GO_CONFIG, samples=samples).replicas == expected
    assert Tolerances(0.1, 0.1).is_within(1.1) and Tolerances(0.1, 0.1).is_within(0.9)
    assert not Tolerances().is_within(float("nan"))


def test_unready_pods_count_as_zero_on_scale_up():
    """10 ready pods at 112 % of a 100 % target and 1 unready pod (its own sample also 112 %).

    Ignoring the unready pod would give ceil(1.12 × 10) = 12, using its sample ceil(1.12 × 11)
    = 13; Kubernetes counts it as idle: 11200 / 11000 = 101 % is inside the tolerance, so 11.
    """
    pods, samples = calc_pods(11, readiness=[False] + [True] * 10, requests=[500] * 11, levels=[560] * 11)
    calc = resource_utilization_replicas(11, 100, "cpu", pods, NOW, GO_CONFIG, samples=samples)
    assert (calc.utilization, calc.replicas) == (112, 11)


def test_percent_scale_up_uses_float64_ceil():
    """100 replicas at +10 %: ceil(110.00000000000001) = 111."""
    rules = scaling_rules(0, 0, 10, 60, 0)
    assert calculate_scale_up_limit_with_scaling_rules(100, [], [], rules, NOW) == 111


def test_percent_scale_down_truncates_float64():
    """90 replicas at -30 %: int(62.99999999999999) = 62."""
    rules = scaling_rules(0, 0, 30, 60, 0)
    assert calculate_scale_down_limit_with_behaviors(90, [], [], rules, NOW) == 62


def test_select_policy_disabled_keeps_current():
    rules = scaling_rules(4, 15, 0, 0, 0, select="Disabled")
    got = convert_desired_replicas_with_behavior_rate(5, 10, 1, 20, rules, default_scale_down_rules(), [], [], NOW)
    assert got[:2] == (5, "ScaleUpLimit")


def test_legacy_default_scale_up_cap_is_max_of_double_and_four():
    spec = hpa(1, 100, [cpu_metric(10)])
    pods = controller_pods(3, 3, levels=[1000] * 3, requests=[1000] * 3)
    decision = reconcile(spec, HPAState(), NOW, 3, 3, pods, {}, ControllerConfig())
    assert (decision.desired_replicas, decision.limited_reason) == (6, "ScaleUpLimit")


def test_scale_down_stabilisation_window_defaults_to_flag():
    """behavior present without scaleDown.stabilizationWindowSeconds: the flag (300 s) applies."""
    spec = hpa(1, 10, [cpu_metric(50)], scale_up=scaling_rules(4, 15))
    state = HPAState()
    pods = controller_pods(6, 6, levels=[100] * 6, requests=[1000] * 6)
    assert reconcile(spec, state, NOW, 6, 6, pods, {}, GO_CONFIG).desired_replicas == 6  # seeded {6, now}
    assert reconcile(spec, state, NOW + 299, 6, 6, pods, {}, GO_CONFIG).desired_replicas == 6
    assert reconcile(spec, state, NOW + 301, 6, 6, pods, {}, GO_CONFIG).desired_replicas == 2


# --- properties --------------------------------------------------------------------

policy = st.tuples(st.sampled_from(["Pods", "Percent"]), st.integers(1, 300), st.integers(1, 600))
rules = st.builds(
    lambda ps, sel: HPAScalingRules(stabilizationWindowSeconds=0, selectPolicy=sel, policies=tuple(
        HPAScalingPolicy(type=t, value=v, periodSeconds=p) for t, v, p in ps)),
    st.lists(policy, min_size=1, max_size=3), st.sampled_from(["Max", "Min", "Disabled"]))
events = st.lists(st.builds(lambda c, age: ScaleEvent(c, NOW - age), st.integers(1, 50), st.integers(0, 900)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(lo=st.integers(1, 20), span=st.integers(0, 50), current=st.integers(1, 80), desired=st.integers(0, 500),
       up=rules, down=rules, up_events=events, down_events=events)
def test_behavior_result_within_bounds_and_policies(lo, span, current, desired, up, down, up_events, down_events):
    hi = lo + span
    current = min(max(current, lo), hi)
    got, _, _ = convert_desired_replicas_with_behavior_rate(current, desired, lo, hi, up, down, up_events, down_events, NOW)
    assert lo <= got <= hi
    if got < current:  # a scale-down never goes below what the policies allow
        assert got >= min(max(lo, calculate_scale_down_limit_with_behaviors(current, up_events, down_events, down, NOW)),
                          current)
        assert got >= desired
    if got > current:
        assert got <= desired


@settings(max_examples=60, deadline=None)
@given(lo=st.integers(1, 5), span=st.integers(0, 15), start=st.integers(1, 20),
       loads=st.lists(st.integers(0, 3000), min_size=3, max_size=12), legacy=st.booleans())
def test_reconcile_within_bounds_and_deterministic(lo, span, start, loads, legacy):
    """Over a run of syncs the replicas stay in [min, max], and a scale-down never removes more
    than the default policy allows (100 % per 15 s); the same inputs give the same decisions."""
    hi = lo + span
    spec = hpa(lo, hi, [cpu_metric(60)]) if legacy else hpa(lo, hi, [cpu_metric(60)], scale_down=scaling_rules(1, 30, 0, 0, 60))

    def run():
        state, replicas, out = HPAState(), min(max(start, lo), hi), []
        for i, load in enumerate(loads):
            pods = controller_pods(replicas, replicas, levels=[load] * replicas, requests=[1000] * replicas)
            d = reconcile(spec, state, NOW + 15 * i, replicas, replicas, pods, {}, GO_CONFIG)
            assert lo <= d.desired_replicas <= hi
            if not legacy and d.desired_replicas < replicas:
                recent = sum(e.change for e in state.scale_down_events if e.timestamp > NOW + 15 * i - 30)
                assert recent <= 1  # Pods 1 per 30 s
            out.append(d)
            replicas = d.desired_replicas
        return out

    assert run() == run()


# --- validation of the hpa: block ----------------------------------------------------

BAD = [
    ({"minReplicas": 5, "maxReplicas": 3}, "maxReplicas (3) must be greater than or equal to minReplicas (5)"),
    ({"minReplicas": 0, "maxReplicas": 3}, "minReplicas"),
    ({"maxReplicas": 0}, "maxReplicas"),
    ({"minReplicas": 1}, "maxReplicas"),
    ({"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 0}}}]}, "averageUtilization"),
    ({"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization"}}}]}, "averageUtilization is required"),
    ({"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "gpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]}, "resource"),
    ({"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "lots"}}}]}, "averageValue"),
    ({"maxReplicas": 3, "metrics": [{"type": "External", "external": {"metric": {"name": "rps"}, "target": {
        "type": "Value", "value": 10}}}]}, "queue_length"),
    ({"maxReplicas": 3, "metrics": [{"type": "External", "external": {"metric": {"name": "queue_length"}, "target": {
        "type": "AverageValue", "value": 10}}}]}, "external.target"),
    ({"maxReplicas": 3, "metrics": [{"type": "Object"}]}, "metrics.0"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
     "behavior.scaleUp.policies.0.value"),
    ({"maxReplicas": 3, "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}}},
     "behavior.scaleDown.policies.0.periodSeconds"),
    ({"maxReplicas": 3, "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]}}},
     "periodSeconds"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"stabilizationWindowSeconds": 3601}}}, "stabilizationWindowSeconds"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"stabilizationWindowSeconds": -1}}}, "stabilizationWindowSeconds"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"selectPolicy": "Fastest"}}}, "selectPolicy"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"policies": []}}}, "at least one policy"),
    ({"maxReplicas": 3, "behavior": {"scaleUp": {"tolerance": -0.1}}}, "tolerance"),
    ({"maxReplicas": 3, "behaviour": {}}, "behaviour"),
    ({"maxReplicas": 3, "scaleTargetRef": {"name": "x"}}, "scaleTargetRef"),
]


@pytest.mark.parametrize("data, needle", BAD, ids=[n for _, n in BAD])
def test_bad_hpa_blocks_are_rejected_naming_the_field(data, needle):
    with pytest.raises(ValidationError) as info:
        HorizontalPodAutoscalerSpec.model_validate(data)
    assert needle in str(info.value)


def test_disabled_select_policy_may_have_no_policies():
    spec = HorizontalPodAutoscalerSpec.model_validate(
        {"maxReplicas": 3, "behavior": {"scaleDown": {"selectPolicy": "Disabled", "policies": []}}})
    assert spec.behavior.scaleDown.policies == ()


def test_defaults():
    spec = HorizontalPodAutoscalerSpec.model_validate({"maxReplicas": 4})
    assert spec.minReplicas == 1 and spec.behavior is None
    assert spec.metrics[0].resource.name == "cpu" and spec.metrics[0].resource.target.averageUtilization == 80
    assert spec.effective_behavior() is None
    spec = HorizontalPodAutoscalerSpec.model_validate({"maxReplicas": 4, "behavior": {"scaleDown": {"selectPolicy": "Min"}}})
    assert spec.behavior.scaleUp == default_scale_up_rules()
    assert spec.behavior.scaleDown.stabilizationWindowSeconds is None
    assert spec.behavior.scaleDown.selectPolicy == "Min"
    assert spec.effective_behavior(300).scaleDown.stabilizationWindowSeconds == 300


def test_quantities_in_milli_units():
    spec = HorizontalPodAutoscalerSpec.model_validate({"maxReplicas": 4, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "500m"}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "400Mi"}}},
        {"type": "External", "external": {"metric": {"name": "queue_length"}, "target": {"type": "AverageValue",
                                                                                           "averageValue": 5}}}]})
    assert [m.target_milli() for m in spec.metrics] == [500, 400 * 2**20 * 1000, 5000]
