"""From a run's series to the alert rules' columns, and when each alert fires.

:mod:`memstack_capacity.results.alerts` states the deployment's seven rules as
conditions on a frame of Prometheus-like columns. This module builds that frame
from a :class:`~memstack_capacity.results.result.Result` and evaluates the rules:

==============================  ==============================================================
column                          built from
==============================  ==============================================================
``api_5xx_rps``                 ``ingress/errors_<5xx>_rps`` × interval, summed, then a 5 min
                                trailing rate (:func:`~.promql.rate_window`); the total over
                                pods, an upper bound on the worst single series
``api_latency_p99_5m_s``        trailing 5 min p99 of requests the API itself answered (OK and
                                500; 502/503/504 come from the ingress or the accept queue and
                                never reach the handler's histogram), with prometheus_client's
                                default buckets as ``histogram_quantile`` sees them
``api_targets_down``            scheduled API pods that are not Ready (``pods - pods_pending -
                                pods_ready``): a scrape target whose process does not answer
``worker_targets_down``         the same for the worker deployment; NaN without one
``worker_queue_fraction``       ``<worker>/worker_queue_fraction`` (or ``jobs/queue_fraction``)
                                if the run samples it, else NaN
``memory_limit_fraction_max``   the largest ``<deployment>/memory_limit_fraction_max``
``cpu_cores_5m_max``            ``<deployment>/cpu_cores_pod_max`` if sampled, else
                                ``cpu_cores / (pods - pods_pending)`` (the mean pod, a lower
                                bound on the worst), as a 5 min trailing average; the largest
                                over deployments
``cpu_throttled_periods_5m_``   ``<deployment>/cfs_throttled_periods`` over ``cfs_periods``,
``max``                         each summed over the trailing 5 min; the largest over
                                deployments (for kube-prometheus' ``CPUThrottlingHigh``)
==============================  ==============================================================

This is the system *as intended*: the pods serve ``/metrics``. As deployed nothing
listens on :9090 (``upstream-deployment.md``), so ``MemStackAPINotReady`` would fire
two minutes after start whatever the load; the report says so separately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memstack_capacity.results.alerts import evaluate_rules, kube_prometheus_rules, memstack_rules
from memstack_capacity.results.promql import rate_window, window_quantile

__all__ = ["ALERT_COLUMNS", "alert_frame", "alert_episodes", "alert_summary", "attach_alerts"]

ALERT_COLUMNS = (
    "api_5xx_rps", "api_latency_p99_5m_s", "api_targets_down", "worker_targets_down",
    "worker_queue_fraction", "memory_limit_fraction_max", "cpu_cores_5m_max", "cpu_throttled_periods_5m_max",
)  # fmt: skip
#: prometheus_client's default histogram buckets (seconds).
DEFAULT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
WINDOW_S = 300.0
_API_ANSWERED = ("ok", "500")


def _col(series: pd.DataFrame, name: str) -> pd.Series:
    if name in series.columns:
        return series[name].astype(float)
    return pd.Series(np.nan, index=series.index)


def _worker_name(scenario) -> str | None:
    workers = [n for n, d in scenario.deployments.items() if getattr(d, "consumes", None)]
    return workers[0] if workers else None


def _targets_down(series: pd.DataFrame, name: str) -> pd.Series:
    scheduled = _col(series, f"{name}/pods") - _col(series, f"{name}/pods_pending").fillna(0.0)
    return (scheduled - _col(series, f"{name}/pods_ready")).clip(lower=0.0)


def _trailing_mean(values: pd.Series, window_s: float) -> pd.Series:
    t = np.asarray(values.index, dtype=float)
    v = values.fillna(0.0).to_numpy()
    if t.size < 2:
        return values
    dt = np.diff(t, prepend=t[0] - (t[1] - t[0]))
    return pd.Series(rate_window(v * dt, t, window_s), index=values.index)


def alert_frame(result, buckets_s=DEFAULT_BUCKETS_S) -> pd.DataFrame:
    """The rule columns (see the module docstring) at every sample time of ``result``.

    Computed once per result and bucket set: the summary and both report renderings use it.
    """
    key = None if buckets_s is None else tuple(buckets_s)
    cache = result.__dict__.setdefault("_alert_frames", {})
    if key not in cache:
        cache[key] = _alert_frame(result, buckets_s)
    return cache[key]


def _alert_frame(result, buckets_s=DEFAULT_BUCKETS_S) -> pd.DataFrame:
    """The rule columns (see the module docstring) at every sample time of ``result``.

    Args:
        result: A :class:`~memstack_capacity.results.result.Result`.
        buckets_s: Histogram bucket bounds for the latency quantile; ``None`` for exact.

    Returns:
        A frame indexed by ``t_s`` with :data:`ALERT_COLUMNS`; empty if nothing was sampled.
    """
    series = result.series
    if series.empty:
        return pd.DataFrame(columns=list(ALERT_COLUMNS), index=pd.Index([], name="t_s", dtype=float))
    t = np.asarray(series.index, dtype=float)
    out = pd.DataFrame(index=series.index)
    five_xx = [c for c in series.columns if c.startswith("ingress/errors_5") and c.endswith("_rps")]
    per_second = series[five_xx].fillna(0.0).sum(axis=1) if five_xx else pd.Series(0.0, index=series.index)
    out["api_5xx_rps"] = _trailing_mean(per_second, WINDOW_S) if t.size >= 2 else per_second
    req = result.requests
    answered = req[req["status"].astype(str).isin(_API_ANSWERED)]
    out["api_latency_p99_5m_s"] = window_quantile(t, answered["t_end_s"].to_numpy(), answered["latency_s"].to_numpy(),
                                                  WINDOW_S, 0.99, buckets_s)
    out["api_targets_down"] = _targets_down(series, "api")
    worker = _worker_name(result.scenario)
    out["worker_targets_down"] = _targets_down(series, worker) if worker else np.nan
    queue = f"{worker}/worker_queue_fraction" if worker else None
    out["worker_queue_fraction"] = _col(series, queue if queue in series.columns else "jobs/queue_fraction")
    deps = list(result.scenario.deployments)
    mem = [_col(series, f"{d}/memory_limit_fraction_max") for d in deps]
    out["memory_limit_fraction_max"] = pd.concat(mem, axis=1).max(axis=1) if mem else np.nan
    cpu = []
    for d in deps:
        if f"{d}/cpu_cores_pod_max" in series.columns:
            per_pod = _col(series, f"{d}/cpu_cores_pod_max")
        else:
            scheduled = _col(series, f"{d}/pods") - _col(series, f"{d}/pods_pending").fillna(0.0)
            per_pod = _col(series, f"{d}/cpu_cores") / scheduled.where(scheduled > 0)
        cpu.append(_trailing_mean(per_pod, WINDOW_S))
    out["cpu_cores_5m_max"] = pd.concat(cpu, axis=1).max(axis=1) if cpu else np.nan
    out["cpu_throttled_periods_5m_max"] = _throttled_periods(series, deps, t)
    out.index.name = "t_s"
    return out


def _throttled_periods(series: pd.DataFrame, deps: list[str], t: np.ndarray) -> pd.Series:
    """Per deployment, throttled CFS periods over periods in the trailing 5 min; the largest."""
    ratios = []
    for d in deps:
        periods, throttled = _col(series, f"{d}/cfs_periods"), _col(series, f"{d}/cfs_throttled_periods")
        if t.size < 2 or periods.isna().all():
            continue
        total = rate_window(periods.fillna(0.0).to_numpy(), t, WINDOW_S)
        hot = rate_window(throttled.fillna(0.0).to_numpy(), t, WINDOW_S)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios.append(pd.Series(np.where(total > 0, hot / total, 0.0), index=series.index))
    return pd.concat(ratios, axis=1).max(axis=1) if ratios else pd.Series(np.nan, index=series.index)


def alert_episodes(result, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every firing episode of the deployment's rules, and of kube-prometheus' rules for what the
    simulation models, on ``result`` (see :func:`~.alerts.evaluate_rules`)."""
    frame = alert_frame(result) if frame is None else frame
    rules = memstack_rules() + kube_prometheus_rules()
    if frame.empty:
        return evaluate_rules([], frame.assign(**{c: [] for c in ALERT_COLUMNS}))
    return evaluate_rules(rules, frame)


def alert_summary(result, episodes: pd.DataFrame | None = None) -> list[dict]:
    """The ``summary["alerts"]`` list: one dict per episode.

    ``name`` is the guide's short name (``HighLatency``) where the guide lists the
    alert, else the deployed name; ``alert`` is always the deployed name. ``end_s``
    is ``None`` while the alert is still firing at the end of the run.
    """
    episodes = alert_episodes(result) if episodes is None else episodes
    out = []
    for row in episodes.itertuples(index=False):
        short = row.short_name if isinstance(row.short_name, str) else None
        out.append({
            "name": short or row.alert, "alert": row.alert, "severity": row.severity,
            "pending_since_s": float(row.pending_since_s), "start_s": float(row.start_s),
            "end_s": None if pd.isna(row.end_s) else float(row.end_s),
        })  # fmt: skip
    return out


def attach_alerts(result) -> list[dict]:
    """Fill ``result.summary["alerts"]`` (if still empty) and return it."""
    summary = result.summary
    if not summary.get("alerts"):
        summary["alerts"] = alert_summary(result)
    return summary["alerts"]
