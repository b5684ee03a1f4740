"""Conformance of the HPA controller's normalisation and reconcile with ``horizontal_test.go``.

Each case id names the Go test (and sub-test) it is ported from. The Go controller tests run
with ``scaleUpLimitFactor = 8``, a 2 min CPU initialisation period and a 10 s readiness delay
(``GO_CONFIG``). External metrics are named ``qps`` in Go and ``queue_length`` here.
"""

from __future__ import annotations

import pytest
from test_hpa_fixtures import COOL, GO_CONFIG, HOT, NOW, controller_pods, cpu_metric, external_metric, hpa, scaling_rules, uniform_events

from memstack_capacity.components.hpa.decision import HPAState, MetricResult, ScaleEvent, TimestampedRecommendation, combine_proposals, reconcile
from memstack_capacity.components.hpa.rules import (
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit_with_scaling_rules,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    get_replicas_change_per_period,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from memstack_capacity.scenario.hpa import HorizontalPodAutoscalerSpec, default_scale_down_rules, default_scale_up_rules, merge_rules

T, F = True, False
MIN = 60.0

CONVERT_RULES = [
    ("prenormalized_desired_replicas_within_range", 5, 7, 3, 8, 7, "DesiredWithinRange"),
    ("prenormalized_desired_replicas_<_minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas"),
    ("maxReplicas_is_the_limit_because_maxReplicas_<_scaleUpLimit", 20, 1000, 1, 10, 10, "TooManyReplicas"),
    ("scaleUpLimit_is_the_limit_because_scaleUpLimit_<_maxReplicas", 3, 1000, 1, 2000, 24, "ScaleUpLimit"),
]


@pytest.mark.parametrize("current, desired, lo, hi, expected, reason", [c[1:] for c in CONVERT_RULES],
                         ids=[f"TestConvertDesiredReplicasWithRules/{c[0]}" for c in CONVERT_RULES])
def test_convert_desired_replicas_with_rules(current, desired, lo, hi, expected, reason):
    assert convert_desired_replicas_with_rules(current, desired, lo, hi, GO_CONFIG)[:2] == (expected, reason)


def test_calculate_scale_up_limit_with_scaling_rules():
    """TestCalculateScaleUpLimitWithScalingRules."""
    rules = scaling_rules(2, 60, 50, 60, 300, select="Min")
    assert calculate_scale_up_limit_with_scaling_rules(1, [], [], rules, NOW) == 2


def test_calculate_scale_down_limit_with_behaviors():
    """TestCalculateScaleDownLimitWithBehaviors."""
    rules = scaling_rules(2, 60, 50, 60, 300, select="Min")
    assert calculate_scale_down_limit_with_behaviors(5, [], [], rules, NOW) == 3


LEGACY_STABILIZE = [
    ("empty_log", [], 5, 5, 1),
    ("stabilize", [(4, -2 * MIN), (5, -1 * MIN)], 3, 5, 3),
    ("no_stabilize", [(1, -2 * MIN), (2, -1 * MIN)], 3, 3, 3),
    ("no_stabilize_-_old_recommendations", [(10, -10 * MIN), (9, -9 * MIN)], 3, 3, 2),
    ("stabilize_-_old_recommendations", [(10, -10 * MIN), (4, -1 * MIN), (5, -2 * MIN), (9, -9 * MIN)], 3, 5, 4),
]


@pytest.mark.parametrize("recs, prenormalized, expected, length", [c[1:] for c in LEGACY_STABILIZE],
                         ids=[f"TestNormalizeDesiredReplicas/{c[0]}" for c in LEGACY_STABILIZE])
def test_normalize_desired_replicas(recs, prenormalized, expected, length):
    log = [TimestampedRecommendation(r, NOW + dt) for r, dt in recs]
    assert stabilize_recommendation(log, prenormalized, NOW, 300.0) == expected
    assert len(log) == length


R = scaling_rules
UP_EVENTS = uniform_events([1, 5, 9], 120)
# (name, up events, down events, min, max, up rules, down rules, current, desired, expected, reason)
SCALING_WITH_RULES = [
    ("prenormalized_desired_replicas_within_range", [], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized_desired_replicas_<_minReplicas", [], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("maxReplicas_is_the_limit_because_maxReplicas_<_scaleUpLimit", [], [], 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
    ("desired_replica_count_is_more_than_the_maximum_replica_count", [], [], 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
    ("scaleUpLimit_is_the_limit_because_scaleUpLimit_<_maxReplicas_with_user_policies", [], [], 1, 2000, R(0, 0, 1, 60, 0), None,
     3, 1000, 4, "ScaleUpLimit"),
    # Skipped in Go (testThis), consistent all the same.
    ("scaleDownLimit_is_the_limit_because_scaleDownLimit_>_minReplicas_with_user_defined_policies", [], [], 3, 2000, None,
     R(20, 60, 0, 0, 0), 1000, 3, 980, "ScaleDownLimit"),
    ("scaleUp_with_default_behavior", [], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp_with_pods_policy_larger_than_percent_policy", [], [], 1, 1000, R(100, 60, 100, 60), None, 10, 500, 110, "ScaleUpLimit"),
    ("scaleUp_with_percent_policy_larger_than_pods_policy", [], [], 1, 1000, R(2, 60, 100, 60), None, 10, 500, 20, "ScaleUpLimit"),
    ("scaleUp_with_spec_MaxReplicas_limitation_with_large_pod_policy", [], [], 1, 1000, R(100, 60), None, 10, 50, 50,
     "DesiredWithinRange"),
    ("scaleUp_with_spec_MaxReplicas_limitation_with_large_percent_policy", [], [], 1, 1000, R(10000, 60), None, 10, 50, 50,
     "DesiredWithinRange"),
    ("scaleUp_with_pod_policy_limitation", [], [], 1, 1000, R(30, 60), None, 10, 50, 40, "ScaleUpLimit"),
    ("scaleUp_with_percent_policy_limitation", [], [], 1, 1000, R(0, 0, 200, 60), None, 10, 50, 30, "ScaleUpLimit"),
    ("scaleDown_with_percent_policy_larger_than_pod_policy", [], [], 1, 1000, None, R(20, 60, 1, 60, 300), 100, 2, 80,
     "ScaleDownLimit"),
    ("scaleDown_with_pod_policy_larger_than_percent_policy", [], [], 1, 1000, None, R(2, 60, 1, 60, 300), 100, 2, 98,
     "ScaleDownLimit"),
    ("scaleDown_with_spec_MinReplicas=nil_limitation_with_large_pod_policy", [], [], 1, 1000, None, R(100, 60, 0, 0, 300),
     10, 0, 1, "TooFewReplicas"),
    ("scaleDown_with_spec_MinReplicas_limitation_with_large_pod_policy", [], [], 1, 1000, None, R(100, 60, 0, 0, 300),
     10, 0, 1, "TooFewReplicas"),
    ("scaleDown_with_spec_MinReplicas_limitation_with_large_percent_policy", [], [], 5, 1000, None, R(0, 0, 100, 60, 300),
     10, 2, 5, "TooFewReplicas"),
    ("scaleDown_with_pod_policy_limitation", [], [], 1, 1000, None, R(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
    ("scaleDown_with_percent_policy_limitation", [], [], 1, 1000, None, R(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange"),
    ("scaleUp_with_spec_MaxReplicas_limitation_with_large_pod_policy_and_events", UP_EVENTS, [], 1, 200, R(300, 60), None,
     100, 500, 200, "TooManyReplicas"),
    ("scaleUp_with_spec_MaxReplicas_limitation_with_large_percent_policy_and_events", UP_EVENTS, [], 1, 200,
     R(0, 0, 10000, 60), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp_with_currentReplicas_limitation_with_rate.PeriodSeconds_with_a_lot_of_recent_scale_up_events", UP_EVENTS, [],
     1, 1000, R(5, 120), None, 100, 500, 100, "ScaleUpLimit"),
    ("scaleUp_with_pod_policy_and_previous_scale_up_events", UP_EVENTS, [], 1, 1000, R(150, 120), None, 100, 500, 235,
     "ScaleUpLimit"),
    ("scaleUp_with_percent_policy_and_previous_scale_up_events", UP_EVENTS, [], 1, 1000, R(0, 0, 200, 120), None, 100, 500,
     255, "ScaleUpLimit"),
    ("scaleUp_with_percent_policy_and_previous_scale_up_and_down_events", uniform_events([4], 120), uniform_events([2], 120),
     1, 1000, R(0, 0, 300, 300), None, 6, 24, 16, "ScaleUpLimit"),
    ("scaleDown_with_default_policy_and_previous_events", [], UP_EVENTS, 1, 1000, None, None, 10, 5, 5, "DesiredWithinRange"),
    ("scaleDown_with_spec_MinReplicas=nil_limitation_with_large_pod_policy_and_previous_events", [], UP_EVENTS, 1, 1000, None,
     R(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ("scaleDown_with_spec_MinReplicas_limitation_with_large_pod_policy_and_previous_events", [], UP_EVENTS, 5, 1000, None,
     R(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ("scaleDown_with_spec_MinReplicas_limitation_with_large_percent_policy_and_previous_events", [], UP_EVENTS, 5, 1000, None,
     R(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ("scaleDown_with_pod_policy_limitation_and_previous_events", [], UP_EVENTS, 1, 1000, None, R(5, 120, 0, 0, 300),
     100, 2, 100, "ScaleDownLimit"),
    ("scaleDown_with_percent_policy_limitation_and_previous_events", [], uniform_events([2, 4, 6], 120), 1, 1000, None,
     R(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown_with_percent_policy_and_previous_scale_up_and_down_events", uniform_events([2], 120), uniform_events([4], 120),
     1, 1000, None, R(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ("scaleDown_with_previous_events_preventing_further_scale_down", [], uniform_events([10, 10, 10], 120), 1, 1000, None,
     R(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ("scaleDown_with_with_previous_events_still_allowing_more_scale_down", [], uniform_events([10, 10, 10], 120), 1, 1000,
     None, R(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange"),
    ("check_'outdated'_flag_for_events_for_one_behavior_for_up", uniform_events([8, 12, 9, 11], 120), [], 1, 1000,
     R(1000, 60), None, 100, 200, 200, "DesiredWithinRange"),
    ("check_that_events_were_not_marked_'outdated'_for_two_different_policies_in_the_behavior_for_up",
     uniform_events([8, 12, 9, 11], 120), [], 1, 1000, R(1000, 120, 100, 60), None, 100, 200, 200, "DesiredWithinRange"),
    ("check_that_events_were_marked_'outdated'_for_two_different_policies_in_the_behavior_for_up",
     uniform_events([8, 12, 9, 11], 120), [], 1, 1000, R(1000, 30, 100, 60), None, 100, 200, 200, "DesiredWithinRange"),
    ("check_'outdated'_flag_for_events_for_one_behavior_for_down", [], uniform_events([8, 12, 9, 11], 120), 1, 1000, None,
     R(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check_that_events_were_not_marked_'outdated'_for_two_different_policies_in_the_behavior_for_down", [],
     uniform_events([8, 12, 9, 11], 120), 1, 1000, None, R(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check_that_events_were_marked_'outdated'_for_two_different_policies_in_the_behavior_for_down", [],
     uniform_events([8, 12, 9, 11], 120), 1, 1000, None, R(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
]


@pytest.mark.parametrize("up_events, down_events, lo, hi, up, down, current, desired, expected, reason",
                         [c[1:] for c in SCALING_WITH_RULES], ids=[f"TestScalingWithRules/{c[0]}" for c in SCALING_WITH_RULES])
def test_scaling_with_rules(up_events, down_events, lo, hi, up, down, current, desired, expected, reason):
    up_rules = merge_rules(up, default_scale_up_rules())
    down_rules = merge_rules(down, default_scale_down_rules())
    got = convert_desired_replicas_with_behavior_rate(current, desired, lo, hi, up_rules, down_rules,
                                                      list(up_events), list(down_events), NOW)
    assert got[:2] == (expected, reason)


def _ev(change, age, outdated=False):
    return ScaleEvent(change, NOW - age, outdated)


# (name, previous events, expected new events [(change, outdated)], rules, expected change within 60 s)
STORE_EVENTS = [
    ("empty_entries_with_default_behavior", [], [], None, 0),
    ("empty_entries_with_two-policy-behavior", [], [(5, F)], R(10, 60, 100, 60), 0),
    ("one_outdated_entry_to_be_kept_untouched_without_behavior", [_ev(7, 61)], [(7, F)], None, 0),
    ("one_outdated_entry_to_be_replaced_with_behavior", [_ev(7, 61)], [(5, F)], R(10, 60, 100, 60), 0),
    ("one_actual_entry_to_be_not_touched_with_behavior", [_ev(7, 58)], [(7, F), (5, F)], R(10, 60, 100, 60), 7),
    ("two_entries,_one_of_them_to_be_replaced", [_ev(7, 61), _ev(6, 59)], [(5, F), (6, F)], R(10, 60), 6),
    ("replace_one_entry,_use_policies_with_different_periods", [_ev(8, 29), _ev(6, 59), _ev(7, 61), _ev(9, 61)],
     [(8, F), (6, F), (7, T), (5, F)], R(10, 60, 100, 30), 14),
    ("two_entries,_both_actual", [_ev(7, 58), _ev(6, 59)], [(7, F), (6, F), (5, F)], R(10, 120, 100, 30), 13),
]


@pytest.mark.parametrize("previous, expected, rules, change", [c[1:] for c in STORE_EVENTS],
                         ids=[f"TestStoreScaleEvents/{c[0]}" for c in STORE_EVENTS])
def test_store_scale_events(previous, expected, rules, change):
    for new in (15, 5):  # scale up from 10, then the same history as scale-down events
        events = list(previous)
        assert get_replicas_change_per_period(60, events, NOW) == change
        store_scale_event(events, rules, 10, new, NOW)
        assert [(e.change, e.outdated) for e in events] == expected


# (name, recommendations [(replicas, age)], current, desired, expected, expected stored replicas, up window, down window)
WITH_BEHAVIOR = [
    ("empty_recommendations_for_scaling_down", [], 100, 5, 5, [5], 0, 0),
    ("simple_scale_down_stabilization", [(4, 2 * MIN), (5, MIN)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple_scale_up_stabilization", [(4, 2 * MIN), (5, MIN)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no_scale_down_stabilization", [(1, 2 * MIN), (2, MIN)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no_scale_up_stabilization", [(4, 2 * MIN), (5, MIN)], 1, 3, 3, [4, 5, 3], 0, 300),
    ("no_scale_down_stabilization,_reuse_recommendation_element", [(10, 10 * MIN), (9, 9 * MIN)], 100, 3, 3, [10, 3], 0, 0),
    ("no_scale_up_stabilization,_reuse_recommendation_element", [(10, 10 * MIN), (9, 9 * MIN)], 1, 100, 100, [10, 100], 0, 0),
    ("scale_down_stabilization,_reuse_one_of_obsolete_recommendation_element",
     [(10, 10 * MIN), (4, MIN), (5, 2 * MIN), (9, 9 * MIN)], 100, 3, 5, [10, 4, 5, 3], 0, 180),
    ("scale_up_stabilization,_reuse_one_of_obsolete_recommendation_element",
     [(10, 100 * MIN), (6, MIN), (5, 2 * MIN), (9, 3 * MIN)], 1, 100, 5, [100, 6, 5, 9], 300, 0),
    ("scale_up_and_down_stabilization,_do_not_scale_up_when_prenormalized_rec_goes_down",
     [(2, 100 * MIN), (3, 3 * MIN)], 2, 1, 2, None, 300, 300),
    ("scale_up_and_down_stabilization,_do_not_scale_down_when_prenormalized_rec_goes_up",
     [(2, 100 * MIN), (1, 3 * MIN)], 2, 3, 2, None, 300, 300),
]


@pytest.mark.parametrize("recs, current, desired, expected, stored, up_window, down_window", [c[1:] for c in WITH_BEHAVIOR],
                         ids=[f"TestNormalizeDesiredReplicasWithBehavior/{c[0]}" for c in WITH_BEHAVIOR])
def test_normalize_desired_replicas_with_behavior(recs, current, desired, expected, stored, up_window, down_window):
    log = [TimestampedRecommendation(r, NOW - age) for r, age in recs]
    got, _, _ = stabilize_recommendation_with_behaviors(log, desired, current, NOW, up_window, down_window)
    assert got == expected
    if stored is not None:
        assert [r.replicas for r in log] == stored


GENERATE = [
    ("TestGenerateScaleDownRules/Default_values", "down", None, ((("Percent", 100, 15),), None, "Max")),
    ("TestGenerateScaleDownRules/All_parameters_are_specified", "down",
     dict(policies=[{"type": "Pods", "value": 1, "periodSeconds": 2}, {"type": "Percent", "value": 3, "periodSeconds": 4}],
          stabilizationWindowSeconds=25, selectPolicy="Max"), ((("Pods", 1, 2), ("Percent", 3, 4)), 25, "Max")),
    ("TestGenerateScaleDownRules/Percent_policy_is_specified", "down",
     dict(policies=[{"type": "Percent", "value": 1, "periodSeconds": 2}], selectPolicy="Min"), ((("Percent", 1, 2),), None, "Min")),
    ("TestGenerateScaleDownRules/Pods_policy_is_specified", "down",
     dict(policies=[{"type": "Pods", "value": 3, "periodSeconds": 4}]), ((("Pods", 3, 4),), None, "Max")),
    ("TestGenerateScaleUpRules/Default_values", "up", None, ((("Pods", 4, 15), ("Percent", 100, 15)), 0, "Max")),
    ("TestGenerateScaleUpRules/All_parameters_are_specified", "up",
     dict(policies=[{"type": "Pods", "value": 1, "periodSeconds": 2}, {"type": "Percent", "value": 3, "periodSeconds": 4}],
          stabilizationWindowSeconds=25, selectPolicy="Max"), ((("Pods", 1, 2), ("Percent", 3, 4)), 25, "Max")),
    ("TestGenerateScaleUpRules/Pod_policy_is_specified", "up",
     dict(policies=[{"type": "Pods", "value": 1, "periodSeconds": 2}], selectPolicy="Min"), ((("Pods", 1, 2),), 0, "Min")),
    ("TestGenerateScaleUpRules/Percent_policy_is_specified", "up",
     dict(policies=[{"type": "Percent", "value": 7, "periodSeconds": 10}]), ((("Percent", 7, 10),), 0, "Max")),
    ("TestGenerateScaleUpRules/Pod_policy_and_stabilization_window_are_specified", "up",
     dict(policies=[{"type": "Pods", "value": 4, "periodSeconds": 2}], stabilizationWindowSeconds=25),
     ((("Pods", 4, 2),), 25, "Max")),
    ("TestGenerateScaleUpRules/Percent_policy_and_stabilization_window_are_specified", "up",
     dict(policies=[{"type": "Percent", "value": 7, "periodSeconds": 60}], stabilizationWindowSeconds=25),
     ((("Percent", 7, 60),), 25, "Max")),
]


@pytest.mark.parametrize("direction, given, expected", [c[1:] for c in GENERATE], ids=[c[0] for c in GENERATE])
def test_generate_rules(direction, given, expected):
    key = "scaleUp" if direction == "up" else "scaleDown"
    behavior = {key: given} if given is not None else {}
    rules = getattr(HorizontalPodAutoscalerSpec.model_validate({"maxReplicas": 5, "behavior": behavior}).behavior, key)
    assert (tuple((p.type, p.value, p.periodSeconds) for p in rules.policies), rules.stabilizationWindowSeconds,
            rules.selectPolicy) == expected


def _invalid(reason="FailedGetExternalMetric"):
    return MetricResult("x", "External", "x", "Value", 1, error="boom", condition_reason=reason)


def _valid(p):
    return MetricResult("x", "Resource", "cpu", "Utilization", 50, proposal=p)


@pytest.mark.parametrize("results, spec_replicas, expected", [
    ([_valid(4), _invalid()], 3, 4),
    ([_valid(3), _invalid()], 5, None),
    ([_invalid()], 3, None),
], ids=["TestScaleUpOneMetricInvalid/combine", "TestNoScaleDownOneMetricInvalid/combine", "TestScaleUpBothMetricsEmpty/combine"])
def test_combine_proposals(results, spec_replicas, expected):
    assert combine_proposals(results, spec_replicas) == expected


RECS_EMPTY: list = []
EXT = "queue_length"
# Controller-level cases. (name, dict(spec=..., spec_replicas, status_replicas, pods kwargs, external, recs), expected
# desired, expected AbleToScale reason, expected ScalingLimited reason, expected ScalingActive reason)
CPU3 = dict(levels=[300, 500, 700], requests=[1000, 1000, 1000])
CPU5 = dict(levels=[100, 300, 500, 250, 250], requests=[1000] * 5)
CONTROLLER = [
    ("TestScaleUp", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(3, 3), pods=CPU3), 5, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpUnreadyLessScale", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(3, 3), pods=dict(CPU3, readiness=[F, T, T])),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpHotCpuLessScale", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(3, 3), pods=dict(CPU3, start=[HOT, COOL, COOL])),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpUnreadyNoScale", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(3, 3),
                                       pods=dict(levels=[400, 500, 700], requests=[1000] * 3, readiness=[T, F, F])),
     3, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestScaleUpHotCpuNoScale", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(3, 3),
                                      pods=dict(levels=[400, 500, 700], requests=[1000] * 3, readiness=[T, F, F],
                                                start=[COOL, HOT, HOT])), 3, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestScaleUpIgnoresFailedPods", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(2, 2),
                                          pods=dict(levels=[500, 700], requests=[1000] * 4, readiness=[T, T, F, F],
                                                    phase=["Running", "Running", "Failed", "Failed"])),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpIgnoresDeletionPods", dict(spec=hpa(2, 6, [cpu_metric(30)]), n=(2, 2),
                                            pods=dict(levels=[500, 700], requests=[1000] * 4, readiness=[T, T, F, F],
                                                      deleted=[F, F, T, T])), 4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpCMExternal", dict(spec=hpa(2, 6, [external_metric("Value", 6666)]), n=(3, 3), ext=[8600]),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleUpPerPodCMExternal", dict(spec=hpa(2, 6, [external_metric("AverageValue", 2222)]), n=(3, 3), ext=[8600]),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDown", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5), pods=CPU5, recs=RECS_EMPTY),
     3, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownWithScalingRules", dict(spec=hpa(2, 6, [cpu_metric(50)], scale_up=R(0, 0, 100, 15, 30)), n=(5, 5),
                                           pods=CPU5, recs=RECS_EMPTY), 3, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownStabilizeInitialSize", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5), pods=CPU5, recs=None),
     5, "ScaleDownStabilized", "DesiredWithinRange"),
    ("TestScaleDownCMExternal", dict(spec=hpa(2, 6, [external_metric("Value", 14400)]), n=(5, 5), ext=[8600], recs=RECS_EMPTY),
     3, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownPerPodCMExternal", dict(spec=hpa(2, 6, [external_metric("AverageValue", 3000)]), n=(5, 5), ext=[8600],
                                           recs=RECS_EMPTY), 3, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownIncludeUnreadyPods", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5),
                                             pods=dict(CPU5, readiness=[T, T, T, F, F]), recs=RECS_EMPTY),
     2, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownIgnoreHotCpuPods", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5),
                                           pods=dict(CPU5, start=[COOL, COOL, COOL, HOT, HOT]), recs=RECS_EMPTY),
     2, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownIgnoresFailedPods", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5),
                                            pods=dict(CPU5, requests=[1000] * 7, readiness=[T] * 5 + [F, F],
                                                      phase=["Running"] * 5 + ["Failed"] * 2), recs=RECS_EMPTY),
     3, "SucceededRescale", "DesiredWithinRange"),
    ("TestScaleDownIgnoresDeletionPods", dict(spec=hpa(2, 6, [cpu_metric(50)]), n=(5, 5),
                                              pods=dict(CPU5, requests=[1000] * 7, readiness=[T] * 5 + [F, F],
                                                        deleted=[F] * 5 + [T, T]), recs=RECS_EMPTY),
     3, "SucceededRescale", "DesiredWithinRange"),
    ("TestTolerance", dict(spec=hpa(1, 5, [cpu_metric(100)]), n=(3, 3),
                           pods=dict(levels=[1010, 1030, 1020], requests=[900, 1000, 1100])),
     3, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestToleranceCMExternal", dict(spec=hpa(2, 6, [external_metric("Value", 8666)]), n=(4, 4), ext=[8600]),
     4, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestTolerancePerPodCMExternal", dict(spec=hpa(2, 6, [external_metric("AverageValue", 2200)]), n=(4, 4), ext=[8600]),
     4, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestMinReplicas", dict(spec=hpa(2, 5, [cpu_metric(90)]), n=(3, 3),
                             pods=dict(levels=[10, 95, 10], requests=[900, 1000, 1100]), recs=RECS_EMPTY),
     2, "SucceededRescale", "TooFewReplicas"),
    ("TestMinReplicasDesiredZero", dict(spec=hpa(2, 5, [cpu_metric(90)]), n=(3, 3),
                                        pods=dict(levels=[0, 0, 0], requests=[900, 1000, 1100]), recs=RECS_EMPTY),
     2, "SucceededRescale", "TooFewReplicas"),
    ("TestZeroReplicas", dict(spec=hpa(3, 5, [cpu_metric(90)]), n=(0, 0), pods=dict(requests=[])), 0, "SucceededGetScale", None),
    ("TestTooFewReplicas", dict(spec=hpa(3, 5, [cpu_metric(90)]), n=(2, 2), pods=dict(requests=[])), 3, "SucceededRescale", None),
    ("TestTooManyReplicas", dict(spec=hpa(3, 5, [cpu_metric(90)]), n=(10, 10), pods=dict(requests=[])),
     5, "SucceededRescale", None),
    ("TestScaleUpRCImmediately", dict(spec=hpa(2, 6, [cpu_metric(80)]), n=(1, 1), pods=dict(levels=[0] * 4, requests=[1000] * 4)),
     2, "SucceededRescale", None),
    ("TestScaleDownRCImmediately", dict(spec=hpa(2, 5, [cpu_metric(50)]), n=(6, 6),
                                        pods=dict(levels=[8000, 9500, 1000], requests=[900, 1000, 1100])),
     5, "SucceededRescale", None),
    ("TestMaxReplicas", dict(spec=hpa(2, 5, [cpu_metric(90)]), n=(3, 3),
                             pods=dict(levels=[8000, 9500, 1000], requests=[900, 1000, 1100])),
     5, "SucceededRescale", "TooManyReplicas"),
    ("TestSuperfluousMetrics", dict(spec=hpa(2, 6, [cpu_metric(100)]), n=(4, 4),
                                    pods=dict(levels=[4000, 9500, 3000, 7000, 3200, 2000], requests=[1000] * 4)),
     6, "SucceededRescale", "TooManyReplicas"),
    ("TestMissingMetrics", dict(spec=hpa(2, 6, [cpu_metric(100)]), n=(4, 4), pods=dict(levels=[400, 95], requests=[1000] * 4),
                                recs=RECS_EMPTY), 3, "SucceededRescale", "DesiredWithinRange"),
    ("TestEmptyMetrics", dict(spec=hpa(2, 6, [cpu_metric(100)]), n=(4, 4), pods=dict(levels=[], requests=[1000] * 4)),
     4, "SucceededGetScale", None),
    ("TestEmptyCPURequest", dict(spec=hpa(1, 5, [cpu_metric(100)]), n=(1, 1), pods=dict(levels=[200], requests=[])),
     1, "SucceededGetScale", None),
    ("TestEventCreated", dict(spec=hpa(1, 5, [cpu_metric(50)]), n=(1, 1), pods=dict(levels=[200], requests=[200])),
     2, "SucceededRescale", "DesiredWithinRange"),
    ("TestEventNotCreated", dict(spec=hpa(1, 5, [cpu_metric(50)]), n=(2, 2), pods=dict(levels=[200, 200], requests=[400, 400])),
     2, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestMissingReports", dict(spec=hpa(1, 5, [cpu_metric(50)]), n=(4, 4), pods=dict(levels=[200], requests=[200]),
                                recs=RECS_EMPTY), 2, "SucceededRescale", "DesiredWithinRange"),
    ("TestUpscaleCap", dict(spec=hpa(1, 100, [cpu_metric(10)], scale_up=R(0, 0, 700, 60, 0)), n=(3, 3),
                            pods=dict(levels=[100, 200, 300], requests=[100] * 3)), 24, "SucceededRescale", "ScaleUpLimit"),
    ("TestUpscaleCapGreaterThanMaxReplicas", dict(spec=hpa(1, 20, [cpu_metric(10)], scale_up=R(0, 0, 700, 60, 0)), n=(3, 3),
                                                  pods=dict(levels=[100, 200, 300], requests=[100] * 3)),
     20, "SucceededRescale", "TooManyReplicas"),
    ("TestMoreReplicasThanSpecNoScale", dict(spec=hpa(1, 8, [cpu_metric(50)]), n=(4, 5),
                                             pods=dict(levels=[500] * 5, requests=[1000] * 5)),
     4, "ReadyForNewScale", "DesiredWithinRange"),
    ("TestStabilizeDownscale", dict(spec=hpa(1, 5, [cpu_metric(100)]), n=(4, 4), pods=dict(levels=[50] * 3, requests=[100] * 3),
                                    recs=[(10, 10 * MIN), (4, MIN)]), 4, "ScaleDownStabilized", "DesiredWithinRange"),
    ("TestScaleUpOneMetricEmpty", dict(spec=hpa(2, 6, [cpu_metric(30), external_metric("Value", 100)]), n=(3, 3),
                                       pods=dict(levels=[300, 400, 500], requests=[1000] * 3)),
     4, "SucceededRescale", "DesiredWithinRange"),
    ("TestNoScaleDownOneMetricEmpty", dict(spec=hpa(2, 6, [cpu_metric(50), external_metric("Value", 1000)]), n=(5, 5),
                                           pods=CPU5, recs=RECS_EMPTY), 5, "SucceededGetScale", None),
    ("TestScaleUpBothMetricsEmpty", dict(spec=hpa(2, 6, [external_metric("Value", 1000)]), n=(3, 3),
                                         pods=dict(levels=[], requests=[1000] * 3)), 3, "SucceededGetScale", None),
]


def _decide(case):
    state = HPAState()
    recs = case.get("recs", "seed")
    if recs != "seed":
        state.recommendations = None if recs is None else [TimestampedRecommendation(r, NOW - age) for r, age in recs]
    spec_replicas, status_replicas = case["n"]
    pods = controller_pods(spec_replicas, status_replicas, **case.get("pods", {}))
    external = {EXT: case["ext"]} if "ext" in case else {}
    return reconcile(case["spec"], state, NOW, spec_replicas, status_replicas, pods, external, GO_CONFIG), state


@pytest.mark.parametrize("case, desired, able, limited", [c[1:] for c in CONTROLLER], ids=[c[0] for c in CONTROLLER])
def test_controller(case, desired, able, limited):
    decision, _ = _decide(case)
    assert decision.desired_replicas == desired
    assert decision.rescaled == (desired != case["n"][0])
    assert decision.able_to_scale == able
    assert decision.limited_reason == limited


@pytest.mark.parametrize("name, case, reason", [
    ("FailedGetResourceMetric", dict(spec=hpa(1, 100, [cpu_metric(10)]), n=(3, 3), pods=dict(levels=[], requests=[100] * 3)),
     "FailedGetResourceMetric"),
    ("FailedGetExternalMetric", dict(spec=hpa(1, 100, [external_metric("Value", 300)]), n=(3, 3)), "FailedGetExternalMetric"),
    ("ScalingDisabled", dict(spec=hpa(3, 5, [cpu_metric(90)]), n=(0, 0), pods=dict(requests=[])), "ScalingDisabled"),
], ids=["TestConditionFailedGetMetrics/FailedGetResourceMetric", "TestConditionFailedGetMetrics/FailedGetExternalMetric",
        "TestZeroReplicas/condition"])
def test_scaling_active_condition(name, case, reason):
    decision, state = _decide(case)
    assert (decision.scaling_active, decision.scaling_active_reason) == (False, reason)
    assert not decision.rescaled and decision.proposal is None


def test_scale_up_reports_cpu_utilization():
    """TestScaleUp verifies the reported CPU utilisation (verifyCPUCurrent): 50 %."""
    decision, _ = _decide(CONTROLLER[0][1])
    cpu = decision.metrics[0]
    assert (cpu.current_utilization, cpu.current_value, cpu.proposal) == (50, 500, 5)
    assert decision.reason == "New size: 5; reason: cpu resource utilization (percentage of request) above target"
