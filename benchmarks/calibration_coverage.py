"""Coverage of calibration's CPU intervals over simulation seeds (docs/calibration.md, "Checked against").

Each seed: simulate ``small.yaml`` stepped 20 → 60 → 120 → 40 users for 10 minutes (5 s windows)
with its known CPU per request, export the run as Prometheus answers
(outputs/prometheus_export.py), calibrate from them, and record the estimate, its 95 % interval
and whether the interval covers the truth. Two cases:

- ``one``: one class (``write`` weight 0): ``read``'s lognormal CPU step of mean 5 ms;
- ``two``: both classes, from two recordings of different mixes (``write`` weight 0.2 in one,
  0.6 in the other; each its own seed), calibrated together: ``read`` 5 ms and ``write`` 8 ms.
  One recording of a fixed mix cannot tell them apart (its classes' throughputs are collinear);
  two mixes can.

With ``--backtest K``: for K recording seeds, the HPA round trip of tests/test_backtest.py
(``small.yaml`` with an HPA 1–10 pods at 50 %, stepped 20 → 120 → 200 → 40 users) is calibrated
and replayed with another seed, and the share of replica samples within ±1 pod is recorded.

    PYTHONPATH=src python benchmarks/calibration_coverage.py [--seeds 200] [--backtest 20] [--json]

tests/test_calibration_coverage.py runs the same functions on fewer seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "small.yaml"
PROFILE = [{"at": 0, "users": 20}, {"at": 120, "users": 20}, {"at": 121, "users": 60}, {"at": 240, "users": 60},
           {"at": 241, "users": 120}, {"at": 420, "users": 120}, {"at": 421, "users": 40}]
TRUTH = {"read": 0.005, "write": 0.008}
#: The two recordings' write weights in the case ``two``.
MIXES = (0.2, 0.6)
BACKTEST_PROFILE = [{"at": 0, "users": 20}, {"at": 120, "users": 20}, {"at": 121, "users": 120},
                    {"at": 300, "users": 120}, {"at": 301, "users": 200}, {"at": 420, "users": 200},
                    {"at": 421, "users": 40}]
HPA = {"minReplicas": 1, "maxReplicas": 10,
       "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                              "averageUtilization": 50}}}],
       "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}


def scenario(write_weight: float):
    """``small.yaml`` stepped in load for 10 minutes, ``write`` at ``write_weight`` of the requests."""
    from memstack_capacity import load_scenario

    return load_scenario(SCENARIO).with_overrides({
        "duration": "10m", "workload.users.profile": PROFILE,
        "workload.requests[read].weight": 1.0 - write_weight, "workload.requests[write].weight": write_weight})


def record(write_weight: float, seed: int, directory: Path) -> Path:
    """Simulate with ``seed`` and write the run's Prometheus answers under ``directory``."""
    from memstack_capacity import simulate
    from memstack_capacity.outputs.prometheus_export import write_query_range

    return write_query_range(simulate(scenario(write_weight), seed=seed), directory)


def calibrate(prom_dirs: list[Path], write_weight: float, seed: int):
    """What ``calibrate --prometheus D1 [--prometheus D2 …]`` finds: {figure: Estimate}, and the CPU fit."""
    from memstack_capacity.calibration import estimates, measurements, prometheus

    truth = scenario(write_weight)
    mapping = measurements.load_mapping(prom_dirs[0] / "mapping.yaml")
    windows = measurements.combine([measurements.to_windows([prometheus.read(d, mapping)], mapping, truth)
                                    for d in prom_dirs])
    cal = estimates.calibrate(windows, truth, seed=seed)
    return {e.figure: e for e in cal.estimates}, cal.cpu_fit


def round_trip(case: str, seed: int) -> dict:
    """One seed of ``case`` (``one`` or ``two``): per class the estimate, interval, error and cover."""
    with tempfile.TemporaryDirectory() as tmp:
        if case == "one":
            dirs, weight, classes = [record(0.0, seed, Path(tmp) / "a")], 0.0, ["read"]
        elif case == "two":
            dirs = [record(w, 2 * seed + k, Path(tmp) / f"m{k}") for k, w in enumerate(MIXES)]
            weight, classes = MIXES[0], ["read", "write"]
        else:
            raise ValueError(f"case {case!r}: expected one or two")
        got, fit = calibrate(dirs, weight, seed)
    out = {"seed": seed, "block": fit.block, "rho": fit.rho}
    for c in classes:
        e = got[f"CPU per request: {c}"]
        out[c] = {"estimate": e.estimate, "low": e.low, "high": e.high, "identifiable": e.identifiable,
                  "error": e.estimate / TRUTH[c] - 1.0,
                  "covers": e.low is not None and e.low <= TRUTH[c] <= e.high}
    return out


def summarise(runs: list[dict]) -> dict:
    """Per class: coverage, the largest and the mean error, the sd of the error, the mean half-width."""
    out = {"seeds": len(runs), "blocks": sorted({r["block"] for r in runs}),
           "rho_mean": float(np.mean([r["rho"] for r in runs if r["rho"] is not None]))}
    for c in TRUTH:
        rows = [r[c] for r in runs if c in r]
        if not rows:
            continue
        err = np.array([r["error"] for r in rows])
        half = np.array([(r["high"] - r["low"]) / 2 / TRUTH[c] for r in rows])
        out[c] = {"coverage": float(np.mean([r["covers"] for r in rows])),
                  "covered": int(sum(r["covers"] for r in rows)),
                  "identified": int(sum(r["identifiable"] == "yes" for r in rows)),
                  "max_abs_error": float(np.abs(err).max()), "mean_error": float(err.mean()),
                  "sd_error": float(err.std(ddof=1)) if len(err) > 1 else 0.0,
                  "mean_half_width": float(half.mean())}
    return out


def backtest_round_trip(seed: int) -> dict:
    """tests/test_backtest.py's round trip with recording seed ``seed`` (replay seed ``seed + 100``):
    the calibrated scenario's replica figures against the recording."""
    import yaml

    from memstack_capacity import load_scenario, simulate
    from memstack_capacity.cli import main
    from memstack_capacity.outputs.prometheus_export import write_query_range

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = yaml.safe_load(SCENARIO.read_text())
        data["name"] = "small-hpa"
        data["deployments"]["api"].update(replicas=1, hpa=HPA)
        scenario_file = tmp / "scenario.yaml"
        scenario_file.write_text(yaml.safe_dump(data))
        truth = load_scenario(scenario_file).with_overrides({"duration": "10m",
                                                             "workload.users.profile": BACKTEST_PROFILE})
        prom = write_query_range(simulate(truth, seed=seed), tmp / "prom")
        common = ["--prometheus", str(prom), "--mapping", str(prom / "mapping.yaml")]
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["calibrate", "--scenario", str(scenario_file), *common, "--out", str(tmp / "cal"),
                         "--seed", "1"])
            if code:
                raise RuntimeError(f"calibrate failed for seed {seed}")
            code = main(["backtest", str(scenario_file), *common, "--out", str(tmp / "bt"), "--seed", str(seed + 100),
                         "--calibration", str(tmp / "cal" / "calibration.yaml")])
        if code:
            raise RuntimeError(f"backtest failed for seed {seed}")
        figures = json.loads((tmp / "bt" / "backtest.json").read_text())
    api = figures["replicas"]["api"]
    return {"seed": seed, "within_1_pod": api["within_1_pod"], "mae_pods": api["mae_pods"],
            "latency_mape": figures["latency"]["mean"]["mape"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="simulation seeds per case (default 200)")
    parser.add_argument("--first", type=int, default=1000, help="the first seed (default 1000)")
    parser.add_argument("--backtest", type=int, default=0, help="backtest recording seeds (default 0: none)")
    parser.add_argument("--json", action="store_true", help="print every run as JSON")
    args = parser.parse_args(argv)
    report: dict = {}
    for case in ("one", "two"):
        start = time.perf_counter()
        runs = [round_trip(case, args.first + s) for s in range(args.seeds)]
        report[case] = {"summary": summarise(runs), "seconds": time.perf_counter() - start, "runs": runs}
        print(f"{case}: {json.dumps(report[case]['summary'])} ({report[case]['seconds']:.0f} s)", file=sys.stderr)
    if args.backtest:
        runs = [backtest_round_trip(11 + s) for s in range(args.backtest)]
        within = np.array([r["within_1_pod"] for r in runs])
        report["backtest"] = {"runs": runs, "within_1_pod_min": float(within.min()),
                              "within_1_pod_median": float(np.median(within)),
                              "share_of_seeds_at_least_95": float(np.mean(within >= 0.95)),
                              "mae_pods_range": [float(min(r["mae_pods"] for r in runs)),
                                                 float(max(r["mae_pods"] for r in runs))]}
        print("backtest: " + json.dumps({k: v for k, v in report["backtest"].items() if k != "runs"}), file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
