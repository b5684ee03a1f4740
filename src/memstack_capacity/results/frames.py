"""Tidy pandas frames from a RunRecord. Column names carry their units.

- ``requests``: one row per request: ``class``, ``t_arrival_s``, ``t_end_s``, ``latency_s``,
  ``status`` (``ok``, ``503``, ``504``, ``502``, ``500``), ``reason``, ``pod``.
- ``timeseries``: long format ``t_s, component, metric, value``.
- ``scaling``: one row per HPA decision (what ``kubectl describe hpa`` would show).
- ``pods``: one row per pod lifecycle event.
- ``jobs``: one row per finished job, same columns as ``requests``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memstack_capacity.components.recorder import REASON_LABELS, STATUS_LABELS


def log_frame(log, class_names: list[str]) -> pd.DataFrame:
    """A RequestLog as a frame (requests or jobs)."""
    t0 = np.frombuffer(log.t_arrival, dtype=np.float64) if len(log) else np.empty(0)
    t1 = np.frombuffer(log.t_end, dtype=np.float64) if len(log) else np.empty(0)
    cls = np.frombuffer(log.cls, dtype=np.int32) if len(log) else np.empty(0, np.int32)
    status = np.frombuffer(log.status, dtype=np.int8) if len(log) else np.empty(0, np.int8)
    reason = np.frombuffer(log.reason, dtype=np.int8) if len(log) else np.empty(0, np.int8)
    pod = np.frombuffer(log.pod, dtype=np.int32) if len(log) else np.empty(0, np.int32)
    return pd.DataFrame(
        {
            "class": pd.Categorical.from_codes(cls, categories=class_names) if class_names else cls,
            "t_arrival_s": t0,
            "t_end_s": t1,
            "latency_s": t1 - t0,
            "status": pd.Categorical.from_codes(status, categories=list(STATUS_LABELS)),
            "reason": pd.Categorical.from_codes(reason, categories=list(REASON_LABELS)),
            "pod": pod,
        }
    )


def timeseries_frame(samples) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "t_s": np.frombuffer(samples.t_s, dtype=np.float64) if len(samples.t_s) else np.empty(0),
            "component": pd.Categorical(samples.component),
            "metric": pd.Categorical(samples.metric),
            "value": np.frombuffer(samples.value, dtype=np.float64) if len(samples.value) else np.empty(0),
        }
    )


def wide(timeseries: pd.DataFrame) -> pd.DataFrame:
    """One column per ``component/metric``, indexed by ``t_s``."""
    if timeseries.empty:
        return pd.DataFrame()
    key = timeseries["component"].astype(str) + "/" + timeseries["metric"].astype(str)
    return timeseries.assign(key=key).pivot_table(index="t_s", columns="key", values="value", aggfunc="last")


#: The columns every scaling.csv has, even when no HPA made a decision.
SCALING_COLUMNS = ["t_s", "deployment", "current_replicas", "status_replicas", "proposal", "stabilized",
                   "desired_replicas", "rescaled", "able_to_scale", "scaling_active_reason", "limited_reason", "reason"]


def scaling_frame(decisions: list) -> pd.DataFrame:
    rows = [d if isinstance(d, dict) else dict(d) for d in decisions]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=SCALING_COLUMNS)


def pods_frame(events: list) -> pd.DataFrame:
    return pd.DataFrame(
        [{"t_s": e.t_s, "deployment": e.deployment, "pod": e.pod, "event": e.event, "detail": e.detail} for e in events],
        columns=["t_s", "deployment", "pod", "event", "detail"],
    )
