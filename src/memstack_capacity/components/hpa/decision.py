"""The Kubernetes HorizontalPodAutoscaler controller's decision, as pure code.

:func:`reconcile` is one pass of ``reconcileAutoscaler`` (``hpa-spec.md`` §2) for one HPA at
one instant. A simpy process calls it every sync period with what the controller would
read (the scale subresource, the selector's pods with their metric samples, the external
metric values) and keeps the :class:`HPAState` between calls, as the controller keeps its
in-memory histories. The :class:`Decision` carries what ``kubectl describe hpa`` shows and
what ``scaling.csv`` records.

The per-metric maths lives in :mod:`~memstack_capacity.components.hpa.calc` and the
normalisation in :mod:`~memstack_capacity.components.hpa.rules`; both are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from memstack_capacity.components.hpa.calc import (
    ControllerConfig,
    MetricError,
    MetricSample,
    PodInfo,
    ReplicaCalc,
    Tolerances,
    external_average_value_replicas,
    external_value_replicas,
    group_pods,
    plain_metric_replicas,
    resource_utilization_replicas,
)
from memstack_capacity.components.hpa.rules import (
    ScaleEvent,
    TimestampedRecommendation,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from memstack_capacity.scenario.hpa import ExternalMetricSource, HorizontalPodAutoscalerSpec, ResourceMetricSource

__all__ = [
    "ControllerConfig", "Decision", "HPAState", "MetricError", "MetricResult", "MetricSample", "PodInfo",
    "ReplicaCalc", "ScaleEvent", "TimestampedRecommendation", "Tolerances", "combine_proposals",
    "compute_metric", "group_pods", "reconcile", "tolerances_for",
]


@dataclass
class HPAState:
    """The controller's in-memory state for one HPA; lost on controller restart.

    ``recommendations`` is ``None`` until the first reconcile seeds it; an existing empty
    list is not re-seeded.
    """

    recommendations: list[TimestampedRecommendation] | None = None
    scale_up_events: list[ScaleEvent] = field(default_factory=list)
    scale_down_events: list[ScaleEvent] = field(default_factory=list)


@dataclass(frozen=True)
class MetricResult:
    """One metric's line in ``kubectl describe hpa``, and its proposal.

    Attributes:
        name: How Kubernetes names the metric in events, e.g.
            ``cpu resource utilization (percentage of request)``.
        source: ``Resource`` or ``External``.
        metric: ``cpu``, ``memory`` or the external metric name.
        target_type: ``Utilization``, ``AverageValue`` or ``Value``.
        target: Percent for ``Utilization``, otherwise milli-units.
        current_utilization: Current percentage of the request (``Utilization`` only).
        current_value: Current average (or total, for ``Value``) in milli-units.
        proposal: The replica count this metric asks for; ``None`` when invalid.
        error: Why the metric is invalid; ``None`` when valid.
        condition_reason: The ``ScalingActive`` reason an invalid metric would set.
    """

    name: str
    source: str
    metric: str
    target_type: str
    target: int
    current_utilization: int | None = None
    current_value: int | None = None
    proposal: int | None = None
    error: str | None = None
    condition_reason: str | None = None

    @property
    def valid(self) -> bool:
        """Whether the metric produced a proposal."""
        return self.error is None


@dataclass(frozen=True)
class Decision:
    """The outcome of one reconcile.

    Attributes:
        time: The reconcile time (s).
        current_replicas: ``scale.spec.replicas`` before the decision.
        status_replicas: ``scale.status.replicas``.
        min_replicas, max_replicas: The HPA's bounds.
        metrics: Per-metric results, in spec order (empty on the short-circuit paths).
        proposal: The combined metric proposal (max over valid metrics); ``None`` when the
            metrics were not read or the combination failed.
        stabilized: The recommendation after stabilisation; ``None`` when not normalised.
        desired_replicas: The replica count the scale now has (``current_replicas`` when it
            did not rescale).
        rescaled: Whether ``scale.spec.replicas`` was written.
        able_to_scale: ``AbleToScale`` reason: ``SucceededRescale``, ``ReadyForNewScale``,
            ``ScaleUpStabilized``, ``ScaleDownStabilized`` or ``SucceededGetScale``.
        scaling_active: ``ScalingActive`` status; ``None`` when not evaluated.
        scaling_active_reason: ``ValidMetricFound``, ``ScalingDisabled`` or the first invalid
            metric's reason (``FailedGetResourceMetric``, ``FailedGetExternalMetric``).
        scaling_limited: ``ScalingLimited`` status; ``None`` when not evaluated.
        limited_reason: ``DesiredWithinRange``, ``TooFewReplicas``, ``TooManyReplicas``,
            ``ScaleUpLimit`` or ``ScaleDownLimit``; ``None`` when not evaluated.
        reason: A short human-readable explanation.
    """

    time: float
    current_replicas: int
    status_replicas: int
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricResult, ...]
    proposal: int | None
    stabilized: int | None
    desired_replicas: int
    rescaled: bool
    able_to_scale: str
    scaling_active: bool | None
    scaling_active_reason: str | None
    scaling_limited: bool | None
    limited_reason: str | None
    reason: str


def tolerances_for(spec: HorizontalPodAutoscalerSpec, config: ControllerConfig) -> Tolerances:
    """``tolerancesForHpa``: the flag both ways, overridden per direction by ``behavior`` tolerances."""
    down = up = config.tolerance
    if spec.behavior is not None and config.configurable_tolerance:
        if spec.behavior.scaleDown is not None and spec.behavior.scaleDown.tolerance is not None:
            down = spec.behavior.scaleDown.tolerance
        if spec.behavior.scaleUp is not None and spec.behavior.scaleUp.tolerance is not None:
            up = spec.behavior.scaleUp.tolerance
    return Tolerances(scale_down=down, scale_up=up)


def compute_metric(
    metric: ResourceMetricSource | ExternalMetricSource,
    spec_replicas: int,
    status_replicas: int,
    pods: Sequence[PodInfo],
    external_values: Mapping[str, Sequence[int]],
    now: float,
    config: ControllerConfig,
    tolerances: Tolerances,
) -> MetricResult:
    """``computeReplicasForMetric`` for one metric spec; never raises for a metric failure."""
    if isinstance(metric, ResourceMetricSource):
        resource, target = metric.resource.name, metric.resource.target
        if target.type == "Utilization":
            base = dict(name=f"{resource} resource utilization (percentage of request)", source="Resource",
                        metric=resource, target_type="Utilization", target=target.averageUtilization)
            try:
                calc = resource_utilization_replicas(spec_replicas, target.averageUtilization, resource, pods, now,
                                                     config, tolerances)
            except MetricError as exc:
                return MetricResult(**base, error=f"failed to get {resource} utilization: {exc}",
                                    condition_reason="FailedGetResourceMetric")
            return MetricResult(**base, current_utilization=calc.utilization, current_value=calc.value,
                                proposal=calc.replicas)
        base = dict(name=f"{resource} resource", source="Resource", metric=resource, target_type="AverageValue",
                    target=metric.target_milli())
        try:
            calc = plain_metric_replicas(spec_replicas, metric.target_milli(), resource, pods, now, config, tolerances)
        except MetricError as exc:
            return MetricResult(**base, error=f"failed to get {resource} usage: {exc}",
                                condition_reason="FailedGetResourceMetric")
        return MetricResult(**base, current_value=calc.value, proposal=calc.replicas)

    name, target_type = metric.external.metric.name, metric.external.target.type
    base = dict(name=f"external metric {name}", source="External", metric=name, target_type=target_type,
                target=metric.target_milli())
    values = external_values.get(name)
    try:
        if values is None:
            raise MetricError(f"unable to get external metric {name}: no metrics returned from external metrics API")
        values = [values] if isinstance(values, int) else list(values)
        if target_type == "Value":
            calc = external_value_replicas(spec_replicas, metric.target_milli(), values, pods, tolerances)
        else:
            calc = external_average_value_replicas(status_replicas, metric.target_milli(), values, tolerances)
    except MetricError as exc:
        return MetricResult(**base, error=f"failed to get {name} external metric: {exc}",
                            condition_reason="FailedGetExternalMetric")
    return MetricResult(**base, current_value=calc.value, proposal=calc.replicas)


def combine_proposals(results: Sequence[MetricResult], spec_replicas: int) -> int | None:
    """``computeReplicasForMetrics``: the max over valid proposals, or ``None`` (fail).

    It fails when every metric is invalid, or when some are invalid and the valid ones
    would scale down: partial failures may scale up, never down.
    """
    replicas = 0
    invalid = 0
    for result in results:
        if not result.valid:
            invalid += 1
            continue
        if replicas == 0 or result.proposal > replicas:
            replicas = result.proposal
    if invalid >= len(results) or (invalid > 0 and replicas < spec_replicas):
        return None
    return replicas


def reconcile(
    spec: HorizontalPodAutoscalerSpec,
    state: HPAState,
    now: float,
    spec_replicas: int,
    status_replicas: int,
    pods: Sequence[PodInfo],
    external_values: Mapping[str, Sequence[int]] | None = None,
    config: ControllerConfig = ControllerConfig(),
) -> Decision:
    """One reconcile of one HPA (``hpa-spec.md`` §2); updates ``state`` in place.

    Args:
        spec: The validated ``hpa:`` block.
        state: The controller's histories for this HPA, kept by the caller between calls.
        now: Simulation time (s).
        spec_replicas: ``scale.spec.replicas`` (what the Deployment asks for).
        status_replicas: ``scale.status.replicas`` (the pods the ReplicaSets have).
        pods: Every pod the selector matches, terminating and Pending ones included.
        external_values: External metric series by name, in milli-units.
        config: Controller flags.

    Returns:
        The :class:`Decision`; apply ``desired_replicas`` when ``rescaled``.
    """
    external_values = external_values or {}
    current, lo, hi = spec_replicas, spec.minReplicas, spec.maxReplicas
    if state.recommendations is None:
        state.recommendations = [TimestampedRecommendation(current, now)]
    common = dict(time=now, current_replicas=current, status_replicas=status_replicas, min_replicas=lo, max_replicas=hi)
    behavior = spec.effective_behavior(int(config.downscale_stabilization_s))

    if spec_replicas == 0 and lo != 0:
        return Decision(**common, metrics=(), proposal=None, stabilized=None, desired_replicas=current, rescaled=False,
                        able_to_scale="SucceededGetScale", scaling_active=False, scaling_active_reason="ScalingDisabled",
                        scaling_limited=None, limited_reason=None,
                        reason="scaling is disabled since the replica count of the target is zero")
    if current > hi or current < lo:
        desired = hi if current > hi else lo
        why = "above Spec.MaxReplicas" if current > hi else "below Spec.MinReplicas"
        _store(state, behavior, current, desired, now)
        return Decision(**common, metrics=(), proposal=None, stabilized=None, desired_replicas=desired, rescaled=True,
                        able_to_scale="SucceededRescale", scaling_active=None, scaling_active_reason=None,
                        scaling_limited=None, limited_reason=None,
                        reason=f"New size: {desired}; reason: Current number of replicas {why}")

    tolerances = tolerances_for(spec, config)
    results = tuple(compute_metric(m, spec_replicas, status_replicas, pods, external_values, now, config, tolerances)
                    for m in spec.metrics)
    proposal = combine_proposals(results, spec_replicas)
    if proposal is None:
        first = next(r for r in results if not r.valid)
        invalid = sum(1 for r in results if not r.valid)
        return Decision(**common, metrics=results, proposal=None, stabilized=None, desired_replicas=current,
                        rescaled=False, able_to_scale="SucceededGetScale", scaling_active=False,
                        scaling_active_reason=first.condition_reason, scaling_limited=None, limited_reason=None,
                        reason=f"invalid metrics ({invalid} invalid out of {len(results)}), first error is: {first.error}")

    prenormalized = max(0, proposal)
    top = max((r for r in results if r.valid), key=lambda r: r.proposal)  # first of the largest, as Go keeps it
    if behavior is None:
        stabilized = stabilize_recommendation(state.recommendations, prenormalized, now, config.downscale_stabilization_s)
        able = "ScaleDownStabilized" if stabilized != prenormalized else "ReadyForNewScale"
        desired, limited_reason, limited_message = convert_desired_replicas_with_rules(current, stabilized, lo, hi, config)
    else:
        stabilized, able, _ = stabilize_recommendation_with_behaviors(
            state.recommendations, prenormalized, current, now,
            behavior.scaleUp.stabilizationWindowSeconds, behavior.scaleDown.stabilizationWindowSeconds)
        if stabilized == prenormalized:
            able = "ReadyForNewScale"
        desired, limited_reason, limited_message = convert_desired_replicas_with_behavior_rate(
            current, stabilized, lo, hi, behavior.scaleUp, behavior.scaleDown,
            state.scale_up_events, state.scale_down_events, now)
    limited = desired != stabilized
    rescaled = desired != current
    if rescaled:
        _store(state, behavior, current, desired, now)
        cause = f"{top.name} above target" if desired > current else "All metrics below target"
        reason = f"New size: {desired}; reason: {cause}"
        able = "SucceededRescale"
    else:
        desired = current
        reason = {"ScaleDownStabilized": "recent recommendations were higher than current one, applying the highest recent recommendation",
                  "ScaleUpStabilized": "recent recommendations were lower than current one, applying the lowest recent recommendation",
                  }.get(able, "recommended size matches current size")
        if limited:
            reason += f"; {limited_message}"
    return Decision(**common, metrics=results, proposal=proposal, stabilized=stabilized, desired_replicas=desired,
                    rescaled=rescaled, able_to_scale=able, scaling_active=True, scaling_active_reason="ValidMetricFound",
                    scaling_limited=limited, limited_reason=limited_reason, reason=reason)


def _store(state: HPAState, behavior, previous: int, new: int, now: float) -> None:
    """Record a rescale in the direction's event history (only with a behaviour)."""
    if behavior is None:
        return
    if new > previous:
        store_scale_event(state.scale_up_events, behavior.scaleUp, previous, new, now)
    else:
        store_scale_event(state.scale_down_events, behavior.scaleDown, previous, new, now)
