"""k6's ``--out csv=FILE`` (or ``FILE.gz``) and ``--summary-export FILE.json``.

The CSV (grafana.com/docs/k6 "CSV" output): a header ``metric_name, timestamp, metric_value,
check, error, error_code, group, method, name, proto, scenario, status, subproto, tls_version,
url, extra_tags`` and one row per sample. Read here: ``http_reqs`` (1 per request),
``http_req_duration`` (milliseconds) and ``vus`` (the virtual users, a gauge). The request's
class is its ``name`` tag (k6 sets it to the URL unless the script names it), else ``url``.
Timestamps are k6's ``timeFormat``: Unix seconds (the default), milliseconds, microseconds or
nanoseconds (told apart by size), or RFC 3339.

The summary export (``--summary-export``, and ``handleSummary``'s data, whose metrics nest their
figures under ``values``): ``metrics.http_reqs{count, rate}``, ``metrics.http_req_duration{avg,
med, p(95), …}`` in milliseconds, ``metrics.vus{value, min, max}``; per class only through
sub-metrics such as ``http_req_duration{name:search}`` (a script's thresholds create them). It is
the whole test as one window: the mix and the mean response times, never a fit across windows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from memstack_capacity.calibration.measurements import SERIES, Raw, numbers, read_csv, read_text
from memstack_capacity.errors import MeasurementError, Problem

CSV_COLUMNS = ("metric_name", "timestamp", "metric_value")


def _timestamps(frame: pd.DataFrame, path) -> np.ndarray:
    """Unix seconds from any of k6's time formats."""
    cells = frame["timestamp"].str.strip()
    values = pd.to_numeric(cells, errors="coerce")
    if values.notna().all():
        scale = values.abs().max()
        divisor = 1e9 if scale > 1e17 else 1e6 if scale > 1e14 else 1e3 if scale > 1e11 else 1.0
        return (values / divisor).to_numpy(dtype=float)
    parsed = pd.to_datetime(cells, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        line = int(parsed.isna().idxmax())
        raise MeasurementError([Problem(f"line {line}, column 'timestamp'", "expected Unix time (s, ms, µs or ns) "
                                                                            "or RFC 3339",
                                        frame.at[line, "timestamp"], True)], str(path))
    return (parsed.astype("int64") / 1e9).to_numpy(dtype=float)


def _whole_windows(ts: np.ndarray, start: float, window_s: float) -> int:
    """How many windows from ``start`` the test covers whole (at least one). k6 stamps a sample
    with its second by default, so a sample at second s stands for [s, s + 1); finer stamps for
    their instant."""
    resolution = 1.0 if np.all(ts == np.floor(ts)) else 0.0
    return max(1, int(np.floor((ts.max() + resolution - start) / window_s + 1e-9)))


def _totals(metric: np.ndarray, names: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    """Per name, the whole test's request count and mean response time (seconds)."""
    reqs = pd.Series(value[metric == "http_reqs"], index=names[metric == "http_reqs"])
    counts = reqs.groupby(level=0).sum()
    dur = pd.Series(value[metric == "http_req_duration"] / 1000.0, index=names[metric == "http_req_duration"])
    means = dur.groupby(level=0).mean() if len(dur) else pd.Series(dtype=float)
    return pd.DataFrame({"count": counts, "mean_response_s": means.reindex(counts.index)})


def read_csv_output(path: str | Path, window_s: float) -> Raw:
    """Windows of ``window_s`` seconds from k6's CSV output."""
    frame = read_csv(path, CSV_COLUMNS, "k6's CSV output")
    if frame.empty:
        raise MeasurementError([Problem("line 2", "no samples after the header")], str(path))
    metric = frame["metric_name"].str.strip()
    wanted = metric.isin(["http_reqs", "http_req_duration", "vus"])
    frame, metric = frame[wanted], metric[wanted]
    if not (metric == "http_reqs").any():
        raise MeasurementError([Problem("column 'metric_name'", "has no http_reqs samples; expected k6's CSV output "
                                                                "of a test that made HTTP requests")], str(path))
    ts = _timestamps(frame, path)
    value = numbers(frame, "metric_value", path).to_numpy()
    if "name" in frame.columns:
        name = frame["name"].str.strip()
        if "url" in frame.columns:
            name = name.where(name != "", frame["url"].str.strip())
    elif "url" in frame.columns:
        name = frame["url"].str.strip()
    else:
        raise MeasurementError([Problem("line 1", "the header has neither 'name' nor 'url'; expected k6's CSV columns "
                                                  "(…, name, …, url, …) to tell the requests apart")], str(path))
    start = float(np.floor(ts.min()))
    n = _whole_windows(ts, start, window_s)
    bins = ((ts - start) // window_s).astype(int)
    totals = _totals(metric.to_numpy(), name.to_numpy(), value)  # the whole test, every sample
    inside = bins < n  # a last window the test ended inside would read low: left out of the windows
    ts, value, bins = ts[inside], value[inside], bins[inside]
    metric, name = metric[inside], name[inside]
    index = pd.Index(start + window_s * np.arange(n), name="t")
    m = metric.to_numpy()
    names = name.to_numpy()
    reqs = pd.DataFrame({"bin": bins[m == "http_reqs"], "name": names[m == "http_reqs"], "v": value[m == "http_reqs"]})
    counts = reqs.pivot_table(index="bin", columns="name", values="v", aggfunc="sum", fill_value=0.0)
    throughput = counts.reindex(range(n), fill_value=0.0) / window_s
    throughput.index = index
    dur = pd.DataFrame({"bin": bins[m == "http_req_duration"], "name": names[m == "http_req_duration"],
                        "v": value[m == "http_req_duration"] / 1000.0})
    response = (dur.pivot_table(index="bin", columns="name", values="v", aggfunc="mean") if len(dur)
                else pd.DataFrame(columns=throughput.columns))
    response = response.reindex(index=range(n), columns=throughput.columns)
    response.index = index
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    vus = pd.DataFrame({"bin": bins[m == "vus"], "v": value[m == "vus"]}).groupby("bin")["v"]
    if len(vus):
        series.loc[index[vus.mean().index.to_numpy()], "users"] = vus.mean().to_numpy()
        steady = (vus.max() == vus.min()).astype(float)
        series.loc[index[steady.index.to_numpy()], "users_steady"] = steady.to_numpy()
    return Raw(source=str(path), window_s=window_s, throughput=throughput, response_s=response, series=series,
               totals=totals)


_SUBMETRIC = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:\{(?P<tags>.*)\})?$")


def read_summary(path: str | Path) -> Raw:
    """The whole test as one window from ``--summary-export`` (or ``handleSummary``'s data)."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasurementError([Problem(f"line {exc.lineno}, column {exc.colno}", f"not JSON: {exc.msg}")],
                               str(path)) from None
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise MeasurementError([Problem("metrics", "missing; expected k6's summary export, an object with a "
                                                   "`metrics` object")], str(path))

    def figures(key: str) -> dict:
        entry = metrics[key]
        if not isinstance(entry, dict):
            raise MeasurementError([Problem(f"metrics.{key}", "expected an object of figures")], str(path))
        entry = entry.get("values", entry) if isinstance(entry.get("values"), dict) else entry
        for fig, val in entry.items():
            if fig != "thresholds" and (not isinstance(val, (int, float)) or isinstance(val, bool) or val < 0):
                raise MeasurementError([Problem(f"metrics.{key}.{fig}", "expected a number of zero or more", val,
                                                True)], str(path))
        return entry

    if "http_reqs" not in metrics:
        raise MeasurementError([Problem("metrics.http_reqs", "missing; expected the count and rate of HTTP requests")],
                               str(path))
    total = figures("http_reqs")
    if "count" not in total or "rate" not in total or total["rate"] <= 0:
        raise MeasurementError([Problem("metrics.http_reqs", "expected `count` and a `rate` above zero")], str(path))
    duration_s = total["count"] / total["rate"]
    per: dict[str, dict] = {}
    for key in metrics:
        match = _SUBMETRIC.match(key)
        if not match or not match.group("tags"):
            continue
        tags = dict(part.split(":", 1) for part in match.group("tags").split(",") if ":" in part)
        label = tags.get("name") or tags.get("scenario") or tags.get("group", "").strip(":")
        if not label or len(tags) != 1 or match.group("metric") not in ("http_reqs", "http_req_duration"):
            continue  # more than one tag (name and status, say) is a part of the class's requests
        per.setdefault(label, {})[match.group("metric")] = figures(key)
    notes = []
    if per:
        rows = {label: {"count": f.get("http_reqs", {}).get("count", np.nan),
                        "mean_response_s": f.get("http_req_duration", {}).get("avg", np.nan) / 1000.0}
                for label, f in per.items()}
        totals = pd.DataFrame.from_dict(rows, orient="index")
        if totals["count"].isna().any():
            notes.append(f"{path}: some classes have http_req_duration but no http_reqs sub-metric; their share of "
                         "the mix is unknown")
    else:
        avg = figures("http_req_duration").get("avg", np.nan) if "http_req_duration" in metrics else np.nan
        totals = pd.DataFrame({"count": [total["count"]], "mean_response_s": [avg / 1000.0]}, index=["(all)"])
        notes.append(f"{path} has no per-name sub-metrics (e.g. http_reqs{{name:search}}); only the whole mix")
    index = pd.Index([0.0], name="t")
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    if "vus" in metrics:
        vus = figures("vus")
        if vus.get("min") is not None and vus.get("min") == vus.get("max"):
            series.loc[0.0, ["users", "users_steady"]] = [vus["max"], 1.0]
        else:
            notes.append(f"{path}: the VUs changed during the test (min {vus.get('min')}, max {vus.get('max')}); "
                         "one summary cannot give the think time")
    throughput = pd.DataFrame({k: [v / duration_s] for k, v in totals["count"].items()}, index=index)
    response = pd.DataFrame({k: [v] for k, v in totals["mean_response_s"].items()}, index=index)
    return Raw(source=str(path), window_s=duration_s, throughput=throughput, response_s=response, series=series,
               totals=totals, one_window=True, notes=notes)


def read(path: str | Path, window_s: float) -> Raw:
    """k6's CSV output or its summary export, told apart by the file's first character."""
    head = read_text(path).lstrip()[:1]
    return read_summary(path) if head == "{" else read_csv_output(path, window_s)
