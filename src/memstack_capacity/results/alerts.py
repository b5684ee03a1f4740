"""The deployment's Prometheus alert rules, evaluated on simulated time series.

The real deployment ships a ``PrometheusRule`` (``k8s/prometheus-service-monitor.yaml``)
with seven alerts in three groups, each evaluated every 30 s, each with a ``for:``
duration. This module states those rules as written — thresholds, units and
durations — as conditions on columns of a simulated series frame, and replays
Prometheus' alert state machine on them to say when each alert would have fired
and resolved (model.md §10).

The series frame is indexed by sample time ``t_s`` (seconds) and carries, per
sample, the value Prometheus would have computed for the rule's expression:

===============================  =====================================================
column                           meaning (unit)
===============================  =====================================================
``api_5xx_rps``                  ``rate(http_requests_total{status=~"5.."}[5m])``: 5xx
                                 responses per second over a trailing 5 min window, of
                                 the worst series (pod × handler × status); the total
                                 over all pods is an upper bound (per second)
``api_latency_p99_5m_s``         p99 of API latencies over the trailing 5 min, of the
                                 worst series; see :func:`.promql.window_quantile` (s)
``api_targets_down``             API pods listed as scrape targets whose ``/metrics``
                                 would not answer (``up == 0``): container not running,
                                 restarting or not yet listening (count)
``worker_targets_down``          the same for worker pods (count)
``worker_queue_fraction``        job queue size / queue max size (fraction)
``memory_limit_fraction_max``    largest container memory usage / memory limit
``cpu_cores_5m_max``             largest container CPU usage rate over 5 min (cores)
``cpu_throttled_periods_5m_max`` throttled CFS periods / periods over 5 min, the largest
                                 over deployments (fraction)
===============================  =====================================================

:mod:`.promql` turns per-interval counts into ``rate(...[5m])`` series and computes
trailing-window latency quantiles (optionally exactly as ``histogram_quantile`` does on
bucketed data).

The real expressions carry no aggregation, so Prometheus keeps one alert per
series (per pod, container or status code) with its own pending timer. The
frame carries the worst series (a maximum or a count), which is exact while one
series stays the worst and can fire earlier when the worst series changes hands.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

__all__ = [
    "AlertRule",
    "evaluate_rule",
    "evaluate_rules",
    "kube_prometheus_rules",
    "memstack_rules",
]

EPISODE_COLUMNS = ["alert", "severity", "start_s", "end_s", "for_s", "pending_since_s", "short_name", "group"]


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule: what it compares, for how long, and how bad it is.

    Attributes:
        name: Alert name as deployed, e.g. ``MemStackAPIHighErrorRate``.
        short_name: Name the deployment guide (k8s README) uses, e.g. ``HighErrorRate``;
            ``None`` where the guide does not list the alert.
        severity: The rule's ``severity`` label (``warning`` or ``critical``).
        for_s: The rule's ``for:`` duration in seconds.
        group: The rule group (its evaluation interval is the group's).
        expr: The PromQL expression as written in the deployment.
        description: What the condition compares, in terms of frame columns.
        columns: Frame columns the condition reads.
        condition: ``condition(frame) -> bool array``, one value per sample;
            a missing value (NaN) counts as false, as an absent series does.
        note: How the deployed system differs from what the rule assumes.
    """

    name: str
    short_name: str | None
    severity: str
    for_s: float
    group: str
    expr: str
    description: str
    columns: tuple[str, ...]
    condition: Callable[[pd.DataFrame], np.ndarray] = field(repr=False, compare=False)
    note: str = ""


def _compare(frame: pd.DataFrame, column: str, op: Callable, threshold: float) -> np.ndarray:
    values = np.asarray(frame[column], dtype=float)
    with np.errstate(invalid="ignore"):
        return np.asarray(op(values, threshold), dtype=bool) & ~np.isnan(values)


def _rule(
    name: str, short: str | None, severity: str, for_s: float, group: str, expr: str,
    column: str, op: Callable, threshold: float, note: str = "",
) -> AlertRule:  # fmt: skip
    symbol = {operator.gt: ">", operator.ge: ">="}[op]
    return AlertRule(
        name=name,
        short_name=short,
        severity=severity,
        for_s=float(for_s),
        group=group,
        expr=expr,
        description=f"{column} {symbol} {threshold:g}",
        columns=(column,),
        condition=partial(_compare, column=column, op=op, threshold=threshold),
        note=note,
    )


def memstack_rules() -> list[AlertRule]:
    """Return the seven rules of the ``memstack-alerts`` PrometheusRule, as written.

    Thresholds keep the deployment's units, not the guide's wording:
    ``MemStackAPIHighErrorRate`` compares an absolute 5xx rate (> 0.05 per second),
    not the ">5 %" ratio the guide claims; ``MemStackHighCPUUsage`` compares cores
    (> 0.8 of a core per container), not a percentage of the limit. ``up == 0``
    is true for any scrape target that does not answer, which the frame carries
    as a count of such targets (the rule holds when it is at least one).

    Returns:
        The rules in the order of the manifest: ``memstack_api`` (3),
        ``memstack_worker`` (2), ``memstack_resources`` (2).
    """
    no_listener = "As deployed nothing serves :9090/metrics"
    no_worker_target = "the memstack-worker ServiceMonitor selects no Service, so these series never exist"
    gt, ge = operator.gt, operator.ge
    return [
        _rule("MemStackAPIHighErrorRate", "HighErrorRate", "warning", 300, "memstack_api",
              'rate(http_requests_total{job="memstack-api",status=~"5.."}[5m]) > 0.05',
              "api_5xx_rps", gt, 0.05, f"{no_listener}; the guide reads it as an error ratio above 5 %."),
        _rule("MemStackAPIHighLatency", "HighLatency", "warning", 600, "memstack_api",
              'histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{job="memstack-api"}[5m])) > 1',
              "api_latency_p99_5m_s", gt, 1.0, f"{no_listener}."),
        _rule("MemStackAPINotReady", "APINotReady", "critical", 120, "memstack_api",
              'up{job="memstack-api"} == 0', "api_targets_down", ge, 1,
              f"{no_listener}, so every API target is down and this fires 2 min after start."),
        _rule("MemStackWorkerNotReady", None, "warning", 300, "memstack_worker",
              'up{job="memstack-worker"} == 0', "worker_targets_down", ge, 1,
              f"As deployed {no_worker_target}."),
        _rule("MemStackWorkerQueueFull", None, "warning", 300, "memstack_worker",
              'memstack_queue_size{job="memstack-worker"} / memstack_queue_max_size{job="memstack-worker"} > 0.9',
              "worker_queue_fraction", gt, 0.9,
              f"As deployed {no_worker_target}, and no code emits the queue metrics."),
        _rule("MemStackHighMemoryUsage", "HighMemoryUsage", "warning", 600, "memstack_resources",
              'container_memory_usage_bytes{namespace="memstack"} / container_spec_memory_limit_bytes{namespace="memstack"} > 0.9',
              "memory_limit_fraction_max", gt, 0.9,
              "usage_bytes counts reclaimable page cache, so it reads above the working set the HPA sees."),
        _rule("MemStackHighCPUUsage", "HighCPUUsage", "warning", 600, "memstack_resources",
              'rate(container_cpu_usage_seconds_total{namespace="memstack"}[5m]) > 0.8',
              "cpu_cores_5m_max", gt, 0.8, "Cores, not a fraction of the 2-core limit."),
    ]  # fmt: skip


def kube_prometheus_rules() -> list[AlertRule]:
    """Rules of kube-prometheus' default set that judge what the simulation models.

    ``CPUThrottlingHigh`` (``kubernetes-resources`` group, severity ``info``): a container
    throttled in more than 25 % of its CFS periods over 5 min, for 15 min. The rule takes
    each container alone; the frame carries each deployment's ratio over its pods, so one
    hot pod among cool ones fires it later here than in a cluster.
    """
    return [
        _rule("CPUThrottlingHigh", None, "info", 900, "kubernetes-resources",
              'sum(increase(container_cpu_cfs_throttled_periods_total{container!=""}[5m])) without (id, metrics_path, '
              'name, image, endpoint, job, node) / sum(increase(container_cpu_cfs_periods_total[5m])) without (id, '
              'metrics_path, name, image, endpoint, job, node) > (25 / 100)',
              "cpu_throttled_periods_5m_max", operator.gt, 0.25,
              "Per deployment over its pods, not per container."),
    ]  # fmt: skip


def evaluate_rule(
    rule: AlertRule,
    t_s: Sequence[float] | np.ndarray,
    condition_values: Sequence[bool] | np.ndarray,
    eval_interval_s: float = 30.0,
    first_eval_s: float | None = None,
    lookback_s: float = 300.0,
) -> list[dict]:
    """Replay Prometheus' alert state machine for one rule and return its firing episodes.

    Semantics follow ``AlertingRule.Eval`` in Prometheus' ``rules/alerting.go``:

    * the group evaluates every ``eval_interval_s``, at ``first_eval_s + j·interval``;
      each evaluation sees the latest sample at or before it, if no older than
      ``lookback_s`` (the query lookback delta; an older one counts as absent);
    * at the first evaluation where the condition holds the alert becomes
      **pending** with ``ActiveAt`` = that evaluation time;
    * it becomes **firing** at the first evaluation where
      ``eval_time - ActiveAt >= for`` (with ``for: 0`` that is the same evaluation);
    * any evaluation where the condition does not hold drops a pending alert and
      **resolves** a firing one at that evaluation time; the next true evaluation
      starts a fresh pending period. (``keep_firing_for`` is not used by these rules.)

    Args:
        rule: The rule (only ``name`` and ``for_s`` are used here).
        t_s: Sample times in seconds, strictly increasing.
        condition_values: The rule's condition at each sample time.
        eval_interval_s: The group's evaluation interval (30 s in the deployment).
        first_eval_s: Time of the first evaluation; defaults to ``t_s[0]``.
        lookback_s: Oldest sample an evaluation still uses.

    Returns:
        One dict per firing episode: ``name``, ``pending_since_s``, ``start_s``
        (when it began firing) and ``end_s`` (first false evaluation, or ``None``
        if still firing at the last evaluation). Pending periods that never
        reached ``for`` are not episodes.
    """
    t = np.asarray(t_s, dtype=float)
    cond = np.asarray(condition_values, dtype=bool)
    if t.ndim != 1 or t.shape != cond.shape or t.size == 0:
        raise ValueError(f"t_s and condition_values must be 1-D of one length (got {t.shape} and {cond.shape})")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t_s must be strictly increasing")
    if not (eval_interval_s > 0):
        raise ValueError(f"eval_interval_s must be > 0 (got {eval_interval_s!r})")
    start = t[0] if first_eval_s is None else float(first_eval_s)
    n_evals = math.floor((t[-1] - start) / eval_interval_s + 1e-9) + 1
    evals = start + eval_interval_s * np.arange(max(n_evals, 0))
    latest = np.searchsorted(t, evals + 1e-9, side="right") - 1
    fresh = (latest >= 0) & (evals - t[np.maximum(latest, 0)] <= lookback_s + 1e-9)
    active = fresh & cond[np.maximum(latest, 0)]
    # Hold times are compared in whole evaluation steps so float drift cannot
    # move the firing evaluation by one interval.
    hold_steps = math.ceil(rule.for_s / eval_interval_s - 1e-9)
    episodes: list[dict] = []
    pending_j: int | None = None
    firing_j: int | None = None
    for j, holds in enumerate(active):
        if not holds:
            if firing_j is not None:
                episodes.append(_episode(rule, evals, pending_j, firing_j, float(evals[j])))
            pending_j = firing_j = None
            continue
        if pending_j is None:
            pending_j = j
        if firing_j is None and j - pending_j >= hold_steps:
            firing_j = j
    if firing_j is not None:
        episodes.append(_episode(rule, evals, pending_j, firing_j, None))
    return episodes


def _episode(rule: AlertRule, evals: np.ndarray, pending_j: int, firing_j: int, end_s: float | None) -> dict:
    return {"name": rule.name, "pending_since_s": float(evals[pending_j]), "start_s": float(evals[firing_j]),
            "end_s": end_s}  # fmt: skip


def evaluate_rules(
    rules: Sequence[AlertRule],
    frame: pd.DataFrame,
    eval_interval_s: float = 30.0,
    first_eval_s: float | None = None,
) -> pd.DataFrame:
    """Evaluate several rules on one series frame and return every firing episode.

    Args:
        rules: The rules, e.g. :func:`memstack_rules`.
        frame: Simulated series indexed by sample time ``t_s`` (seconds), with
            every column the rules read (see the module docstring).
        eval_interval_s: The rule groups' evaluation interval.
        first_eval_s: Time of the first evaluation; defaults to the first sample.

    Returns:
        A tidy frame, one row per episode, with columns ``alert``, ``severity``,
        ``start_s``, ``end_s`` (NaN while still firing at the end), ``for_s``,
        ``pending_since_s``, ``short_name`` and ``group``, sorted by start time.

    Raises:
        ValueError: If the frame lacks columns the rules read (all are listed).
    """
    missing = sorted({c for r in rules for c in r.columns if c not in frame.columns})
    if missing:
        raise ValueError(f"series frame lacks columns {missing} needed by the alert rules")
    t = np.asarray(frame.index, dtype=float)
    rows = []
    for rule in rules:
        for ep in evaluate_rule(rule, t, rule.condition(frame), eval_interval_s, first_eval_s):
            rows.append({"alert": rule.name, "severity": rule.severity, "start_s": ep["start_s"],
                         "end_s": np.nan if ep["end_s"] is None else ep["end_s"], "for_s": rule.for_s,
                         "pending_since_s": ep["pending_since_s"], "short_name": rule.short_name,
                         "group": rule.group})  # fmt: skip
    out = pd.DataFrame(rows, columns=EPISODE_COLUMNS).astype(
        {"start_s": float, "end_s": float, "for_s": float, "pending_since_s": float}
    )
    return out.sort_values(["start_s", "alert"], kind="stable").reset_index(drop=True)
