"""Benchmark: the engine against an idiomatic simpy model of the same workload, in one process.

Workloads (the same arrival rate, service times and server count for both):
- M/M/c: c = 10 servers at ρ = 0.9 — the engine's pod with ``processes: 10, concurrency: 1``
  against simpy with a process per request and ``Resource(capacity=10)``;
- processor sharing: one core shared by up to 8 requests at ρ = 0.9 — the engine's pod with
  ``processes: 1, concurrency: 8`` against simpy with a process per request re-woken on every
  change of the number in service.

Both scenarios are eligible for the per-pod kernel (engine/kernel.py), which ``simulate`` uses
by default; the general engine (``engine="des"``) is timed too, so both figures are visible.
Prints requests simulated per second for each and the ratio (engine / simpy), the median of
``--repeat`` runs; the batched data plane against the general engine on an autoscaled API;
the wall time and peak memory of ``run scenarios/peak.yaml`` and ``run scenarios/day.yaml``
with their outputs; the replications' speed-up on every core; fluid mode on a week and
against the discrete-event engine. Ends with every performance target and its measured value.

    python benchmarks/engine_vs_simpy.py [--requests 200000] [--repeat 3] [--no-peak] [--no-day] [--recommend-200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memstack_capacity import load_scenario, simulate  # noqa: E402
from memstack_capacity.engine.run import run  # noqa: E402
from memstack_capacity.scenario.load import parse_scenario  # noqa: E402
from tests.factory import pod_scenario  # noqa: E402


def simpy_mmc(n_requests: int, lam: float, mu: float, c: int, seed: int) -> float:
    """Idiomatic simpy: a generator process per request, a Resource for the servers."""
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / lam, n_requests)
    service = rng.exponential(1 / mu, n_requests)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=c)
    latencies = []

    def request(i):
        t0 = env.now
        with servers.request() as req:
            yield req
            yield env.timeout(service[i])
        latencies.append(env.now - t0)

    def source():
        for i in range(n_requests):
            yield env.timeout(inter[i])
            env.process(request(i))

    env.process(source())
    env.run()
    return float(np.mean(latencies))


def simpy_ps(n_requests: int, lam: float, mean_s: float, k: int, seed: int) -> float:
    """Idiomatic simpy processor sharing: each request re-woken whenever the number in service changes."""
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / lam, n_requests)
    work = rng.exponential(mean_s, n_requests)
    env = simpy.Environment()
    slots = simpy.Resource(env, capacity=k)
    state = {"n": 0, "changed": env.event()}
    latencies = []

    def changed():
        event, state["changed"] = state["changed"], env.event()
        event.succeed()

    def request(i):
        t0 = env.now
        with slots.request() as req:
            yield req
            remaining = work[i]
            state["n"] += 1
            changed()
            while remaining > 1e-12:
                n = state["n"]
                started = env.now
                finish = env.timeout(remaining * n)
                result = yield finish | state["changed"]
                remaining -= (env.now - started) / n
                if finish in result:
                    break
            state["n"] -= 1
            changed()
        latencies.append(env.now - t0)

    def source():
        for i in range(n_requests):
            yield env.timeout(inter[i])
            env.process(request(i))

    env.process(source())
    env.run()
    return float(np.mean(latencies))


def engine_run(data: dict) -> tuple[float, int]:
    result = simulate(parse_scenario(data), seed=1)
    return float(result.requests.latency_s.mean()), len(result.requests)


def des_run(data: dict) -> tuple[float, int]:
    """The general engine (event per request), forced."""
    record = run(parse_scenario(data), seed=1, engine="des")
    log = record.recorder.requests
    return float(np.mean(np.asarray(log.t_end) - np.asarray(log.t_arrival))), len(log)


def fast_run(data: dict) -> tuple[float, int]:
    """The compiled data plane, forced."""
    record = run(parse_scenario(data), seed=1, engine="fast")
    log = record.recorder.requests
    return float(np.mean(np.asarray(log.t_end) - np.asarray(log.t_arrival))), len(log)


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def compare(label, n, simpy_fn, engine_data, repeat):
    """Requests per second of idiomatic simpy, the default engine (the kernel here), the compiled
    data plane and the general engine on one workload; returns (default, compiled) ratios to simpy."""
    ratios, fast_ratios, des_ratios, simpy_rates, engine_rates, fast_rates, des_rates = [], [], [], [], [], [], []
    fast_run(engine_data)  # the first call in a process loads (or compiles) the loop
    for r in range(repeat):
        t_simpy, _ = timed(simpy_fn, r)
        t_engine, (_, count) = timed(engine_run, engine_data)
        t_fast, (_, count_fast) = timed(fast_run, engine_data)
        t_des, (_, count_des) = timed(des_run, engine_data)
        simpy_rate = n / t_simpy
        simpy_rates.append(simpy_rate)
        engine_rates.append(count / t_engine)
        fast_rates.append(count_fast / t_fast)
        des_rates.append(count_des / t_des)
        ratios.append((count / t_engine) / simpy_rate)
        fast_ratios.append((count_fast / t_fast) / simpy_rate)
        des_ratios.append((count_des / t_des) / simpy_rate)
    med = statistics.median
    print(
        f"{label:<28} simpy {med(simpy_rates):>10,.0f} req/s   engine (kernel) {med(engine_rates):>11,.0f} req/s"
        f" {med(ratios):5.1f}x   compiled {med(fast_rates):>11,.0f} req/s {med(fast_ratios):5.1f}x"
        f"   general engine {med(des_rates):>9,.0f} req/s {med(des_ratios):5.1f}x"
    )
    return med(ratios), med(fast_ratios)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peak", action="store_true", help="skip run scenarios/peak.yaml (~1.5 min)")
    parser.add_argument("--no-day", action="store_true", help="skip run scenarios/day.yaml (~2.5 min)")
    parser.add_argument("--recommend-200", action="store_true",
                        help="also time recommend over scenarios/spaces/peak-200.yaml on 2 workers (~6-12 min)")
    args = parser.parse_args(argv)
    n = args.requests
    targets = []  # (target, measured, met)

    lam, mu, c = 900.0, 100.0, 10
    mmc_data = pod_scenario(lam, 1 / mu, processes=c, concurrency=1, duration=n / lam, warmup=0.0, sample_interval=60.0)
    mmc_data["cluster"] = {"node": {"cpu": 16, "memory": "64Gi"}}  # ten processes, no node out of cores: M/M/10
    ratio_mmc, fast_mmc = compare("M/M/10 at rho=0.9", n, lambda s: simpy_mmc(n, lam, mu, c, s), mmc_data, args.repeat)
    targets.append(("1. M/M/c engine >= 10x idiomatic simpy", f"{ratio_mmc:.1f}x", ratio_mmc >= 10))
    targets.append(("1. M/M/c compiled data plane >= 30x idiomatic simpy", f"{fast_mmc:.1f}x", fast_mmc >= 30))

    lam_ps, mean_ps, k = 90.0, 0.01, 8
    n_ps = n // 4
    ps_data = pod_scenario(
        lam_ps, mean_ps, concurrency=k, cpu_limit=1.0, duration=n_ps / lam_ps, warmup=0.0, sample_interval=60.0
    )
    ratio_ps, fast_ps = compare("PS, 1 core, k=8, rho=0.9", n_ps, lambda s: simpy_ps(n_ps, lam_ps, mean_ps, k, s), ps_data,
                                args.repeat)
    targets.append(("1. processor sharing >= 25x idiomatic simpy", f"{ratio_ps:.1f}x", ratio_ps >= 25))
    targets.append(("1. processor sharing, compiled data plane >= 50x idiomatic simpy", f"{fast_ps:.1f}x", fast_ps >= 50))
    ratio_compiled, compiled_rps = compiled_vs_general()
    targets.append(("   (small.yaml for an hour: compiled data plane / general engine)",
                    f"{ratio_compiled:.1f}x ({compiled_rps:,.0f} req/s)", None))
    ratio_hybrid = hybrid_vs_general()
    targets.append(("   (autoscaled API: batched data plane / general engine)", f"{ratio_hybrid:.1f}x", None))

    peak_out = None
    if not args.no_peak:
        peak_out = tempfile.mkdtemp(prefix="bench-peak-")
        wall, rss = cli_run("peak.yaml", peak_out)
        t_mm4, _ = timed(simpy_mmc, 400_000, 360.0, 100.0, 4, 1)
        print(f"run scenarios/peak.yaml (outputs included): {wall:.1f} s wall, {rss / 2**20:.0f} MiB peak RSS; "
              f"idiomatic simpy M/M/4, 400 000 requests: {t_mm4:.1f} s; ratio {wall / t_mm4:.1f}")
        targets.append(("2. run scenarios/peak.yaml < 10 s wall", f"{wall:.1f} s", wall < 10))
        targets.append(("2. the same / idiomatic simpy M/M/4 of 400 000 requests (aim: about 2.5)",
                        f"{wall / t_mm4:.1f}", None))
    if args.recommend_200:
        with tempfile.TemporaryDirectory(prefix="bench-recommend-") as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "memstack_capacity", "recommend", str(ROOT / "scenarios" / "peak.yaml"),
                            "--space", str(ROOT / "scenarios" / "spaces" / "peak-200.yaml"), "--out", str(Path(out) / "r"),
                            "--workers", "2"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - start
        t_mm4, _ = timed(simpy_mmc, 400_000, 360.0, 100.0, 4, 1)
        print(f"recommend peak.yaml over peak-200.yaml (2 workers): {wall / 60:.1f} min; idiomatic simpy M/M/4, "
              f"400 000 requests: {t_mm4:.1f} s; ratio {wall / t_mm4:.0f} (10 min where that is ~4 s: 150)")
        targets.append(("7. recommend over a 200-point space on peak.yaml < 10 min", f"{wall / 60:.1f} min", wall < 600))
        targets.append(("7. the same / idiomatic simpy M/M/4 of 400 000 requests (10 min at ~4 s: 150)",
                        f"{wall / t_mm4:.0f}", wall / t_mm4 < 150))
    if not args.no_day:
        with tempfile.TemporaryDirectory(prefix="bench-day-") as out:
            wall, rss = cli_run("day.yaml", out)
            rows = sum(1 for _ in gzip.open(Path(out) / "requests.csv.gz", "rt")) - 1
            summary = json.loads((Path(out) / "summary.json").read_text())
        print(f"run scenarios/day.yaml (outputs included): {wall:.1f} s wall, {rss / 2**20:.0f} MiB peak RSS, "
              f"{summary['requests']['arrived']:,} requests, {rows:,} rows in requests.csv.gz (every {summary['requests']['log_every']})")
        targets.append(("3. day.yaml < 180 s wall", f"{wall:.1f} s", wall < 180))
        targets.append(("3. day.yaml peak RSS < 2 GiB", f"{rss / 2**20:.0f} MiB", rss < 2**31))
    speedup = replications_speedup()
    targets.append(("4. replicate x4 on every core: speed-up (2 cores)", f"{speedup:.2f}x", None))
    t_week = week_fluid()
    targets.append(("5. fluid: a week at 10 000 req/s in seconds", f"{t_week:.1f} s", t_week < 30))
    for name, within, thr_err, lat_err in fluid_validation(peak_out):
        ok = within >= 0.8 and abs(thr_err) <= 0.10 and abs(lat_err) <= 0.10
        targets.append((f"5. fluid vs DES, {name}: replicas within one pod / throughput / mean latency",
                        f"{within:.1%} / {thr_err:+.1%} / {lat_err:+.1%}", ok))
    if peak_out:
        shutil.rmtree(peak_out, ignore_errors=True)

    print("\ntargets (docs/performance.md):")
    for name, measured, met in targets:
        verdict = "" if met is None else ("met" if met else "NOT MET")
        print(f"  {name:<88} {measured:>20}  {verdict}")
    return 0


def cli_run(scenario: str, out: str) -> tuple[float, int]:
    """``python -m memstack_capacity run scenarios/<scenario>`` in a child: wall seconds, peak RSS bytes."""
    code = (
        "import resource, sys\n"
        "from memstack_capacity.cli import main\n"
        f"rc = main(['run', {str(ROOT / 'scenarios' / scenario)!r}, '--out', {out!r}])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - start
    return wall, int(done.stderr.strip().splitlines()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def compiled_vs_general() -> tuple[float, float]:
    """small.yaml (closed users, PostgreSQL through per-process pools) for an hour: the general
    engine's time over the compiled data plane's, and the compiled plane's requests per second."""
    scenario = load_scenario(ROOT / "scenarios" / "small.yaml").with_overrides({"duration": "60m"})
    run(scenario, seed=1, engine="fast")  # loaded (or compiled) once
    t_des, _ = timed(lambda: run(scenario, seed=1, engine="des"))
    t_fast, rec = timed(lambda: run(scenario, seed=1, engine="fast"))
    print(f"small.yaml, 60 min: general engine {t_des:.2f} s, compiled data plane {t_fast:.2f} s "
          f"({rec.arrived:,} requests): {t_des / t_fast:.1f}x")
    return t_des / t_fast, rec.arrived / t_fast


def hybrid_vs_general() -> float:
    """An autoscaled API (HPA, probes, a ramp to 500 req/s): the batched data plane against the
    general engine on the same scenario and seed, in this process."""
    from tests.test_hybrid import _autoscaled

    scenario = parse_scenario(_autoscaled())
    t_des, _ = timed(lambda: run(scenario, seed=1, engine="des"))
    t_hyb, rec = timed(lambda: run(scenario, seed=1, engine="hybrid"))
    print(f"autoscaled API, 10 min (HPA, probes): general engine {t_des:.2f} s, batched data plane {t_hyb:.2f} s "
          f"-> {t_des / t_hyb:.1f}x ({rec.arrived:,} requests)")
    return t_des / t_hyb


def fluid_validation(peak_out: str | None):
    """Fluid against the discrete-event engine: (name, replicas within one pod, throughput and mean
    latency relative errors) for small.yaml, flash-crowd.yaml and, if it ran, peak.yaml."""
    import pandas as pd


    def compare_runs(name, des_summary, des_reps, flu):
        flu_req = flu.record.flow.requests
        des_req = des_summary["requests"]
        reps = flu.series["api/replicas_desired"]
        times = des_reps.index.intersection(reps.index)
        times = times[times > float(des_summary["warmup_s"])]
        within = float(((des_reps.loc[times] - reps.loc[times]).abs() <= 1).mean())
        thr = flu_req["throughput_rps"] / des_req["throughput_rps"] - 1
        lat = flu_req["latency_s"]["mean"] / des_req["latency_s"]["mean"] - 1
        print(f"fluid vs DES, {name}: replicas within one pod {within:.1%}, throughput {thr:+.1%}, mean latency {lat:+.1%}")
        return name, within, thr, lat

    out = []
    for file in ("small.yaml", "flash-crowd.yaml"):
        scenario = load_scenario(ROOT / "scenarios" / file)
        des = simulate(scenario)
        out.append(compare_runs(file, des.summary, des.series["api/replicas_desired"], simulate(scenario, engine="fluid")))
    if peak_out:
        summary = json.loads((Path(peak_out) / "summary.json").read_text())
        ts = pd.read_csv(Path(peak_out) / "timeseries.csv")
        reps = ts[(ts.component == "api") & (ts.metric == "replicas_desired")].set_index("t_s")["value"]
        flu = simulate(load_scenario(ROOT / "scenarios" / "peak.yaml"), engine="fluid")
        out.append(compare_runs("peak.yaml", summary, reps, flu))
    return out


def replications_speedup(k: int = 4) -> float:
    """`replicate` on one process against the process pool (one worker per core)."""
    import os

    from memstack_capacity import load_scenario, replicate

    # An hour of small.yaml (a few seconds a run): long enough that starting worker processes
    # (spawn, importing numpy/pandas/simpy) does not dominate.
    scenario = load_scenario(ROOT / "scenarios" / "small.yaml").with_overrides({"duration": "60m"})
    t_serial, _ = timed(lambda: replicate(scenario, k, workers=1))
    t_pool, _ = timed(lambda: replicate(scenario, k, workers=os.cpu_count()))
    print(f"replicate small.yaml (60 min) x{k}: {t_serial:.1f} s on one process, {t_pool:.1f} s on {os.cpu_count()} "
          f"-> speed-up {t_serial / t_pool:.2f}x")
    return t_serial / t_pool


def week_fluid() -> float:
    """`--mode fluid` on scenarios/week.yaml (a week at up to 10 000 req/s); target: seconds."""
    from memstack_capacity import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "week.yaml")
    t, _ = timed(lambda: simulate(scenario, engine="fluid").summary)
    print(f"fluid mode, scenarios/week.yaml: {t:.1f} s wall")
    return t


if __name__ == "__main__":
    raise SystemExit(main())
