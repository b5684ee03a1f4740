"""Per-metric replica proposals, as the Kubernetes HPA's replica calculator computes them.

Pure functions over plain data, with no simpy. Every value is an integer in *milli-units*,
as Kubernetes' ``Quantity.MilliValue()`` gives it: 250 mCPU is ``250``, 1 MiB of memory is
``1048576000``, a backlog of 7 jobs is ``7000``. Times are simulation seconds.

The functions follow ``replica_calculator.go`` (see ``hpa-spec.md`` §3):

* :func:`group_pods` sorts the selector's pods into ready, unready, missing and ignored;
* :func:`resource_utilization_replicas` is ``GetResourceReplicas`` (``averageUtilization``);
* :func:`plain_metric_replicas` is ``calcPlainMetricReplicas`` (``averageValue`` per pod);
* :func:`external_value_replicas` and :func:`external_average_value_replicas` are
  ``GetExternalMetricReplicas`` and ``GetExternalPerPodMetricReplicas``.

A metric that cannot be evaluated raises :class:`MetricError`; the controller then treats
the metric as invalid (``hpa-spec.md`` §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class ControllerConfig:
    """The kube-controller-manager flags and package variables the HPA controller reads."""

    sync_period_s: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    downscale_stabilization_s: float = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
    cpu_initialization_period_s: float = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
    initial_readiness_delay_s: float = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
    scale_up_limit_factor: float = 2.0  # package var scaleUpLimitFactor (the Go tests set 8)
    scale_up_limit_minimum: float = 4.0  # package var scaleUpLimitMinimum
    #: HPAConfigurableTolerance feature gate (beta, on by default since 1.35): honour
    #: ``behavior.scaleUp/scaleDown.tolerance``.
    configurable_tolerance: bool = True


@dataclass(frozen=True)
class MetricSample:
    """One pod's value from a metrics API: milli-units, when it was taken, over what window."""

    value: int
    timestamp: float = 0.0
    window: float = 60.0


@dataclass(frozen=True)
class PodInfo:
    """What the controller's pod lister knows about one pod the selector matches.

    Attributes:
        name: Pod name; samples are matched to pods by it.
        phase: ``Pending``, ``Running``, ``Succeeded`` or ``Failed``.
        deleting: The pod has a deletion timestamp (it is terminating).
        ready: Status of the ``Ready`` condition; ``None`` when the pod has no such condition.
        start_time: ``status.startTime`` in seconds; ``None`` when not set.
        ready_transition_time: ``lastTransitionTime`` of the ``Ready`` condition.
        requests: Sum of the containers' requests per resource (``cpu``, ``memory``), in
            milli-units; a resource absent here means some container lacks the request.
        samples: The pod's metric sample per resource; absent when metrics-server has none.
    """

    name: str
    phase: str = "Running"
    deleting: bool = False
    ready: bool | None = True
    start_time: float | None = None
    ready_transition_time: float = -math.inf
    requests: Mapping[str, int] = field(default_factory=dict)
    samples: Mapping[str, MetricSample] = field(default_factory=dict)


@dataclass(frozen=True)
class Tolerances:
    """The tolerance band ``[1 - scale_down, 1 + scale_up]``, both ends inclusive."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def is_within(self, ratio: float) -> bool:
        """``(1 - down) <= ratio <= (1 + up)``; NaN is never within."""
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class PodGroups:
    """The outcome of :func:`group_pods`."""

    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True)
class ReplicaCalc:
    """One metric's proposal and what ``kubectl describe hpa`` reports as its current value.

    ``utilization`` is the percentage of the request (Utilization targets only); ``value``
    is the average (or total, for External ``Value``) in milli-units, before any adjustment.
    """

    replicas: int
    value: int
    utilization: int | None = None


class MetricError(Exception):
    """Raised when a metric cannot be evaluated this sync, which makes it invalid."""


def trunc_div(a: int, b: int) -> int:
    """Go's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def int32(x: float) -> int:
    """Go ``int32(float64)``, saturated (the out-of-range case is implementation-defined)."""
    if math.isnan(x):
        return 0
    if x >= MAX_INT32:
        return MAX_INT32
    if x <= MIN_INT32:
        return MIN_INT32
    return int(x)


def ceil_int32(x: float) -> int:
    """``int32(math.Ceil(x))``, saturated."""
    return int32(math.ceil(x)) if math.isfinite(x) else int32(x)


def group_pods(
    pods: Sequence[PodInfo],
    samples: Mapping[str, MetricSample],
    resource: str,
    now: float,
    cpu_initialization_period_s: float,
    initial_readiness_delay_s: float,
) -> PodGroups:
    """Sort the pods as ``groupPods`` does (``hpa-spec.md`` §3.2); CPU has extra readiness rules."""
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if resource == "cpu":
            if pod.ready is None or pod.start_time is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period_s > now:
                # Still initialising: drop the sample if the pod is unready, or if one full
                # metric window has not passed since its readiness last changed.
                is_unready = pod.ready is False or sample.timestamp < pod.ready_transition_time + sample.window
            else:
                # Past initialisation: drop it only if it is unready and has never been ready.
                is_unready = pod.ready is False and pod.start_time + initial_readiness_delay_s > pod.ready_transition_time
            if is_unready:
                unready.add(pod.name)
                continue
        ready_count += 1
    return PodGroups(ready_count, frozenset(unready), frozenset(missing), frozenset(ignored))


def _samples_for(pods: Sequence[PodInfo], resource: str, samples: Mapping[str, MetricSample] | None) -> dict[str, MetricSample]:
    if samples is not None:
        return dict(samples)
    return {pod.name: pod.samples[resource] for pod in pods if resource in pod.samples}


def _utilization_ratio(values: Mapping[str, int], requests: Mapping[str, int], target: int) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``: (ratio, utilisation %, raw average)."""
    total = request_total = entries = 0
    for name, value in values.items():
        if name not in requests:  # a sample for a pod the lister does not know: superfluous
            continue
        total += value
        request_total += requests[name]
        entries += 1
    if request_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = int32(trunc_div(total * 100, request_total))
    return float(utilization) / float(target), utilization, trunc_div(total, entries)


def _adjusted_replicas(current: int, ratio: float, new_ratio: float, n_samples: int, tolerances: Tolerances) -> int:
    """The tail both pod-metric calculations share, after missing and unready pods are filled in."""
    if tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current  # too small a change, or the fill-ins flipped the direction
    new_replicas = ceil_int32(new_ratio * n_samples)
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return current  # more samples than replicas (surge pods) would flip the direction
    return new_replicas


def _grouped_samples(pods, resource: str, now: float, config, samples):
    """The pods grouped as the controller groups them, and the usable samples by pod name.

    The common start of ``GetResourceReplicas`` and ``calcPlainMetricReplicas``: no samples,
    no pods, or no sample left after dropping ignored and unready pods makes the metric invalid.
    """
    metrics = _samples_for(pods, resource, samples)
    if not metrics:
        raise MetricError(f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API")
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, now, config.cpu_initialization_period_s, config.initial_readiness_delay_s)
    values = {name: s.value for name, s in metrics.items() if name not in groups.ignored and name not in groups.unready}
    if not values:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return groups, values


def resource_utilization_replicas(
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[PodInfo],
    now: float,
    config: ControllerConfig = ControllerConfig(),
    tolerances: Tolerances | None = None,
    samples: Mapping[str, MetricSample] | None = None,
) -> ReplicaCalc:
    """``GetResourceReplicas``: the proposal for a Resource metric with ``averageUtilization``.

    Args:
        current_replicas: ``scale.spec.replicas``.
        target_utilization: Target percentage of the request.
        resource: ``cpu`` or ``memory``.
        pods: Every pod the selector matches.
        now: The reconcile time.
        config: Controller flags (CPU initialisation period, readiness delay).
        tolerances: The tolerance band; defaults to ``config.tolerance`` both ways.
        samples: Samples by pod name; defaults to the pods' own. Lets a caller pass samples
            for pods the lister does not know, as the metrics API can.
    """
    tol = tolerances or Tolerances(config.tolerance, config.tolerance)
    groups, values = _grouped_samples(pods, resource, now, config, samples)
    requests: dict[str, int] = {}
    for pod in pods:
        if resource not in pod.requests:
            raise MetricError(f"missing request for {resource} in Pod {pod.name}")
        requests[pod.name] = pod.requests[resource]
    ratio, utilization, raw = _utilization_ratio(values, requests, target_utilization)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return ReplicaCalc(current_replicas, raw, utilization)
        return ReplicaCalc(ceil_int32(ratio * groups.ready_count), raw, utilization)

    if groups.missing:
        if ratio < 1.0:
            # Scale-down: a missing pod counts as using 100 % of its request (or the target, if higher).
            fallback = max(100, target_utilization)
            for name in groups.missing:
                values[name] = trunc_div(requests[name] * fallback, 100)
        elif ratio > 1.0:
            for name in groups.missing:  # scale-up: a missing pod counts as idle
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:  # scale-up: an unready pod counts as idle
            values[name] = 0
    new_ratio, _, _ = _utilization_ratio(values, requests, target_utilization)
    return ReplicaCalc(_adjusted_replicas(current_replicas, ratio, new_ratio, len(values), tol), raw, utilization)


def plain_metric_replicas(
    current_replicas: int,
    target_value: int,
    resource: str,
    pods: Sequence[PodInfo],
    now: float,
    config: ControllerConfig = ControllerConfig(),
    tolerances: Tolerances | None = None,
    samples: Mapping[str, MetricSample] | None = None,
) -> ReplicaCalc:
    """``calcPlainMetricReplicas``: a per-pod ``averageValue`` target (milli-units).

    ``resource`` is the Resource metric's name (``cpu`` keeps the CPU readiness rules), or
    ``""`` for a Pods metric, which skips them.
    """
    tol = tolerances or Tolerances(config.tolerance, config.tolerance)
    groups, values = _grouped_samples(pods, resource, now, config, samples)

    def usage_ratio() -> tuple[float, int]:
        usage = trunc_div(sum(values.values()), len(values))
        return float(usage) / float(target_value), usage

    ratio, usage = usage_ratio()
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return ReplicaCalc(current_replicas, usage)
        return ReplicaCalc(ceil_int32(ratio * groups.ready_count), usage)

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:  # scale-down: a missing pod counts as exactly on target
                values[name] = target_value
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0
    new_ratio, _ = usage_ratio()
    return ReplicaCalc(_adjusted_replicas(current_replicas, ratio, new_ratio, len(values), tol), usage)


def _sum_capped(values: Sequence[int]) -> int:
    if len(values) == 0:
        raise MetricError("no metrics returned from external metrics API")
    total = 0
    for value in values:
        total += value
        if total > MAX_INT64 or total < 0:  # Go's overflow guard: a wrapped sum becomes MaxInt64
            total = MAX_INT64
    return total


def ready_pod_count(pods: Sequence[PodInfo]) -> int:
    """``getReadyPodsCount``: Running pods whose Ready condition is True (deletion not checked)."""
    if not pods:
        raise MetricError("unable to calculate ready pods: no pods returned by selector while calculating replica count")
    return sum(1 for pod in pods if pod.phase == "Running" and pod.ready is True)


def external_value_replicas(
    current_replicas: int,
    target_value: int,
    values: Sequence[int],
    pods: Sequence[PodInfo],
    tolerances: Tolerances = Tolerances(),
) -> ReplicaCalc:
    """``GetExternalMetricReplicas``: an External metric with a ``value`` target (milli-units).

    The series are summed; the proposal scales the *Running and Ready* pod count.
    """
    usage = _sum_capped(values)
    ratio = float(usage) / float(target_value)
    if current_replicas != 0:
        if tolerances.is_within(ratio):
            return ReplicaCalc(current_replicas, usage)
        return ReplicaCalc(ceil_int32(ratio * ready_pod_count(pods)), usage)
    return ReplicaCalc(ceil_int32(ratio), usage)  # from zero: no tolerance, no pod count


def external_average_value_replicas(
    status_replicas: int,
    target_value: int,
    values: Sequence[int],
    tolerances: Tolerances = Tolerances(),
) -> ReplicaCalc:
    """``GetExternalPerPodMetricReplicas``: an External ``averageValue`` target, against ``status.replicas``."""
    usage = _sum_capped(values)
    if status_replicas == 0:
        ratio = math.inf if usage > 0 else math.nan
        average = MAX_INT64 if usage > 0 else 0
    else:
        ratio = float(usage) / (float(target_value) * float(status_replicas))
        average = min(MAX_INT64, math.ceil(float(usage) / float(status_replicas)))
    replicas = status_replicas
    if not tolerances.is_within(ratio):
        replicas = ceil_int32(float(usage) / float(target_value))
    return ReplicaCalc(replicas, average)
