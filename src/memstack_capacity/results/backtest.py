"""A simulated run compared with a recorded test: the figures of ``backtest``.

The metrics, each on the recording's windows (``calibration.recording.Recording``):

- **replicas**, per deployment whose pods were recorded: the mean absolute error in pods
  ``mean |sim − rec|`` and the share of samples where ``|sim − rec| ≤ 1``, over the samples where
  both are known; the simulated count is the run's ``<deployment>/pods`` at the window's end
  (its last sample at or before it);
- **scale events**: a scale-up (-down) is a run of consecutive samples whose pod count rises
  (falls), timed at the first sample that shows it. The k-th recorded scale-up is matched with the
  k-th simulated one (likewise down), and each pair gives ``simulated − recorded`` seconds;
  events beyond the shorter list are counted as unmatched;
- **latency** per window: the mean absolute percentage error ``mean |sim − rec| / rec`` of the
  mean, and of the 95th and 99th percentile where they were recorded, over windows where the
  recorded value is above zero and the run answered a request, with the signed mean percentage
  error ``mean (sim − rec) / rec`` beside it (``bias``: which way the simulation errs);
- **throughput** per window (req/s): its MAPE likewise.

A fraction everywhere (0.05 is 5 %). A quantity the recording lacks is reported as
``"not recorded"``. With several replications each run is compared on its own; the figures are
the means over the runs (each run's in ``runs``).
"""

from __future__ import annotations

import numpy as np

NOT_RECORDED = "not recorded"


# ---- the metrics -------------------------------------------------------------------------------


def replica_errors(recorded, simulated) -> dict:
    """``{"mae_pods", "within_1_pod", "samples"}`` over the samples where both are known."""
    rec, sim = np.asarray(recorded, dtype=float), np.asarray(simulated, dtype=float)
    ok = np.isfinite(rec) & np.isfinite(sim)
    if not ok.any():
        return {"mae_pods": None, "within_1_pod": None, "samples": 0}
    diff = np.abs(sim[ok] - rec[ok])
    return {"mae_pods": float(diff.mean()), "within_1_pod": float((diff <= 1 + 1e-9).mean()), "samples": int(ok.sum())}


def mape(recorded, simulated) -> dict:
    """``{"mape", "bias", "windows"}``: ``mean |sim − rec| / rec`` and its signed twin ``mean (sim − rec) / rec``
    (above zero: the simulation is high) over windows with ``rec > 0`` and both known."""
    rec, sim = np.asarray(recorded, dtype=float), np.asarray(simulated, dtype=float)
    ok = np.isfinite(rec) & np.isfinite(sim) & (rec > 0)
    if not ok.any():
        return {"mape": None, "bias": None, "windows": 0}
    relative = (sim[ok] - rec[ok]) / rec[ok]
    return {"mape": float(np.abs(relative).mean()), "bias": float(relative.mean()), "windows": int(ok.sum())}


def scale_events(t, counts) -> list[dict]:
    """The scale-ups and -downs of a sampled pod count (see the module's docstring):
    ``[{"t_s", "direction", "from", "to"}]`` in time order; unknown samples are skipped."""
    t, counts = np.asarray(t, dtype=float), np.asarray(counts, dtype=float)
    ok = np.isfinite(counts)
    t, counts = t[ok], counts[ok]
    events: list[dict] = []
    last_change = None  # (index, direction) of the previous sample that changed
    for i in range(1, len(counts)):
        step = counts[i] - counts[i - 1]
        if step == 0:
            last_change = None
            continue
        direction = "up" if step > 0 else "down"
        if last_change == (i - 1, direction):
            events[-1]["to"] = float(counts[i])
        else:
            events.append({"t_s": float(t[i]), "direction": direction, "from": float(counts[i - 1]),
                           "to": float(counts[i])})
        last_change = (i, direction)
    return events


def match_events(recorded: list[dict], simulated: list[dict]) -> dict:
    """Per direction, the k-th recorded event paired with the k-th simulated one:
    ``{"up": {"recorded", "simulated", "pairs": [{"recorded_s", "simulated_s", "difference_s"}],
    "mean_abs_difference_s", "unmatched"}, "down": {…}}``; ``difference_s`` is simulated − recorded."""
    out = {}
    for direction in ("up", "down"):
        rec = [e["t_s"] for e in recorded if e["direction"] == direction]
        sim = [e["t_s"] for e in simulated if e["direction"] == direction]
        pairs = [{"recorded_s": r, "simulated_s": s, "difference_s": s - r} for r, s in zip(rec, sim)]
        out[direction] = {"recorded": len(rec), "simulated": len(sim), "pairs": pairs,
                          "mean_abs_difference_s": (float(np.mean([abs(p["difference_s"]) for p in pairs]))
                                                    if pairs else None),
                          "unmatched": abs(len(rec) - len(sim))}
    return out


# ---- the simulated side ------------------------------------------------------------------------


def simulated_windows(result, recording) -> dict:
    """The run's figures on the recording's windows: throughput, latency mean/p95/p99 (NaN where
    no request was answered, or the window begins before the run) and each recorded deployment's
    pods at the windows' ends."""
    start, end = recording.start, recording.end
    log = result.requests
    every = float(result.summary["requests"].get("log_every") or 1)
    t_end = log["t_end_s"].to_numpy(dtype=float)
    latency = log["latency_s"].to_numpy(dtype=float)
    # Window k is (start k, end k]; windows need not touch (a scrape Prometheus missed leaves a gap,
    # whose requests belong to no window).
    slot = np.searchsorted(end, t_end, side="left")
    keep = slot < len(end)
    keep[keep] &= t_end[keep] > start[slot[keep]]
    slot, latency = slot[keep], latency[keep]
    n = len(end)
    counts = np.bincount(slot, minlength=n).astype(float)
    order = np.argsort(slot, kind="stable")
    bounds = np.searchsorted(slot[order], np.arange(n + 1))
    groups = [latency[order[bounds[i]:bounds[i + 1]]] for i in range(n)]

    def stat(fn):
        return np.array([fn(g) if len(g) else np.nan for g in groups])

    # A window that begins before t = 0 (Prometheus' first: (−w, 0]) has no simulated counterpart.
    before = start < -1e-9
    out = {name: np.where(before, np.nan, values) for name, values in (
        ("throughput", counts * every / (end - start)), ("latency_mean", stat(np.mean)),
        ("latency_p95", stat(lambda g: np.quantile(g, 0.95))), ("latency_p99", stat(lambda g: np.quantile(g, 0.99))))}
    out["replicas"] = {}
    series = result.series
    times = series.index.to_numpy(dtype=float)
    at = np.clip(np.searchsorted(times, end + 1e-9, side="right") - 1, 0, len(times) - 1)
    for name in recording.replicas:
        column = f"{name}/pods"
        out["replicas"][name] = series[column].to_numpy(dtype=float)[at] if column in series else np.full(n, np.nan)
    return out


# ---- the comparison ----------------------------------------------------------------------------


def compare(recording, simulated: dict) -> dict:
    """The figures of one run against the recording (see the module's docstring)."""
    replicas: dict | str = NOT_RECORDED
    if recording.replicas:
        replicas = {}
        for name, rec in recording.replicas.items():
            sim = simulated["replicas"][name]
            replicas[name] = {**replica_errors(rec, sim),
                              "scale_events": match_events(scale_events(recording.end, rec),
                                                           scale_events(recording.end, sim))}
    latency = {}
    for key, rec in (("mean", recording.latency_mean), ("p95", recording.latency_p95),
                     ("p99", recording.latency_p99)):
        latency[key] = NOT_RECORDED if rec is None else mape(rec, simulated[f"latency_{key}"])
    return {"replicas": replicas, "latency": latency, "throughput": mape(recording.throughput, simulated["throughput"])}


def mean_figures(runs: list[dict]):
    """The figures of several runs with every number replaced by its mean over the runs; lists
    (the matched events) are left out (they stay in each run's figures). One run: itself."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    if isinstance(first, dict):
        return {k: mean_figures([r[k] for r in runs]) for k, v in first.items() if not isinstance(v, list)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = [r for r in runs if r is not None]
        return float(np.mean(values)) if values else None
    return first


def gate(figures: dict, max_replica_error: float | None, max_latency_error: float | None) -> list[dict]:
    """The limits checked: ``[{"metric", "value", "limit", "met"}]`` — the replica error of each
    recorded deployment (mean absolute pods) and the MAPE of the mean latency (a fraction)."""
    out = []
    if max_replica_error is not None and isinstance(figures["replicas"], dict):
        for name, figs in figures["replicas"].items():
            value = figs["mae_pods"]
            out.append({"metric": f"replica error of {name} (mean absolute pods)", "value": value,
                        "limit": max_replica_error, "met": value is not None and value <= max_replica_error})
    if max_latency_error is not None and isinstance(figures["latency"]["mean"], dict):
        value = figures["latency"]["mean"]["mape"]
        out.append({"metric": "latency error (MAPE of the mean latency per window)", "value": value,
                    "limit": max_latency_error, "met": value is not None and value <= max_latency_error})
    return out
