"""Stabilisation, rate limits and min/max clamping: the HPA controller's normalisation step.

Pure functions over the controller's in-memory histories (``hpa-spec.md`` §6–§8):

* legacy path (``behavior`` is ``None``): :func:`stabilize_recommendation` then
  :func:`convert_desired_replicas_with_rules`;
* behaviour path: :func:`stabilize_recommendation_with_behaviors` then
  :func:`convert_desired_replicas_with_behavior_rate`, and :func:`store_scale_event` after
  every rescale.

Histories are plain lists that these functions update in place, reusing stale slots
exactly where Kubernetes does, so the lists are not in time order. Time windows keep the
controller's strict and inclusive comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from memstack_capacity.components.hpa.calc import MAX_INT32, MIN_INT32, ControllerConfig, int32
from memstack_capacity.scenario.hpa import HPAScalingRules


@dataclass(frozen=True)
class TimestampedRecommendation:
    """An *unstabilised* recommendation and when it was made."""

    replicas: int
    timestamp: float


@dataclass(frozen=True)
class ScaleEvent:
    """A rescale: by how many pods (always positive), when, and whether its slot may be reused."""

    change: int
    timestamp: float
    outdated: bool = False


def stabilize_recommendation(
    recommendations: list[TimestampedRecommendation], prenormalized: int, now: float, window_s: float
) -> int:
    """Legacy ``stabilizeRecommendation``: the highest recommendation of the last ``window_s``.

    Records ``prenormalized`` in the last slot older than the window, or appends it.
    """
    highest = prenormalized
    old_index = None
    cutoff = now - window_s
    for i, rec in enumerate(recommendations):
        if rec.timestamp < cutoff:
            old_index = i
        elif rec.replicas > highest:
            highest = rec.replicas
    new = TimestampedRecommendation(prenormalized, now)
    if old_index is not None:
        recommendations[old_index] = new
    else:
        recommendations.append(new)
    return highest


def calculate_scale_up_limit(current: int, config: ControllerConfig) -> int:
    """Legacy cap: ``int32(max(scaleUpLimitFactor × current, scaleUpLimitMinimum))``."""
    return int32(max(config.scale_up_limit_factor * float(current), config.scale_up_limit_minimum))


def convert_desired_replicas_with_rules(
    current: int, desired: int, min_replicas: int, max_replicas: int, config: ControllerConfig
) -> tuple[int, str, str]:
    """Legacy ``convertDesiredReplicasWithRules``: clamp to min, max and the scale-up cap.

    Returns:
        (replicas, ScalingLimited reason, message).
    """
    scale_up_limit = calculate_scale_up_limit(current, config)
    if max_replicas > scale_up_limit:
        maximum, reason, message = scale_up_limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum, reason, message = max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def stabilize_recommendation_with_behaviors(
    recommendations: list[TimestampedRecommendation],
    desired: int,
    current: int,
    now: float,
    up_window_s: float,
    down_window_s: float,
) -> tuple[int, str, str]:
    """``stabilizeRecommendationWithBehaviors``: scale up to the lowest and down to the highest
    recommendation of the respective window (both windows strict), otherwise stay put.

    Records ``desired`` in the last slot older than both windows, or appends it.

    Returns:
        (stabilised replicas, AbleToScale reason if it differs from ``desired``, message).
    """
    up_rec = down_rec = desired
    up_cutoff, down_cutoff = now - up_window_s, now - down_window_s
    old_index = None
    for i, rec in enumerate(recommendations):
        if rec.timestamp > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.timestamp > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old_index = i
    stabilized = min(max(current, up_rec), down_rec)
    new = TimestampedRecommendation(desired, now)
    if old_index is not None:
        recommendations[old_index] = new
    else:
        recommendations.append(new)
    if desired >= current:
        return stabilized, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
    return stabilized, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"


def get_replicas_change_per_period(period_s: float, events: Sequence[ScaleEvent], now: float) -> int:
    """Sum of the changes of the events strictly newer than ``now - period_s``."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.timestamp > cutoff)


def _period_start(current: int, period_s: float, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent], now: float) -> int:
    return current - get_replicas_change_per_period(period_s, up, now) + get_replicas_change_per_period(period_s, down, now)


def calculate_scale_up_limit_with_scaling_rules(
    current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent], rules: HPAScalingRules, now: float
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the scale-up policies allow now."""
    if rules.selectPolicy == "Disabled":
        return current
    use_min = rules.selectPolicy == "Min"
    result = MAX_INT32 if use_min else MIN_INT32
    for policy in rules.policies or ():
        start = _period_start(current, policy.periodSeconds, up_events, down_events, now)
        if policy.type == "Pods":
            proposed = start + policy.value
        else:  # rounded up, or a small percentage could never add a pod
            proposed = int32(math.ceil(float(start) * (1 + float(policy.value) / 100)))
        result = min(result, proposed) if use_min else max(result, proposed)
    return result


def calculate_scale_down_limit_with_behaviors(
    current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent], rules: HPAScalingRules, now: float
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the scale-down policies allow now."""
    if rules.selectPolicy == "Disabled":
        return current
    use_min = rules.selectPolicy == "Min"
    result = MIN_INT32 if use_min else MAX_INT32
    for policy in rules.policies or ():
        start = _period_start(current, policy.periodSeconds, up_events, down_events, now)
        if policy.type == "Pods":
            proposed = start - policy.value
        else:  # truncated toward zero, float64 as in Go
            proposed = int32(float(start) * (1 - float(policy.value) / 100))
        result = max(result, proposed) if use_min else min(result, proposed)
    return result


def convert_desired_replicas_with_behavior_rate(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    scale_up: HPAScalingRules,
    scale_down: HPAScalingRules,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    now: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: apply the policies' rate limits and min/max.

    Returns:
        (replicas, ScalingLimited reason, message).
    """
    if desired > current:
        limit = max(calculate_scale_up_limit_with_scaling_rules(current, up_events, down_events, scale_up, now), current)
        if max_replicas > limit:
            maximum, reason, message = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
        else:
            maximum, reason, message = max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
        if desired > maximum:
            return maximum, reason, message
    elif desired < current:
        limit = min(calculate_scale_down_limit_with_behaviors(current, up_events, down_events, scale_down, now), current)
        if min_replicas < limit:
            minimum, reason, message = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            minimum, reason, message = min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
        if desired < minimum:
            return minimum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def longest_policy_period(rules: HPAScalingRules) -> int:
    """The longest ``periodSeconds`` of the rules' policies (0 without policies)."""
    return max((p.periodSeconds for p in rules.policies or ()), default=0)


def store_scale_event(
    events: list[ScaleEvent], rules: HPAScalingRules | None, previous: int, new: int, now: float
) -> None:
    """``storeScaleEvent`` for one direction's history (the caller picks up or down).

    Marks events older than the longest policy period as outdated, then writes the change
    into the last outdated slot or appends it. With ``rules`` ``None`` (no behaviour) it
    stores nothing, as Kubernetes does.
    """
    if rules is None:
        return
    cutoff = now - longest_policy_period(rules)
    old_index = None
    for i, event in enumerate(events):
        if event.timestamp < cutoff and not event.outdated:
            events[i] = event = replace(event, outdated=True)
        if event.outdated:
            old_index = i
    new_event = ScaleEvent(abs(new - previous), now)
    if old_index is not None:
        events[old_index] = new_event
    else:
        events.append(new_event)
