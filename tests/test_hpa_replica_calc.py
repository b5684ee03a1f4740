"""Conformance of the per-metric replica calculation with ``replica_calculator_test.go``.

Each case id names the Go test (and sub-test) it is ported from. Levels and requests are
per container; the Go fakes give each pod two containers, so pod values are doubled.
"""

from __future__ import annotations

import math

import pytest
from test_hpa_fixtures import COOL, GO_CONFIG, HOT, NOW, ZERO, calc_pods

from memstack_capacity.components.hpa.calc import (
    MAX_INT32,
    MAX_INT64,
    MetricError,
    MetricSample,
    PodInfo,
    Tolerances,
    external_average_value_replicas,
    external_value_replicas,
    group_pods,
    plain_metric_replicas,
    resource_utilization_replicas,
)

R1 = [1000] * 7  # "1.0" per container
T, F = True, False

# (id, current, fixture kwargs, target %, expected replicas, utilisation, raw value, tolerances)
RESOURCE_CASES = [
    ("TestReplicaCalcResourceScale/scale_up", 3, dict(requests=R1[:3], levels=[300, 500, 700]), 30, 5, 50, 2 * 500),
    ("TestReplicaCalcResourceScale/scale_up:_unready_pod_scales_less", 3,
     dict(readiness=[F, T, T], requests=R1[:3], levels=[300, 500, 700]), 30, 4, 60, 2 * 600),
    ("TestReplicaCalcResourceScale/scale_up:_hot-CPU_pod_scales_less", 3,
     dict(start=[HOT, COOL, COOL], requests=R1[:3], levels=[300, 500, 700]), 30, 4, 60, 2 * 600),
    ("TestReplicaCalcResourceScale/no_scale:_unready_pods_ignored", 3,
     dict(readiness=[T, F, F], requests=R1[:3], levels=[400, 500, 700]), 30, 3, 40, 2 * 400),
    ("TestReplicaCalcResourceScale/no_scale:_hot-CPU_pods_ignored", 3,
     dict(readiness=[T, F, F], start=[COOL, HOT, HOT], requests=R1[:3], levels=[400, 500, 700]), 30, 3, 40, 2 * 400),
    ("TestReplicaCalcResourceScale/scale_up:_failed_pods_ignored", 2,
     dict(readiness=[T, T, F, F], phase=["Running", "Running", "Failed", "Failed"], requests=R1[:4], levels=[500, 700]),
     30, 4, 60, 2 * 600),
    ("TestReplicaCalcResourceScale/scale_up:_pods_being_deleted_are_ignored", 2,
     dict(readiness=[T, T, F, F], phase=["Running"] * 4, deleted=[F, F, T, T], requests=R1[:4], levels=[500, 700]),
     30, 4, 60, 2 * 600),
    ("TestReplicaCalcResourceScale/scale_down", 5, dict(requests=R1[:5], levels=[100, 300, 500, 250, 250]), 50, 3, 28, 2 * 280),
    ("TestReplicaCalcResourceScale/scale_down:_exclude_unready_pods", 5,
     dict(readiness=[T, T, T, F, F], requests=R1[:5], levels=[100, 300, 500, 250, 250]), 50, 2, 30, 2 * 300),
    ("TestReplicaCalcResourceScale/scale_down:_exclude_unscheduled_pods", 5,
     dict(readiness=[T, F, F, F, F], phase=["Running"] + ["Pending"] * 4, requests=R1[:5], levels=[100]), 50, 1, 10, 2 * 100),
    ("TestReplicaCalcResourceScale/scale_down:_ignore_hot-CPU_pods", 5,
     dict(start=[COOL, COOL, COOL, HOT, HOT], requests=R1[:5], levels=[100, 300, 500, 250, 250]), 50, 2, 30, 2 * 300),
    ("TestReplicaCalcResourceScale/scale_down:_failed_pods_ignored", 5,
     dict(readiness=[T] * 5 + [F, F], phase=["Running"] * 5 + ["Failed"] * 2, requests=R1,
          levels=[100, 300, 500, 250, 250]), 50, 3, 28, 2 * 280),
    ("TestReplicaCalcResourceScale/scale_down:_pods_being_deleted_are_ignored", 5,
     dict(readiness=[T] * 5 + [F, F], phase=["Running"] * 7, deleted=[F] * 5 + [T, T], requests=R1,
          levels=[100, 300, 500, 250, 250]), 50, 3, 28, 2 * 280),
    ("TestReplicaCalcTolerance", 3, dict(requests=[900, 1000, 1100], levels=[1010, 1030, 1020]), 100, 3, 102, 2 * 1020),
    ("TestReplicaCalcSuperfluousMetrics", 4, dict(requests=R1[:4], levels=[4000, 9500, 3000, 7000, 3200, 2000]),
     100, 24, 587, 2 * 5875),
    ("TestReplicaCalcMissingMetrics", 4, dict(requests=R1[:4], levels=[400, 95]), 100, 3, 24, 495),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, dict(requests=R1[:2], levels=[1000]), 100, 2, 100, 2 * 1000),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, dict(requests=R1[:2], levels=[1900]), 100, 2, 190, 2 * 1900),
    ("TestReplicaCalcMissingMetricsNoChangeLt", 2, dict(requests=R1[:2], levels=[600]), 100, 2, 60, 2 * 600),
    ("TestReplicaCalcMissingMetricsUnreadyChange", 3, dict(readiness=[F, T, T], requests=R1[:3], levels=[100, 450]),
     50, 3, 45, 2 * 450),
    ("TestReplicaCalcMissingMetricsHotCpuNoChange", 3, dict(start=[HOT, COOL, COOL], requests=R1[:3], levels=[100, 450]),
     50, 3, 45, 2 * 450),
    ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3, dict(readiness=[F, T, T], requests=R1[:3], levels=[100, 2000]),
     50, 4, 200, 2 * 2000),
    ("TestReplicaCalcMissingMetricsHotCpuScaleUp", 3,
     dict(readiness=[F, T, T], start=[HOT, COOL, COOL], requests=R1[:3], levels=[100, 2000]), 50, 4, 200, 2 * 2000),
    ("TestReplicaCalcMissingMetricsUnreadyScaleDown", 4, dict(readiness=[F, T, T, T], requests=R1[:4], levels=[100, 100, 100]),
     50, 3, 10, 2 * 100),
    ("TestReplicaCalcMissingMetricsScaleDownTargetOver100", 4,
     dict(readiness=[F, T, T, T], requests=[1000, 1000, 2000, 2000], levels=[200, 100, 100]), 300, 2, 6, 2 * 100),
    ("TestReplicaCalcDuringRollingUpdateWithMaxSurge", 2, dict(phase=["Running"] * 3, requests=R1[:3], levels=[100, 100]),
     50, 2, 10, 2 * 100),
]


@pytest.mark.parametrize("current, fixture, target, replicas, utilization, raw", [c[1:] for c in RESOURCE_CASES],
                         ids=[c[0] for c in RESOURCE_CASES])
def test_resource_replicas(current, fixture, target, replicas, utilization, raw):
    pods, samples = calc_pods(current, **fixture)
    calc = resource_utilization_replicas(current, target, "cpu", pods, NOW, GO_CONFIG, samples=samples)
    assert (calc.replicas, calc.utilization, calc.value) == (replicas, utilization, raw)


CONFIGURABLE = [
    ("TestReplicaCalcConfigurableTolerance/Outside_of_a_0%_tolerance", Tolerances(0.0, 0.0), [909, 1010, 1111], 4, 101),
    ("TestReplicaCalcConfigurableTolerance/Within_a_200%_scale-up_tolerance", Tolerances(0.1, 2.0), [1890, 1910, 1900], 3, 190),
    ("TestReplicaCalcConfigurableTolerance/Outside_8%_scale-up_tolerance", Tolerances(2.0, 0.08), [1100, 1080, 1090], 4, 109),
    ("TestReplicaCalcConfigurableTolerance/Within_a_36%_scale-down_tolerance", Tolerances(0.36, 0.1), [660, 640, 650], 3, 65),
    ("TestReplicaCalcConfigurableTolerance/Outside_a_34%_scale-down_tolerance", Tolerances(0.34, 0.1), [660, 640, 650], 2, 65),
]


@pytest.mark.parametrize("tolerances, levels, replicas, utilization", [c[1:] for c in CONFIGURABLE],
                         ids=[c[0] for c in CONFIGURABLE])
def test_configurable_tolerance(tolerances, levels, replicas, utilization):
    pods, samples = calc_pods(3, requests=[900, 1000, 1100], levels=levels)
    calc = resource_utilization_replicas(3, 100, "cpu", pods, NOW, GO_CONFIG, tolerances, samples)
    assert (calc.replicas, calc.utilization, calc.value) == (replicas, utilization, 2 * (sum(levels) // 3))


@pytest.mark.parametrize("case", ["tc1", "tc2"], ids=["TestReplicaCalcComputedToleranceAlgImplementation/scale",
                                                      "TestReplicaCalcComputedToleranceAlgImplementation/no_scale"])
def test_computed_tolerance(case):
    start_pods, used = 10, 10 * 150
    requested = 2 * used
    requested_to_used = float(requested // used)
    per_pod = requested // start_pods
    margin = 0.01 if case == "tc1" else 0.004
    target = abs(1 / (requested_to_used * (1 - 0.1))) + margin
    target_pct = int(target * 100)
    expected = math.ceil(float(used) / (float(requested) * target) * start_pods) if case == "tc1" else start_pods
    offsets = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0]
    # Go's requests are per pod here ("%dm" each container); the fixture doubles both sides alike.
    pods, samples = calc_pods(start_pods, requests=[per_pod + o for o in offsets], levels=[used // 10] * 10)
    calc = resource_utilization_replicas(start_pods, target_pct, "cpu", pods, NOW, GO_CONFIG, samples=samples)
    assert calc.replicas == expected
    assert calc.utilization == (used * 100) // requested


ERROR_CASES = [
    ("TestReplicaCalcDisjointResourcesMetrics", 1, dict(requests=[1000], levels=[100], pod_names=["an-older-pod-name"]),
     "no metrics returned matched known pods"),
    ("TestReplicaCalcEmptyMetrics", 4, dict(requests=R1[:3], levels=[]),
     "unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
    ("TestReplicaCalcEmptyCPURequest", 1, dict(requests=[], levels=[200]), "missing request for"),
]


@pytest.mark.parametrize("current, fixture, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_resource_errors(current, fixture, message):
    pods, samples = calc_pods(current, **fixture)
    with pytest.raises(MetricError, match=message):
        resource_utilization_replicas(current, 100, "cpu", pods, NOW, GO_CONFIG, samples=samples)


# Pods metrics (calcPlainMetricReplicas with resource ""): (id, current, kwargs, target, replicas, usage, tolerances)
PLAIN_CASES = [
    ("TestReplicaCalcScaleUpCM", 3, dict(levels=[20000, 10000, 30000]), 15000, 4, 20000, None),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3,
     dict(readiness=[T, T, F], start=[COOL, COOL, HOT], levels=[50000, 10000, 30000]), 15000, 6, 30000, None),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3,
     dict(readiness=[F, T, F], start=[HOT, COOL, HOT], levels=[50000, 15000, 30000]), 15000, 7, 31666, None),
    ("TestReplicaCalcScaleUpCMExternal", 1, dict(levels=[8600]), 4400, 2, 8600, None),
    ("TestReplicaCalcScaleUpCMExternalNoLabels", 1, dict(levels=[8600]), 4400, 2, 8600, None),
    ("TestReplicaCalcScaleDownCM", 5, dict(levels=[12000] * 5), 20000, 3, 12000, None),
    ("TestReplicaCalcToleranceCM", 3, dict(levels=[20000, 21000, 21000]), 20000, 3, 20666, None),
    ("TestReplicaCalcConfigurableToleranceCM", 3, dict(levels=[20000, 21000, 21000]), 20000, 4, 20666, Tolerances(0.1, 0.01)),
    ("TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", 5, dict(levels=[20000, 19000, 21000]), 20000, 5, 20000, None),
    ("TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM", 2, dict(phase=["Running"] * 3, levels=[10000, 10000]),
     17000, 2, 10000, None),
]


@pytest.mark.parametrize("current, fixture, target, replicas, usage, tolerances", [c[1:] for c in PLAIN_CASES],
                         ids=[c[0] for c in PLAIN_CASES])
def test_plain_metric_replicas(current, fixture, target, replicas, usage, tolerances):
    pods, samples = calc_pods(current, resource="", per_container=False, **fixture)
    calc = plain_metric_replicas(current, target, "", pods, NOW, GO_CONFIG, tolerances, samples)
    assert (calc.replicas, calc.value) == (replicas, usage)


# External Value (GetExternalMetricReplicas): (id, current, readiness, levels, target, replicas, usage, tolerances)
EXTERNAL_VALUE = [
    ("TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods", 3, [F, T, F], [8600], 4400, 2, 8600, None),
    ("TestReplicaCalcScaleDownCMExternal", 5, None, [8600], 14334, 3, 8600, None),
    ("TestReplicaCalcToleranceCMExternal", 3, None, [8600], 8888, 3, 8600, None),
    ("TestReplicaCalcConfigurableToleranceCMExternal", 3, None, [8900], 8800, 4, 8900, Tolerances(0.1, 0.01)),
    ("TestReplicaCalcExternalMetricUsageOverflow", 3, None, [MAX_INT64 // 2 + 1] * 2, MAX_INT64, 3, MAX_INT64, None),
]


@pytest.mark.parametrize("current, readiness, levels, target, replicas, usage, tolerances", [c[1:] for c in EXTERNAL_VALUE],
                         ids=[c[0] for c in EXTERNAL_VALUE])
def test_external_value(current, readiness, levels, target, replicas, usage, tolerances):
    pods, _ = calc_pods(current, readiness=readiness)
    calc = external_value_replicas(current, target, levels, pods, tolerances or Tolerances())
    assert (calc.replicas, calc.value) == (replicas, usage)


# External AverageValue (GetExternalPerPodMetricReplicas): (id, status replicas, levels, target, replicas, usage, tolerances)
EXTERNAL_AVERAGE = [
    ("TestReplicaCalcScaleUpPerPodCMExternal", 3, [8600], 2150, 4, 2867, None),
    ("TestReplicaCalcScaleDownPerPodCMExternal", 5, [8600], 2867, 3, 1720, None),
    ("TestReplicaCalcTolerancePerPodCMExternal", 3, [8600], 2900, 3, 2867, None),
    ("TestReplicaCalcConfigurableTolerancePerPodCMExternal", 3, [8600], 2800, 4, 2867, Tolerances(0.1, 0.01)),
    ("TestExternalPerPodMetricReplicaOverflow", 1, [MAX_INT64], 1, MAX_INT32, MAX_INT64, None),
    ("TestExternalPerPodMetricUsageOverflow", 1, [MAX_INT64], MAX_INT64, 1, MAX_INT64, None),
]


@pytest.mark.parametrize("status, levels, target, replicas, usage, tolerances", [c[1:] for c in EXTERNAL_AVERAGE],
                         ids=[c[0] for c in EXTERNAL_AVERAGE])
def test_external_average_value(status, levels, target, replicas, usage, tolerances):
    calc = external_average_value_replicas(status, target, levels, tolerances or Tolerances())
    assert (calc.replicas, calc.value) == (replicas, usage)


def _pod(name, phase="Succeeded", start=None, ready=None, transition=-math.inf, deleting=False):
    return PodInfo(name=name, phase=phase, start_time=start, ready=ready, ready_transition_time=transition, deleting=deleting)


# TestGroupPods: (name, pods, samples, resource, ready count, unready, missing, ignored)
GROUP_CASES = [
    ("void", [], {}, "cpu", 0, set(), set(), set()),
    ("count_in_a_ready_pod_-_memory", [_pod("bentham")], {"bentham": MetricSample(1, NOW, 60)}, "memory", 1, set(), set(), set()),
    ("unready_a_pod_without_ready_condition_-_CPU", [_pod("lucretius", start=NOW)], {"lucretius": MetricSample(1, ZERO, 0)},
     "cpu", 0, {"lucretius"}, set(), set()),
    ("count_in_a_ready_pod_with_fresh_metrics_during_initialization_period_-_CPU",
     [_pod("bentham", start=NOW - 60, ready=True, transition=NOW - 30)], {"bentham": MetricSample(1, NOW, 30)},
     "cpu", 1, set(), set(), set()),
    ("unready_a_ready_pod_without_fresh_metrics_during_initialization_period_-_CPU",
     [_pod("bentham", start=NOW - 60, ready=True, transition=NOW - 30)], {"bentham": MetricSample(1, NOW, 60)},
     "cpu", 0, {"bentham"}, set(), set()),
    ("unready_an_unready_pod_during_initialization_period_-_CPU",
     [_pod("lucretius", start=NOW - 600, ready=False, transition=NOW - 594)], {"lucretius": MetricSample(1, ZERO, 0)},
     "cpu", 0, {"lucretius"}, set(), set()),
    ("count_in_a_ready_pod_without_fresh_metrics_after_initialization_period_-_CPU",
     [_pod("bentham", start=NOW - 180, ready=True, transition=NOW - 180)], {"bentham": MetricSample(1, NOW - 120, 60)},
     "cpu", 1, set(), set(), set()),
    ("count_in_an_unready_pod_that_was_ready_after_initialization_period_-_CPU",
     [_pod("lucretius", start=NOW - 600, ready=False, transition=NOW - 540)], {"lucretius": MetricSample(1, ZERO, 0)},
     "cpu", 1, set(), set(), set()),
    ("unready_pod_that_has_never_been_ready_after_initialization_period_-_CPU",
     [_pod("lucretius", start=NOW - 600, ready=False, transition=NOW - 590)], {"lucretius": MetricSample(1, ZERO, 0)},
     "cpu", 1, set(), set(), set()),
    ("a_missing_pod", [_pod("epicurus", start=NOW - 180)], {}, "cpu", 0, set(), {"epicurus"}, set()),
    ("several_pods",
     [_pod("lucretius", start=NOW), _pod("niccolo", start=NOW - 180, ready=True, transition=NOW - 180),
      _pod("epicurus", start=NOW - 180)],
     {"lucretius": MetricSample(1, ZERO, 0), "niccolo": MetricSample(1, ZERO, 0)}, "cpu", 1, {"lucretius"}, {"epicurus"}, set()),
    ("pending_pods_are_unreadied", [_pod("unscheduled", phase="Pending")], {}, "cpu", 0, {"unscheduled"}, set(), set()),
    ("ignore_pods_with_deletion_timestamps", [_pod("deleted", phase="Pending", deleting=True)],
     {"deleted": MetricSample(1, ZERO, 0)}, "cpu", 0, set(), set(), {"deleted"}),
    ("ignore_pods_in_a_failed_state", [_pod("failed", phase="Failed")], {"failed": MetricSample(1, ZERO, 0)},
     "cpu", 0, set(), set(), {"failed"}),
]


@pytest.mark.parametrize("pods, samples, resource, ready, unready, missing, ignored", [c[1:] for c in GROUP_CASES],
                         ids=[f"TestGroupPods/{c[0]}" for c in GROUP_CASES])
def test_group_pods(pods, samples, resource, ready, unready, missing, ignored):
    groups = group_pods(pods, samples, resource, NOW, 120.0, 10.0)
    assert (groups.ready_count, set(groups.unready), set(groups.missing), set(groups.ignored)) == (ready, unready, missing, ignored)
