"""The summary of a run (what ``summary.json`` holds) and target verdicts.

Statistics count requests that arrived after the warm-up, but for ``arrived`` (the whole run,
from t = 0) and ``in_flight_end``: together they check conservation over the run. Latency percentiles are over
requests answered OK; the error rate is failed / (completed + failed). Throughput is
OK answers per second over the measured window. Utilisation is against the pods'
*requests*, as the HPA sees it; level metrics are time averages of the samples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from memstack_capacity.components.datastores.budget import connection_budget
from memstack_capacity.components.recorder import STATUS_LABELS
from memstack_capacity.results import ceilings
from memstack_capacity.results.cost import cost_summary

#: The error statuses ``requests.errors`` always lists (zero when none happened), as the contract shows.
ERROR_STATUSES = tuple(STATUS_LABELS[1:])

PERCENTILES = {"p50": 50, "p95": 95, "p99": 99}


def latency_stats(latencies: np.ndarray) -> dict:
    if len(latencies) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    pct = np.percentile(latencies, list(PERCENTILES.values()))
    out = {"mean": float(latencies.mean())}
    out.update({k: float(v) for k, v in zip(PERCENTILES, pct)})
    out["max"] = float(latencies.max())
    return out


def request_stats(frame: pd.DataFrame, window_s: float) -> dict:
    ok = frame["status"] == "ok"
    completed, failed = int(ok.sum()), int((~ok).sum())
    answered = completed + failed
    counts = frame.loc[~ok, "status"].astype(str).value_counts()
    errors = {status: 0 for status in ERROR_STATUSES}
    errors.update({str(k): int(v) for k, v in counts.items() if v})
    return {
        "completed": completed,
        "failed": failed,
        "throughput_rps": completed / window_s if window_s > 0 else 0.0,
        "error_rate": failed / answered if answered else 0.0,
        "latency_s": latency_stats(frame.loc[ok, "latency_s"].to_numpy()),
        "errors": errors,
    }


def sketch_stats(stats, classes: list[int], window_s: float) -> dict:
    """Request figures from the streaming counts and latency sketches (every request counted;
    percentiles within the sketch's relative error)."""
    from memstack_capacity.components.recorder import STATUS_LABELS
    from memstack_capacity.components.sketch import QuantileSketch

    counts = [sum(stats.counts[c][s] for c in classes) for s in range(len(STATUS_LABELS))]
    sketch = QuantileSketch()
    for c in classes:
        sketch.merge(stats.ok_latency[c])
    completed, failed = counts[0], sum(counts[1:])
    answered = completed + failed
    latency = {"mean": sketch.mean(), **{k: sketch.quantile(q / 100.0) for k, q in PERCENTILES.items()}}
    latency["max"] = sketch.max if sketch.count else None
    return {
        "completed": completed,
        "failed": failed,
        "throughput_rps": completed / window_s if window_s > 0 else 0.0,
        "error_rate": failed / answered if answered else 0.0,
        "latency_s": latency,
        "errors": {label: counts[i] for i, label in enumerate(STATUS_LABELS) if i},
    }


def summarize(record, requests: pd.DataFrame, timeseries: pd.DataFrame, jobs: pd.DataFrame | None = None) -> dict:
    """The summary.json figures of one run.

    When the run kept every request, percentiles are exact (numpy's linear interpolation over
    the measured requests); when its log kept only every N-th request, every figure comes from
    the streaming counts and the latency sketch (relative error ≤ 0.5 %).
    """
    sc = record.scenario
    window = sc.duration - sc.warmup
    names = [c.name for c in sc.workload.requests]
    every = record.recorder.requests.every
    if record.flow is not None:  # a flow model: its own figures, no per-request record
        req = dict(record.flow.requests)
    elif every == 1 or record.request_stats is None:
        measured = requests[requests["t_arrival_s"] >= sc.warmup]
        req = request_stats(measured, window)
        req["by_class"] = {name: request_stats(measured[measured["class"] == name], window) for name in names}
    else:
        stats = record.request_stats
        req = sketch_stats(stats, list(range(len(names))), window)
        req["by_class"] = {name: sketch_stats(stats, [i], window) for i, name in enumerate(names)}
    req["log_every"] = int(every)
    req["arrived"] = int(record.arrived)
    req["in_flight_end"] = int(record.in_flight_end)
    summary = {
        "scenario": sc.name,
        "seed": record.seed,
        "duration_s": sc.duration,
        "warmup_s": sc.warmup,
        "replications": 1,
        "requests": req,
        "deployments": _deployments(record, timeseries, sc.warmup),
    }
    nodes = _nodes(timeseries, sc.warmup)
    if nodes is not None:
        summary["nodes"] = nodes
    if record.jobs is not None:
        summary["jobs"] = record.jobs
    if record.datastores is not None:
        summary["datastores"] = with_budgets(record.datastores, sc)
    # Figured once here from the scenario; the report, its findings and the console read this list.
    summary["ceilings"] = ceilings.to_summary(sc)
    summary["cost"] = cost_summary(record, timeseries)
    if record.flow is not None:
        summary["mode"] = "fluid"
        summary["fluid"] = record.flow.details
    return summary


def with_budgets(stores: dict, scenario) -> dict:
    """The datastores' figures with each PostgreSQL store's connection ``budget`` added, whatever the engine.

    The budget is :func:`~memstack_capacity.components.datastores.budget.connection_budget`:
    per deployment that calls the store, (maxReplicas + rollout maxSurge) pods × processes ×
    (pool_size + max_overflow). It is figured here once; the report's findings read it.
    """
    budgets = connection_budget(scenario)
    return {name: {**entry, "budget": budgets[name]} if name in budgets else entry for name, entry in stores.items()}


def _deployments(record, timeseries: pd.DataFrame, warmup: float) -> dict:
    out = {}
    ts = timeseries[timeseries["t_s"] > warmup]
    for name, totals in record.deployments.items():
        mine = ts[ts["component"] == name]

        def series(metric: str) -> pd.Series:
            return mine.loc[mine["metric"] == metric, "value"]

        replicas = series("replicas_desired")
        cpu, mem, thr = series("cpu_utilization"), series("memory_utilization"), series("throttled_fraction")
        out[name] = {
            "replicas": {
                "min": int(replicas.min()) if len(replicas) else None,
                "max": int(replicas.max()) if len(replicas) else None,
                "mean": _mean(replicas),
            },
            "pods_ready": {"min": int(series("pods_ready").min()) if len(replicas) else None, "mean": _mean(series("pods_ready"))},
            "pod_seconds": float(totals.pod_seconds),
            "cpu_utilization": {"mean": _mean(cpu), "max": _max(cpu)},
            "memory_utilization": {"mean": _mean(mem), "max": _max(mem)},
            "throttled_fraction": _mean(thr),
            "throttled_periods_fraction": _mean(series("throttled_periods_fraction")),
            "throttled_s": float(series("throttled_s").sum()),
            "oom_kills": int(totals.oom_kills),
            "restarts": int(totals.restarts),
        }
    return out


def _nodes(timeseries: pd.DataFrame, warmup: float) -> dict | None:
    """Each node's CPU after the warm-up: mean and peak utilisation of its allocatable cores, and the
    share of the time its pods wanted more cores than it has. None when the engine has no node series."""
    ts = timeseries[(timeseries["t_s"] > warmup) & timeseries["component"].str.startswith("node-")]
    if ts.empty:
        return None
    by_node = {}
    for name, mine in ts.groupby("component", sort=False):
        util = mine.loc[mine["metric"] == "cpu_utilization", "value"]
        contended = mine.loc[mine["metric"] == "cpu_contended_fraction", "value"]
        by_node[str(name)] = {"cpu_utilization_mean": _mean(util), "cpu_utilization_max": _max(util),
                              "contended_fraction": _mean(contended) or 0.0}
    return {
        "cpu_utilization_max": max((n["cpu_utilization_max"] or 0.0) for n in by_node.values()),
        "contended_fraction_max": max(n["contended_fraction"] for n in by_node.values()),
        "by_node": by_node,
    }


def _mean(s: pd.Series):
    s = s.dropna()
    return float(s.mean()) if len(s) else None


def _max(s: pd.Series):
    s = s.dropna()
    return float(s.max()) if len(s) else None


def judge_targets(summary: dict, targets) -> list[dict]:
    """One verdict per target given: name, limit, value, met."""
    verdicts = []
    req = summary["requests"]
    lat = req["latency_s"]

    fluid = summary.get("mode") == "fluid"

    def add(name, kind, limit, value):
        verdict = {"name": name, "kind": kind, "limit": float(limit), "value": value}
        if value is None or (isinstance(value, float) and math.isnan(value)):
            # No value cannot pass a gate; say why it is missing.
            verdict["met"] = False
            verdict["note"] = (
                "not available in fluid mode (see its caveats); run the discrete-event engine to judge it"
                if fluid
                else "no value: no request (or job) completed in the measured window"
            )
        else:
            verdict["met"] = bool(value >= limit if kind == "min" else value <= limit)
        verdicts.append(verdict)

    if targets.throughput_rps is not None:
        for kind in ("min", "max"):
            limit = getattr(targets.throughput_rps, kind)
            if limit is not None:
                add("throughput_rps", kind, limit, req["throughput_rps"])
    if targets.error_rate is not None:
        for kind in ("min", "max"):
            limit = getattr(targets.error_rate, kind)
            if limit is not None:
                add("error_rate", kind, limit, req["error_rate"])
    for stat in ("mean", "p50", "p95", "p99"):
        bound = getattr(targets, f"latency_{stat}")
        if bound is not None:
            add(f"latency_{stat}", "max", bound.max, lat[stat])
    if targets.job_latency_p99 is not None:
        jobs = summary.get("jobs", {}).get("latency_s", {})
        add("job_latency_p99", "max", targets.job_latency_p99.max, jobs.get("p99"))
    return verdicts
