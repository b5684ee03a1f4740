"""Calibrate on the first half of a real recording, predict the second half (docs/calibration.md, "A real recording").

The recording: the ServiceWeaver Online Boutique as one deployment on minikube, 200 Locust users
for 15 minutes, with its CPU and pod count from Prometheus
(tests/data/calibration/real/serviceweaver-boutique-monolith/README.md; fetch it first with that
folder's ``fetch.py``). The scenario: scenarios/validation/serviceweaver-boutique-monolith.yaml.

1. ``calibrate`` on ``part_a`` (Locust's history before the split, the CPU samples whose 5-minute
   rate covers only the loaded test, the pod count);
2. ``backtest`` the calibrated scenario on ``part_b`` (held out): Locust's windows give the
   throughput and latency; the recorded pods of part B are added to the recording, so the replay
   starts at the recorded count and the replica error is figured as ``backtest`` does for Prometheus;
3. the run's mean CPU over part B against the recorded (a 5-minute rate, steady by then).

    PYTHONPATH=src python benchmarks/realdata_boutique.py [--seed N] [--json]

Nothing here is fitted to part B: the only figure of part B used is its own load (users) and the
pod count the replay starts from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration" / "real" / "serviceweaver-boutique-monolith"
SCENARIO = ROOT / "scenarios" / "validation" / "serviceweaver-boutique-monolith.yaml"


def available() -> bool:
    """Whether fetch.py has written the two parts."""
    return all((DATA / part / "boutique_stats_history.csv").exists() for part in ("part_a", "part_b"))


def calibrate_part_a(seed: int = 0):
    """The calibration of part A (what ``calibrate --prometheus part_a/prometheus --locust part_a/boutique`` finds)."""
    from memstack_capacity.calibration import estimates, locust, measurements, prometheus
    from memstack_capacity.scenario.load import load_scenario

    scenario = load_scenario(SCENARIO)
    mapping = measurements.load_mapping(DATA / "mapping.yaml")
    raws = [prometheus.read(DATA / "part_a" / "prometheus", mapping, requests_needed=False),
            locust.read(DATA / "part_a" / "boutique", mapping.window_s)]
    windows = measurements.to_windows(raws, mapping, scenario)
    return estimates.calibrate(windows, scenario, mapping.deployment, seed=seed)


def recorded_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(Unix times, values) of the one series in a query_range answer fetch.py wrote."""
    values = json.loads(path.read_text(encoding="utf-8"))["data"]["result"][0]["values"]
    return np.array([float(t) for t, _ in values]), np.array([float(v) for _, v in values])


def _mean_or_none(values) -> float | None:
    """The mean of a recorded series, or None where the recording has none (Locust's history
    percentiles without --csv-full-history are the whole test's so far, so they are not read)."""
    return None if values is None else float(np.nanmean(values))


def predict_part_b(calibration, seed: int = 1) -> dict:
    """Backtest the calibrated scenario on part B; the figures, the pods, and the CPU."""
    from memstack_capacity import simulate
    from memstack_capacity.api.backtest import replay_scenario
    from memstack_capacity.calibration import measurements, recording
    from memstack_capacity.results import backtest as metrics
    from memstack_capacity.scenario.load import load_scenario

    scenario = load_scenario(SCENARIO, calibration.settings("service"))
    mapping = measurements.load_mapping(DATA / "mapping.yaml")
    prefix = DATA / "part_b" / "boutique"
    rec = recording.read(scenario, locust=str(prefix), mapping=mapping)
    # Locust's first history row of part B is the replay's t = 0; the pods recorded at each window's end.
    first = float(np.loadtxt(str(prefix) + "_stats_history.csv", delimiter=",", skiprows=1, usecols=0, max_rows=1))
    t_pods, pods = recorded_series(DATA / "part_b" / "prometheus" / "replicas.json")
    at = np.clip(np.searchsorted(t_pods - first, rec.end + 1e-9, side="right") - 1, 0, len(pods) - 1)
    rec = dataclasses.replace(rec, replicas={"api": pods[at]})
    replayed, settings = replay_scenario(scenario, rec)
    result = simulate(replayed, seed=seed)
    figures = metrics.compare(rec, metrics.simulated_windows(result, rec))
    t_cpu, cpu = recorded_series(DATA / "part_b" / "prometheus" / "cpu.json")
    series = result.series
    return {"figures": figures, "replay": settings,
            "cpu_cores": {"recorded_mean": float(cpu.mean()), "simulated_mean": float(series["api/cpu_cores"].mean()),
                          "recorded_samples": int(len(cpu))},
            "recorded": {"throughput_rps": float(np.mean(rec.throughput)),
                         "latency_mean_s": float(np.nanmean(rec.latency_mean)),
                         "latency_p95_s": _mean_or_none(rec.latency_p95),
                         "latency_p99_s": _mean_or_none(rec.latency_p99)},
            "simulated": {"throughput_rps": float(result.summary["requests"]["throughput_rps"])}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (the bootstrap's is 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not available():
        print(f"error: no recording in {DATA}; run python {DATA / 'fetch.py'} first", file=sys.stderr)
        return 2
    calibration = calibrate_part_a()
    out = predict_part_b(calibration, seed=args.seed)
    out["calibration"] = [{"figure": e.figure, "estimate": e.estimate, "low": e.low, "high": e.high,
                           "identifiable": e.identifiable} for e in calibration.estimates if e.group == "service"]
    if args.json:
        print(json.dumps(out, indent=1, default=float))
        return 0
    for e in out["calibration"]:
        if e["estimate"] is not None and not e["figure"].startswith("share"):
            print(f"{e['figure']}: {e['estimate']:.4g} [{e['low']}, {e['high']}] ({e['identifiable']})")
    f = out["figures"]
    print("held-out part B:", json.dumps({"latency": f["latency"], "throughput": f["throughput"],
                                          "replicas": f["replicas"]}, default=float))
    print("cpu:", out["cpu_cores"], "recorded:", out["recorded"], "simulated:", out["simulated"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
