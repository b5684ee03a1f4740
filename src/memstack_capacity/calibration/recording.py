"""What a recorded load test says over time, for ``backtest``: the load to replay and the figures to compare.

A :class:`Recording` is read from one source, Locust's ``--csv`` files or a directory of
Prometheus query_range answers, through the same parsers and mapping as ``calibrate``
(:mod:`.locust`, :mod:`.prometheus`, :func:`.measurements.to_windows`). It holds, per window:

- the throughput (req/s over the scenario's request classes) and the mean latency (the classes'
  mean response times weighted by their throughput), as ``calibrate`` reads them;
- the 95th and 99th percentile latency where the source has them: Prometheus' optional
  ``latency_p95.json``/``latency_p99.json`` (one series over every class, e.g.
  ``histogram_quantile(0.95, sum by (le) (rate(…_bucket[1m])))``), or the ``95%``/``99%`` columns
  of Locust's ``Aggregated`` history row last in the window. Locust writes its own sliding window
  of 10 s in those columns only with ``--csv-full-history`` (the history then has a row per
  endpoint); without it they are the percentiles of the whole test so far (``stats.py``:
  ``_percentile_fields(entry, use_current=self.full_history)``), which no window can be compared
  with, so they are not recorded;
- the pods of each deployment (Prometheus' ``replicas.json``: series grouped by their
  ``deployment`` label, a series without one counting for the mapping's deployment);
- the load to replay: the profile :func:`.estimates.profile_estimates` derives (users or req/s at
  its change points, and the duration), which is what ``replay.yaml`` holds.

A quantity the source lacks is None ("not recorded"), never filled in.

Windows on the simulated clock: the replay's t = 0 is the first window's time stamp. A Locust
window labelled t covers (t, t + w], as its cumulative counts do; a Prometheus point at t covers
(t − w, t], as ``rate(x[w])`` at t does, and a gauge (replicas) is its value at t. So each
window carries its own ``start`` and ``end`` in simulated seconds, and the replicas are compared
at ``end``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memstack_capacity.calibration import estimates, measurements
from memstack_capacity.errors import MeasurementError, Problem


@dataclass(frozen=True)
class Recording:
    """A recorded test on the simulated clock (see the module's docstring); arrays have one entry per window."""

    source: str
    kind: str  # "locust" or "prometheus"
    window_s: float
    start: np.ndarray
    end: np.ndarray
    throughput: np.ndarray
    latency_mean: np.ndarray | None
    latency_p95: np.ndarray | None
    latency_p99: np.ndarray | None
    replicas: dict[str, np.ndarray]
    replay: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration_s(self) -> float:
        return float(self.replay.get("duration", self.end[-1] if len(self.end) else 0.0))


def read(scenario, *, locust: str | Path | None = None, prometheus: str | Path | None = None,
         mapping: measurements.Mapping | None = None) -> Recording:
    """The recording in ``locust`` (a ``--csv`` prefix) or ``prometheus`` (a directory), for ``scenario``."""
    mapping = mapping or measurements.Mapping()
    if (locust is None) == (prometheus is None):
        raise MeasurementError([Problem("", "give one recording: a Locust --csv prefix or a Prometheus directory")])
    if prometheus is not None:
        from memstack_capacity.calibration import prometheus as prom_mod

        raw = prom_mod.read(prometheus, mapping)
        kind, source = "prometheus", str(prometheus)
    else:
        from memstack_capacity.calibration import locust as locust_mod

        raw = locust_mod.read(locust, mapping.window_s)
        kind, source = "locust", raw.source
        if raw.one_window:
            raise MeasurementError([Problem("", f"no {Path(str(locust) + '_stats_history.csv').name}: a backtest "
                                                "needs the load over time (Locust's --csv writes it)")], str(locust))
    windows = measurements.to_windows([raw], mapping, scenario)
    if len(windows.t) < 2:
        raise MeasurementError([Problem("", f"{len(windows.t)} window(s); a backtest needs the load over time "
                                            "(two windows or more)")], source)
    profile = estimates.profile_estimates(windows, scenario)[0]
    if not profile.settings:
        raise MeasurementError([Problem("load profile", f"cannot be replayed: {profile.why}")], source)
    w = windows.window_s
    t = windows.t
    start, end = (t - w, t) if kind == "prometheus" else (t, t + w)
    x = windows.throughput.to_numpy(dtype=float)
    r = windows.response_s.reindex(columns=windows.throughput.columns).to_numpy(dtype=float)
    timed = np.isfinite(r) & (x > 0)
    latency = None
    if timed.any():
        weight = np.where(timed, x, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            latency = np.where(weight > 0, np.where(timed, r * x, 0.0).sum(axis=1) / np.where(weight > 0, weight, 1),
                               np.nan)
    notes = list(windows.notes)
    if kind == "prometheus":
        index = raw.throughput.index
        p95, p99 = (_prometheus_quantile(Path(prometheus), mapping, q, index, w) for q in ("latency_p95", "latency_p99"))
        replicas = _prometheus_replicas(Path(prometheus), mapping, scenario, index, w, notes)
    else:
        p95, p99 = _locust_quantiles(str(locust), w, len(t), notes)
        replicas = {}
    return Recording(source=source, kind=kind, window_s=float(w), start=start, end=end,
                     throughput=x.sum(axis=1), latency_mean=latency, latency_p95=p95, latency_p99=p99,
                     replicas=replicas, replay=dict(profile.settings), notes=tuple(notes))


def _prometheus_quantile(directory: Path, mapping, quantity: str, index: pd.Index, step: float) -> np.ndarray | None:
    from memstack_capacity.calibration.prometheus import read_matrix

    files = {**measurements.PROMETHEUS_FILES, **(mapping.prometheus.get("files") or {})}
    path = directory / files[quantity]
    if not path.exists():
        return None
    series = read_matrix(path)
    if not series:
        return None
    if len(series) > 1:
        raise MeasurementError([Problem("data.result", f"has {len(series)} series; expected one over every request "
                                                       "class (histogram_quantile of the summed buckets)")], str(path))
    scale = 1e-3 if mapping.prometheus.get("latency_unit", "s") == "ms" else 1.0
    values = series[0][1].sort_index().reindex(index, method="nearest", tolerance=step / 2)
    return values.to_numpy(dtype=float) * scale


def _prometheus_replicas(directory: Path, mapping, scenario, index: pd.Index, step: float,
                         notes: list[str]) -> dict[str, np.ndarray]:
    from memstack_capacity.calibration.prometheus import read_matrix

    files = {**measurements.PROMETHEUS_FILES, **(mapping.prometheus.get("files") or {})}
    path = directory / files["replicas"]
    if not path.exists():
        return {}
    select = {str(k): str(v) for k, v in (mapping.prometheus.get("select") or {}).items() if k != "deployment"}
    groups: dict[str, list[pd.Series]] = {}
    for labels, values in read_matrix(path):
        if all(labels.get(k, v) == v for k, v in select.items()):
            groups.setdefault(str(labels.get("deployment", mapping.deployment)), []).append(values)
    out = {}
    for name, parts in groups.items():
        if name not in scenario.deployments:
            notes.append(f"{path}: deployment {name!r} is not in scenario {scenario.name}; left out")
            continue
        total = pd.concat(parts, axis=1).sum(axis=1, min_count=1).sort_index()
        out[name] = total.reindex(index, method="nearest", tolerance=step / 2).to_numpy(dtype=float)
    return {name: out[name] for name in sorted(out)}


def _locust_quantiles(prefix: str, window_s: float, n: int,
                      notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ``95%`` and ``99%`` columns (ms) of the last ``Aggregated`` history row in each window,
    binned as :func:`.locust.read_history` bins (window k is (edge k, edge k + 1]); None where absent,
    and None with a note for a history without ``--csv-full-history`` (the module's docstring)."""
    from memstack_capacity.calibration.locust import AGGREGATE, HISTORY_COLUMNS, row_windows, window_edges

    path = Path(prefix + "_stats_history.csv")
    frame = measurements.read_csv(path, HISTORY_COLUMNS, "Locust's _stats_history.csv")
    if not (frame["Name"] != AGGREGATE).any() and ("95%" in frame.columns or "99%" in frame.columns):
        notes.append(f"{path} has only Aggregated rows (Locust without --csv-full-history): its percentile columns "
                     "are the whole test's so far, not a window's; the 95th and 99th percentiles are not compared")
        return None, None
    ts = measurements.numbers(frame, "Timestamp", path)
    edges = window_edges(ts, window_s)
    rows = frame["Name"] == AGGREGATE
    out = []
    for column in ("95%", "99%"):
        if column not in frame.columns:
            out.append(None)
            continue
        values = measurements.numbers(frame, column, path, allow_na=True)[rows] / 1000.0
        bins = row_windows(ts[rows], edges)
        inside = bins < n
        last = pd.Series(values.to_numpy()[inside]).groupby(bins[inside]).last()
        column_values = np.full(n, np.nan)
        column_values[last.index.to_numpy()] = last.to_numpy()
        out.append(column_values if np.isfinite(column_values).any() else None)
    return out[0], out[1]
