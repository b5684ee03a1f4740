"""The oracle for a fast engine: its figures against the general engine's, over several seeds.

A fast engine is another sample of the same model (it may draw its random numbers in another
order), so a figure agrees when the two engines' means over independent seeds differ by less
than ``K_SE`` combined standard errors, and an HPA trajectory agrees when the mean desired
replicas differ by at most one replica on at least ``TRAJECTORY_SHARE`` of the sample times.
Not a test module itself: the tests that use it say which scenarios and engines.
"""

from __future__ import annotations

import math

import numpy as np

from memstack_capacity.api.batch import HEADLINE

#: Combined standard errors a figure's means may differ by.
K_SE = 4.0
#: Share of sample times at which the mean HPA trajectories must be within one replica.
TRAJECTORY_SHARE = 0.95

#: The summary figures compared besides :data:`HEADLINE` (compare's), per deployment.
PER_DEPLOYMENT = (
    ("replicas_mean", ("replicas", "mean")),
    ("replicas_max", ("replicas", "max")),
    ("cpu_utilization_mean", ("cpu_utilization", "mean")),
    ("memory_utilization_mean", ("memory_utilization", "mean")),
)


#: The datastores' figures compared (pooled stores and external APIs; a figure a kind lacks is skipped).
PER_DATASTORE = (
    ("utilization_mean", ("utilization", "mean")),
    ("pool_wait_mean_s", ("pool_wait_s", "mean")),
    ("pool_wait_p99_s", ("pool_wait_s", "p99")),
    ("connections_in_use_mean", ("connections_in_use_mean",)),
    ("pool_waiters_mean", ("pool_waiters_mean",)),
    ("connections_max", ("connections_max",)),
    ("calls", ("calls",)),
    ("pool_timeouts", ("pool_timeouts",)),
    ("refused", ("refused",)),
    ("overflow_closed", ("overflow_closed",)),
    ("rate_limited", ("rate_limited",)),
    ("failed", ("failed",)),
)


#: The worker tier's figures compared.
JOBS = (
    ("completed", ("completed",)),
    ("failed", ("failed",)),
    ("latency_mean_s", ("latency_s", "mean")),
    ("retries", ("retries",)),
    ("backlog_max", ("backlog_max",)),
    ("enqueued", ("totals", "enqueued")),
    ("crashes", ("totals", "crashes")),
)


def _get(node, path):
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def figures(summary: dict) -> dict[str, float]:
    """The compared figures of one run's summary, by label."""
    out = {label: _get(summary, path) for label, path in HEADLINE}
    for name, block in summary.get("deployments", {}).items():
        for label, path in PER_DEPLOYMENT:
            out[f"{name}.{label}"] = _get(block, path)
    for cls, block in summary["requests"].get("by_class", {}).items():
        out[f"{cls}.latency_mean_s"] = _get(block, ("latency_s", "mean"))
        out[f"{cls}.throughput_rps"] = _get(block, ("throughput_rps",))
    for name, block in (summary.get("datastores") or {}).items():
        for label, path in PER_DATASTORE:
            out[f"{name}.{label}"] = _get(block, path)
    for label, path in JOBS:
        out[f"jobs.{label}"] = _get(summary.get("jobs") or {}, path)
    return {k: float(v) for k, v in out.items() if v is not None}


def disagreements(reference: list[dict], fast: list[dict], k: float = K_SE) -> list[str]:
    """Figures whose means differ by more than `k` combined standard errors (with what they were)."""
    return figure_disagreements([figures(s) for s in reference], [figures(s) for s in fast], k)


def series_means(series, suffixes: tuple = ("/utilization", "/connections_in_use", "/jobs/backlog",
                                            "/jobs/slots_busy", "/cpu_cores", "/memory_bytes")) -> dict[str, float]:
    """Each run's time-averaged series (a run's frame of series): what the monitor's samplers wrote,
    which the summary does not all carry (a sampler reading the wrong state shows here)."""
    return {f"series {c}": float(series[c].mean()) for c in series.columns
            if c.endswith(suffixes) and series[c].notna().any()}


def figure_disagreements(ref: list[dict], got: list[dict], k: float = K_SE) -> list[str]:
    """:func:`disagreements` on figures already taken (label -> value, one dict per run)."""
    labels = sorted(set.intersection(*(set(f) for f in ref + got)))
    bad = []
    for label in labels:
        a = np.array([f[label] for f in ref])
        b = np.array([f[label] for f in got])
        se = math.hypot(a.std(ddof=1) / math.sqrt(len(a)), b.std(ddof=1) / math.sqrt(len(b)))
        gap = abs(a.mean() - b.mean())
        if gap > k * se + 1e-12 * max(1.0, abs(a.mean())):
            bad.append(f"{label}: {a.mean():.6g} (reference) against {b.mean():.6g}, {gap / se if se else math.inf:.1f} SE")
    return bad


def trajectory_share(reference: list, fast: list) -> float:
    """Share of sample times at which the mean desired replicas (over seeds) are within one replica."""
    a = np.mean([np.asarray(s, dtype=float) for s in reference], axis=0)
    b = np.mean([np.asarray(s, dtype=float) for s in fast], axis=0)
    return float(np.mean(np.abs(a - b) <= 1.0))
