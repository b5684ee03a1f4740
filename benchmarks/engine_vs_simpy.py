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
``--repeat`` runs, then the wall time of ``run scenarios/peak.yaml`` with its outputs.

    python benchmarks/engine_vs_simpy.py [--requests 200000] [--repeat 3] [--no-peak]
"""

from __future__ import annotations

import argparse
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

from memstack_capacity import simulate  # noqa: E402
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


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def compare(label, n, simpy_fn, engine_data, repeat):
    ratios, des_ratios, simpy_rates, engine_rates, des_rates = [], [], [], [], []
    for r in range(repeat):
        t_simpy, _ = timed(simpy_fn, r)
        t_engine, (_, count) = timed(engine_run, engine_data)
        t_des, (_, count_des) = timed(des_run, engine_data)
        simpy_rate = n / t_simpy
        simpy_rates.append(simpy_rate)
        engine_rates.append(count / t_engine)
        des_rates.append(count_des / t_des)
        ratios.append((count / t_engine) / simpy_rate)
        des_ratios.append((count_des / t_des) / simpy_rate)
    med = statistics.median
    print(
        f"{label:<28} simpy {med(simpy_rates):>10,.0f} req/s   engine (kernel) {med(engine_rates):>11,.0f} req/s"
        f" {med(ratios):5.1f}x   general engine {med(des_rates):>9,.0f} req/s {med(des_ratios):5.1f}x"
    )
    return med(ratios)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peak", action="store_true")
    args = parser.parse_args(argv)
    n = args.requests

    lam, mu, c = 900.0, 100.0, 10
    mmc_data = pod_scenario(lam, 1 / mu, processes=c, concurrency=1, duration=n / lam, warmup=0.0, sample_interval=60.0)
    ratio_mmc = compare("M/M/10 at rho=0.9", n, lambda s: simpy_mmc(n, lam, mu, c, s), mmc_data, args.repeat)

    lam_ps, mean_ps, k = 90.0, 0.01, 8
    n_ps = n // 4
    ps_data = pod_scenario(
        lam_ps, mean_ps, concurrency=k, cpu_limit=1.0, duration=n_ps / lam_ps, warmup=0.0, sample_interval=60.0
    )
    ratio_ps = compare("PS, 1 core, k=8, rho=0.9", n_ps, lambda s: simpy_ps(n_ps, lam_ps, mean_ps, k, s), ps_data, args.repeat)
    print(f"targets: M/M/c >= 4x (foundation), >= 10x (performance); PS >= 25x (performance)")
    print(f"measured: M/M/c {ratio_mmc:.1f}x, PS {ratio_ps:.1f}x")

    replications_speedup()
    week_fluid()
    if not args.no_peak:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "memstack_capacity", "run", str(ROOT / "scenarios" / "peak.yaml"), "--out", out],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"run scenarios/peak.yaml (outputs included): {time.perf_counter() - start:.1f} s wall")
    return 0


def replications_speedup(k: int = 4) -> None:
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


def week_fluid() -> None:
    """`--mode fluid` on scenarios/week.yaml (a week at up to 10 000 req/s); target: seconds."""
    from memstack_capacity import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "week.yaml")
    t, _ = timed(lambda: simulate(scenario, mode="fluid").summary)
    print(f"fluid mode, scenarios/week.yaml: {t:.1f} s wall")


if __name__ == "__main__":
    raise SystemExit(main())
