"""Locust's ``--csv PREFIX`` files: ``PREFIX_stats.csv`` and ``PREFIX_stats_history.csv``.

Columns as Locust's ``stats.py`` writes them (``requests_csv_columns`` and
``stats_history_csv_columns``, docs.locust.io "Retrieve test statistics in CSV format"):

- ``_stats.csv``: ``Type, Name, Request Count, Failure Count, Median Response Time, Average
  Response Time, Min Response Time, Max Response Time, Average Content Size, Requests/s,
  Failures/s`` and the percentiles ``50%`` … ``100%``; one row per endpoint and an
  ``Aggregated`` row. Times in milliseconds.
- ``_stats_history.csv``: ``Timestamp, User Count, Type, Name, Requests/s, Failures/s``, the
  percentiles of the current (10 s sliding) window, then the whole test so far: ``Total Request
  Count, Total Failure Count, Total Median Response Time, Total Average Response Time, Total
  Min Response Time, Total Max Response Time, Total Average Content Size``. A row per second
  (``CSV_STATS_INTERVAL_SEC``) for ``Aggregated``, and for every endpoint only with
  ``--csv-full-history``. Unix seconds; ``N/A`` where there is no value yet.

Windows are built from the cumulative columns, not the sliding-window ones: the requests in a
window are the difference of ``Total Request Count`` at its two ends, and their mean response
time the difference of ``Total Average Response Time × Total Request Count`` over that count,
so every request counts once and exactly. Without per-endpoint history rows the aggregated
throughput is split by the whole test's mix from ``_stats.csv`` (said in the notes): such
windows cannot tell the classes' CPU apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memstack_capacity.calibration.measurements import SERIES, Raw, numbers, read_csv
from memstack_capacity.errors import MeasurementError, Problem

AGGREGATE = "Aggregated"
STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "Average Response Time", "Requests/s")
HISTORY_COLUMNS = ("Timestamp", "User Count", "Type", "Name", "Total Request Count", "Total Average Response Time")


def _names(frame: pd.DataFrame) -> pd.Series:
    """An endpoint's name: ``Name``, or ``Type Name`` when one name comes with several methods."""
    types_per_name = frame.groupby("Name")["Type"].nunique()
    several = frame["Name"].map(types_per_name) > 1
    return frame["Name"].where(~several, frame["Type"] + " " + frame["Name"])


def read_stats(path: str | Path) -> pd.DataFrame:
    """Per endpoint (not the aggregate): ``count`` and ``mean_response_s`` of the whole test."""
    frame = read_csv(path, STATS_COLUMNS, "Locust's _stats.csv")
    count = numbers(frame, "Request Count", path)
    mean_ms = numbers(frame, "Average Response Time", path, allow_na=True)
    names = _names(frame)
    rows = names != AGGREGATE
    if not rows.any():
        raise MeasurementError([Problem("column 'Name'", "has no endpoint row besides Aggregated; expected one row "
                                                         "per request name")], str(path))
    out = pd.DataFrame({"count": count[rows].to_numpy(), "mean_response_s": mean_ms[rows].to_numpy() / 1000.0},
                       index=names[rows].to_numpy())
    return out.groupby(level=0).sum(min_count=1) if out.index.has_duplicates else out


def read_history(path: str | Path, window_s: float, mix: pd.DataFrame | None = None) -> Raw:
    """Windows of ``window_s`` seconds from ``_stats_history.csv`` (see the module's docstring)."""
    frame = read_csv(path, HISTORY_COLUMNS, "Locust's _stats_history.csv")
    if frame.empty:
        raise MeasurementError([Problem("line 2", "no rows after the header; expected one row per second")], str(path))
    ts = numbers(frame, "Timestamp", path)
    users = numbers(frame, "User Count", path)
    count = numbers(frame, "Total Request Count", path)
    mean_ms = numbers(frame, "Total Average Response Time", path, allow_na=True).fillna(0.0)
    names = _names(frame)
    notes: list[str] = []
    for name in names.unique():
        rows = names == name
        backwards = np.diff(ts[rows].to_numpy()) < 0
        if backwards.any():
            line = int(ts[rows].index[int(np.argmax(backwards)) + 1])
            raise MeasurementError([Problem(f"line {line}, column 'Timestamp'",
                                            f"goes back in time for {name!r}; expected rows in time order",
                                            frame.at[line, "Timestamp"], True)], str(path))
    edges = window_edges(ts, window_s)
    n = len(edges) - 1
    agg_rows = names == AGGREGATE
    if not agg_rows.any():
        raise MeasurementError([Problem("column 'Name'", "has no Aggregated rows; expected Locust's history, which "
                                                         "always writes them")], str(path))
    per_name = [nm for nm in names.unique() if nm != AGGREGATE]
    x, r = {}, {}
    resets = 0
    for name in per_name or [AGGREGATE]:
        rows = names == name
        cum_n, cum_t = _as_of(ts[rows], count[rows], edges), _as_of(ts[rows], count[rows] * mean_ms[rows], edges)
        dn, dt = np.diff(cum_n), np.diff(cum_t)
        bad = dn < 0
        resets += int(bad.sum())
        dn = np.where(bad, np.nan, dn)
        x[name] = dn / window_s
        with np.errstate(invalid="ignore", divide="ignore"):
            r[name] = np.where(dn > 0, dt / np.where(dn > 0, dn, 1.0) / 1000.0, np.nan)
    if resets:
        notes.append(f"{path}: the cumulative request count went down in {resets} window(s) (statistics reset); "
                     "those windows are left out")
    index = pd.Index(edges[:-1], name="t")
    throughput, response = pd.DataFrame(x, index=index), pd.DataFrame(r, index=index)
    if not per_name:
        throughput, response = _split_by_mix(throughput[AGGREGATE], response[AGGREGATE], mix, path, notes)
    # A cumulative row at time t counts the requests up to t: window k is (edge k, edge k+1], the users too.
    bins = row_windows(ts[agg_rows], edges)
    inside = bins < n
    u = pd.Series(users[agg_rows].to_numpy()[inside]).groupby(bins[inside])
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    series["users"] = pd.Series(u.mean().to_numpy(), index=edges[:-1][u.mean().index.to_numpy()])
    steady = (u.max() == u.min()).astype(float)
    series["users_steady"] = pd.Series(steady.to_numpy(), index=edges[:-1][steady.index.to_numpy()])
    return Raw(source=str(path), window_s=window_s, throughput=throughput, response_s=response, series=series,
               notes=notes)


def window_edges(ts: pd.Series, window_s: float) -> np.ndarray:
    """The windows' edges: from the first whole second, every ``window_s``, up to the last row.

    Only whole windows: a window the history does not reach to its end (the test stopped inside
    it) would count its requests over the whole width and read low, and a last row on an edge
    ends the last window (it opens none). A history shorter than one window is one window to
    its last row.
    """
    start = float(np.floor(ts.min()))
    span = float(ts.max()) - start
    n = int(np.floor(span / window_s + 1e-9))
    if n < 1:
        return np.array([start, start + max(span, 1.0)])
    return start + window_s * np.arange(n + 1)


def row_windows(ts: pd.Series, edges: np.ndarray) -> np.ndarray:
    """The window of each row: a row at t closes window k when edge k < t ≤ edge k + 1 (its
    cumulative counts end there); the first row (at edge 0) goes to window 0; a row past the
    last edge gets ``len(edges) - 1`` (no window)."""
    return np.maximum(np.searchsorted(edges, np.asarray(ts, dtype=float), side="left") - 1, 0)


def _as_of(ts: pd.Series, values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """The last value at or before each edge (0 before the first row)."""
    pos = np.searchsorted(ts.to_numpy(), edges, side="right") - 1
    vals = values.to_numpy()
    return np.where(pos >= 0, vals[np.clip(pos, 0, None)], 0.0)


def _split_by_mix(x: pd.Series, r: pd.Series, mix: pd.DataFrame | None, path, notes: list[str]):
    if mix is None or mix["count"].sum() <= 0:
        raise MeasurementError([Problem("column 'Name'", "has only Aggregated rows and no _stats.csv gives the mix; "
                                                         "run Locust with --csv-full-history or keep _stats.csv "
                                                         "beside it")], str(path))
    share = mix["count"] / mix["count"].sum()
    notes.append(f"{path} has only Aggregated rows (Locust without --csv-full-history): each window's throughput "
                 "is split by the whole test's mix, so the classes' CPU cannot be told apart")
    throughput = pd.DataFrame({name: x * s for name, s in share.items()})
    response = pd.DataFrame({name: mix.at[name, "mean_response_s"] * (r / r.mean()) if r.notna().any() else np.nan
                             for name in share.index})
    return throughput, response


def read(prefix: str | Path, window_s: float) -> Raw:
    """``PREFIX_stats.csv`` and ``PREFIX_stats_history.csv`` as one source (the stats give the
    whole test's totals; either file may be missing, not both)."""
    prefix = str(prefix)
    stats_path, history_path = Path(prefix + "_stats.csv"), Path(prefix + "_stats_history.csv")
    if not stats_path.exists() and not history_path.exists():
        raise MeasurementError([Problem("", f"neither {stats_path.name} nor {history_path.name} exists; --locust takes "
                                            "the prefix given to locust --csv")], prefix)
    totals = read_stats(stats_path) if stats_path.exists() else None
    if history_path.exists():
        raw = read_history(history_path, window_s, totals)
        raw.totals = totals
        raw.source = f"{prefix}_stats*.csv"
        return raw
    empty = pd.DataFrame(index=pd.Index([0.0], name="t"))
    return Raw(source=str(stats_path), window_s=window_s, throughput=pd.DataFrame(index=empty.index),
               response_s=pd.DataFrame(index=empty.index),
               series=pd.DataFrame(index=empty.index, columns=list(SERIES), dtype=float), totals=totals,
               one_window=True, notes=[f"no {history_path.name}: only the whole test's mix and response times"])
