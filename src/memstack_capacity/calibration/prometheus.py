"""Prometheus' ``/api/v1/query_range`` answers saved as JSON files, one per quantity.

The answer (prometheus.io/docs "HTTP API", range queries): ``{"status": "success", "data":
{"resultType": "matrix", "result": [{"metric": {label: value}, "values": [[unix_time,
"value"], …]}, …]}}``; values are strings, ``"NaN"`` where a rate had nothing to divide.

A ``--prometheus DIR`` holds a file per quantity (names from the mapping's
``prometheus.files``, defaults in :data:`~memstack_capacity.calibration.measurements.PROMETHEUS_FILES`):

==============  ========================================================================  =========
quantity        the query that answers it (example)                                       needed
==============  ========================================================================  =========
``cpu``         ``rate(container_cpu_usage_seconds_total{container="api"}[1m])``, per pod  for CPU
``requests``    ``sum by (handler) (rate(http_requests_total[1m]))``                      yes [1]_
``latency``     ``sum by (handler) (rate(…_duration_seconds_sum[1m])) / … _count …``      no
``memory``      ``container_memory_working_set_bytes{container="api"}``, per pod          no
``replicas``    ``kube_deployment_status_replicas{deployment="api"}``                     no
``users``       the load generator's user count (e.g. ``locust_users``)                   no
``in_flight``   requests in flight (a gauge the service exports)                          no
==============  ========================================================================  =========

Series of ``cpu``, ``memory``, ``replicas``, ``users`` and ``in_flight`` are summed over pods
(a pod absent at a time counts nothing), after leaving out those with a label that
``prometheus.select`` gives another value (a series without the label is kept: a replicas
series has no ``container``). ``requests`` and ``latency`` have one series per request class, named by
the label ``prometheus.class_label`` (default: the one label their series differ in). Every
file's points are put on the ``requests`` file's timestamps; the window is its step.

.. [1] Unless a load test (``--locust``, ``--k6``) is read beside it: then the load test gives the
   throughput and the windows, and the other files are matched to them (``requests_needed``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from memstack_capacity.calibration.measurements import PROMETHEUS_FILES, SERIES, Mapping, Raw, read_text
from memstack_capacity.errors import MeasurementError, Problem

_SUMMED = {"cpu": "cpu_cores", "memory": "memory_bytes", "replicas": "replicas", "users": "users",
           "in_flight": "in_flight"}  # fmt: skip


def read_matrix(path: str | Path) -> list[tuple[dict, pd.Series]]:
    """A query_range answer: (labels, values indexed by Unix time) per series; NaN points dropped."""
    text = read_text(path)
    source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasurementError([Problem(f"line {exc.lineno}, column {exc.colno}", f"not JSON: {exc.msg}")],
                               source) from None
    if not isinstance(data, dict) or data.get("status") != "success":
        said = f" ({data.get('errorType')}: {data.get('error')})" if isinstance(data, dict) and "error" in data else ""
        raise MeasurementError([Problem("status", f"expected \"success\"{said}; save the answer of a successful "
                                                  "/api/v1/query_range", data.get("status") if isinstance(data, dict)
                                        else None, isinstance(data, dict))], source)
    body = data.get("data")
    if not isinstance(body, dict) or body.get("resultType") != "matrix":
        got = body.get("resultType") if isinstance(body, dict) else None
        raise MeasurementError([Problem("data.resultType", "expected \"matrix\" (the answer of /api/v1/query_range, "
                                                           "not /api/v1/query)", got, got is not None)], source)
    result = body.get("result")
    if not isinstance(result, list):
        raise MeasurementError([Problem("data.result", "expected a list of series")], source)
    out = []
    for i, entry in enumerate(result):
        where = f"data.result[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), dict) or \
                not isinstance(entry.get("values"), list):
            raise MeasurementError([Problem(where, "expected {\"metric\": {labels}, \"values\": [[time, \"value\"], …]}")],
                                   source)
        times, values = [], []
        for j, point in enumerate(entry["values"]):
            ok = isinstance(point, list) and len(point) == 2 and isinstance(point[0], (int, float)) \
                and not isinstance(point[0], bool) and isinstance(point[1], str)
            value = _number(point[1]) if ok else None
            if not ok or value is None:
                raise MeasurementError([Problem(f"{where}.values[{j}] (series {_labels(entry['metric'])})",
                                                "expected [unix_time, \"number\"]", point, True)], source)
            if times and point[0] <= times[-1]:
                raise MeasurementError([Problem(f"{where}.values[{j}] (series {_labels(entry['metric'])})",
                                                "time does not increase; expected points in time order",
                                                point[0], True)], source)
            times.append(float(point[0]))
            values.append(value)
        series = pd.Series(values, index=pd.Index(times, name="t"), dtype=float)
        out.append((dict(entry["metric"]), series[np.isfinite(series)]))
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not (math.isinf(value) and value < 0) else None


def _labels(metric: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _class_label(series: list[tuple[dict, pd.Series]], given: str | None, path) -> str:
    if given:
        missing = [_labels(m) for m, _ in series if given not in m]
        if missing:
            raise MeasurementError([Problem("class label", f"series {missing[0]} has no label {given!r} "
                                                           "(prometheus.class_label in the mapping)")], str(path))
        return given
    keys = set().union(*(m.keys() for m, _ in series)) if series else set()
    varying = sorted(k for k in keys if len({m.get(k) for m, _ in series}) > 1)
    if len(series) == 1:
        return next(iter(sorted(keys - {"__name__"})), "")
    if len(varying) != 1:
        raise MeasurementError([Problem("class label", f"cannot tell which label names the request class "
                                                       f"(labels that differ: {', '.join(varying) or 'none'}); give "
                                                       "prometheus.class_label in the mapping")], str(path))
    return varying[0]


def read(directory: str | Path, mapping: Mapping, *, requests_needed: bool = True) -> Raw:
    """The quantities in ``directory`` as one source (see the module's docstring).

    ``requests_needed=False`` (a load test gives the throughput beside it): without ``requests``
    the windows are the times of the other series, and the source gives those series only.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MeasurementError([Problem("", "not a directory; --prometheus takes a directory of query_range answers "
                                            f"({', '.join(PROMETHEUS_FILES.values())})")], str(directory))
    prom = mapping.prometheus
    files = {**PROMETHEUS_FILES, **(prom.get("files") or {})}
    select = {str(k): str(v) for k, v in (prom.get("select") or {}).items()}
    requests_path = directory / files["requests"]
    if not requests_path.exists():
        if not requests_needed:
            return _series_only(directory, files, select)
        raise MeasurementError([Problem("", f"no {files['requests']} (the request rate per class; needed "
                                            "unless a load test gives it)")], str(directory))
    requests = read_matrix(requests_path)
    if not requests:
        raise MeasurementError([Problem("data.result", "is empty; expected one series per request class")],
                               str(requests_path))
    label = _class_label(requests, prom.get("class_label"), requests_path)
    index = pd.Index(sorted(set().union(*(s.index for _, s in requests))), name="t")
    if len(index) < 1:
        raise MeasurementError([Problem("data.result", "has no points")], str(requests_path))
    step = float(np.median(np.diff(index))) if len(index) > 1 else 60.0
    throughput = _per_class(requests, label, index)
    response = pd.DataFrame(index=index)
    latency_path = directory / files["latency"]
    if latency_path.exists():
        latency = read_matrix(latency_path)
        if latency:
            scale = 1e-3 if prom.get("latency_unit", "s") == "ms" else 1.0
            response = _per_class(latency, _class_label(latency, prom.get("class_label") or label, latency_path),
                                  index, mean=True) * scale
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    found, notes = _summed_series(directory, files, select)
    for column, total in found.items():
        series[column] = total.reindex(index, method="nearest", tolerance=step / 2)
    if "cpu_cores" in series and not series["cpu_cores"].notna().any():
        notes.append(f"{directory}: no CPU series ({files['cpu']}); CPU per request cannot be estimated")
    return Raw(source=str(directory), window_s=step, throughput=throughput, response_s=response, series=series,
               notes=notes, stamped_at_end=True)


def _summed_series(directory: Path, files: dict, select: dict) -> tuple[dict[str, pd.Series], list[str]]:
    """Each summed quantity's file in ``directory`` (CPU, memory, pods, …): its series that match
    ``select`` added up per time, by column name; and a note per file where none matched."""
    found, notes = {}, []
    for quantity, column in _SUMMED.items():
        path = directory / files[quantity]
        if not path.exists():
            continue
        kept = [(m, s) for m, s in read_matrix(path) if all(m.get(k, v) == v for k, v in select.items())]
        if not kept:
            notes.append(f"{path}: no series matches prometheus.select {select}; left out")
            continue
        found[column] = pd.concat([s for _, s in kept], axis=1).sum(axis=1, min_count=1).sort_index()
    return found, notes


def _series_only(directory: Path, files: dict, select: dict) -> Raw:
    """The summed series of ``directory`` without a request rate: on the union of their times,
    the window their median step (a load test beside it gives the throughput and the windows)."""
    found, notes = _summed_series(directory, files, select)
    if not found:
        raise MeasurementError([Problem("", f"none of {', '.join(files[q] for q in _SUMMED)} nor "
                                            f"{files['requests']}; nothing to read")], str(directory))
    index = pd.Index(sorted(set().union(*(s.index for s in found.values()))), name="t")
    step = float(np.median(np.diff(index))) if len(index) > 1 else 60.0
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    for column, values in found.items():
        series[column] = values.reindex(index)
    if not series["cpu_cores"].notna().any():
        notes.append(f"{directory}: no CPU series ({files['cpu']}); CPU per request cannot be estimated")
    empty = pd.DataFrame(index=index)
    return Raw(source=str(directory), window_s=step, throughput=empty, response_s=empty, series=series, notes=notes,
               stamped_at_end=True)


def _per_class(series: list[tuple[dict, pd.Series]], label: str, index: pd.Index, mean: bool = False) -> pd.DataFrame:
    columns: dict[str, list[pd.Series]] = {}
    for metric, values in series:
        columns.setdefault(str(metric.get(label, "")), []).append(values)
    out = {}
    for name, parts in columns.items():
        frame = pd.concat(parts, axis=1)
        combined = frame.mean(axis=1) if mean else frame.sum(axis=1, min_count=1)
        out[name] = combined.reindex(index)
    return pd.DataFrame(out, index=index)
