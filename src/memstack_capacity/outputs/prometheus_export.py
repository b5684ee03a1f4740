"""A run's series as Prometheus ``/api/v1/query_range`` answers: what ``calibrate --prometheus`` reads.

One JSON file per quantity, each the answer Prometheus gives to a range query whose step is the
run's ``sample_interval`` (``{"status": "success", "data": {"resultType": "matrix", "result":
[{"metric": {…}, "values": [[unix_time, "value"], …]}]}}``), and a ``mapping.yaml`` naming the
class label. The point at time T covers the interval (T − step, T], as ``rate(x[step])`` at T
does:

- ``cpu.json``: ``<deployment>/cpu_cores`` (the mean over the interval: ``rate`` of
  ``container_cpu_usage_seconds_total``), summed over the deployment's pods (the simulator keeps no
  per-pod CPU);
- ``memory.json``: ``<deployment>/memory_bytes`` (``container_memory_working_set_bytes``, summed);
- ``replicas.json``: every deployment's ``<name>/pods`` (``kube_deployment_status_replicas``), one
  series per deployment with its label ``deployment`` (the written ``mapping.yaml`` selects the
  calibrated one, so calibration sums only its pods; ``backtest`` compares each);
- ``in_flight.json``: ``<deployment>/in_flight``;
- ``requests.json`` and ``latency.json``: per request class (label ``handler``), the answers per
  second and their mean latency in the interval, from the request log (every status);
- ``latency_p95.json`` and ``latency_p99.json``: over every class, the 95th and 99th percentile of
  the latencies of the requests answered in the interval (``histogram_quantile`` of the whole
  service's buckets; here exact from the request log), NaN (left out) where none was answered;
- ``users.json``: closed users only, the profile's users at T (``locust_users``' role).

Used to test calibration end to end (simulate with known service times, export, calibrate,
compare), and to look at a simulated run with the tools that read Prometheus' answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from memstack_capacity.results.result import anchor_timestamp

CLASS_LABEL = "handler"


def _matrix(series: list[tuple[dict, np.ndarray, np.ndarray]]) -> dict:
    result = []
    for labels, times, values in series:
        points = [[float(round(t, 3)), repr(float(v))] for t, v in zip(times, values) if np.isfinite(v)]
        result.append({"metric": labels, "values": points})
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def _split(values: np.ndarray, slot: np.ndarray, n: int) -> list[np.ndarray]:
    """``values`` grouped by ``slot`` (0..n-1), each group in its original order."""
    order = np.argsort(slot, kind="stable")
    bounds = np.searchsorted(slot[order], np.arange(n + 1))
    return [values[order[bounds[i]:bounds[i + 1]]] for i in range(n)]


def query_range_answers(result, deployment: str = "api", anchor=None) -> dict[str, dict]:
    """{file name: the answer} for ``result``'s run (see the module's docstring)."""
    series = result.series
    step = float(result.scenario.sample_interval)
    ends = series.index.to_numpy(dtype=float)
    base = anchor_timestamp(anchor).timestamp()
    times = base + ends
    labels = {"namespace": "memstack", "container": deployment}
    out = {}
    for name, column in (("cpu.json", "cpu_cores"), ("memory.json", "memory_bytes"),
                         ("in_flight.json", "in_flight")):
        key = f"{deployment}/{column}"
        if key in series.columns:
            out[name] = _matrix([(dict(labels), times, series[key].to_numpy(dtype=float))])
    replicas = [({"namespace": "memstack", "deployment": name}, times, series[f"{name}/pods"].to_numpy(dtype=float))
                for name in result.scenario.deployments if f"{name}/pods" in series.columns]
    if replicas:
        out["replicas.json"] = _matrix(replicas)
    log = result.requests
    every = float(result.summary["requests"].get("log_every") or 1)
    edges = np.concatenate([[ends[0] - step], ends])
    per_class, latency = [], []
    everything = log["t_end_s"].to_numpy(dtype=float)
    slot = np.searchsorted(edges, everything, side="left") - 1
    keep = (slot >= 0) & (slot < len(ends))
    by_window = _split(log["latency_s"].to_numpy(dtype=float)[keep], slot[keep], len(ends))
    for q, name in ((0.95, "latency_p95.json"), (0.99, "latency_p99.json")):
        values = np.array([np.quantile(v, q) if len(v) else np.nan for v in by_window])
        out[name] = _matrix([({"job": "memstack-api", "quantile": f"{q:g}"}, times, values)])
    for cls in [r.name for r in result.scenario.workload.requests]:
        rows = log[log["class"].astype(str) == cls]
        which = np.searchsorted(edges, rows["t_end_s"].to_numpy(dtype=float), side="left") - 1
        inside = (which >= 0) & (which < len(ends))
        counts = np.bincount(which[inside], minlength=len(ends)).astype(float) * every
        sums = np.bincount(which[inside], weights=rows["latency_s"].to_numpy(dtype=float)[inside],
                           minlength=len(ends))
        per_class.append(({"job": "memstack-api", CLASS_LABEL: cls}, times, counts / step))
        with np.errstate(invalid="ignore", divide="ignore"):
            latency.append(({"job": "memstack-api", CLASS_LABEL: cls}, times,
                            np.where(counts > 0, sums * every / np.where(counts > 0, counts, 1.0), np.nan)))
    out["requests.json"] = _matrix(per_class)
    out["latency.json"] = _matrix(latency)
    users = result.scenario.workload.users
    if users is not None:
        at = [p.at for p in users.profile]
        level = [p.users for p in users.profile]
        out["users.json"] = _matrix([({"job": "load-generator"}, times,
                                      np.floor(np.interp(ends, at, level) + 1e-9))])
    return out


def write_query_range(result, out_dir: str | Path, deployment: str = "api", anchor=None) -> Path:
    """The answers and a ``mapping.yaml`` in ``out_dir`` (created); returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, answer in query_range_answers(result, deployment, anchor).items():
        (out / name).write_text(json.dumps(answer, separators=(",", ":")) + "\n", encoding="utf-8")
    (out / "mapping.yaml").write_text(f"deployment: {deployment}\nprometheus:\n  class_label: {CLASS_LABEL}\n"
                                      f"  select: {{deployment: {deployment}}}\n", encoding="utf-8")
    return out


__all__ = ["query_range_answers", "write_query_range"]
