"""CFS bandwidth control (components/cfs.py, the pod model) against published measurements of real kernels.

Two sources, each rebuilt as it was run (neither is a request stream a scenario can express:
fibtest is a busy loop, schbench wakes its workers in batches on a clock), so the bandwidth
and the pod are driven directly; docs/model.md, "Validation", sums up what agrees and why the
rest does not.

1. Indeed's fibtest (https://github.com/indeedeng/fibtest): one "fast" thread spins for 5 s
   and ``N − 1`` "slow" threads each run 100 loop iterations then ``usleep(10 ms)``, all in a
   cgroup with ``cpu.cfs_quota_us = 10000`` and the default 100 ms period (10 % of a core);
   ``runfibtest`` prints the cgroup's ``nr_throttled`` and ``cpuacct.usage`` deltas.
2. The burstable CFS bandwidth controller's cover letter (Huaixin Chang, LKML 2020-12-17,
   https://lkml.org/lkml/2020/12/17/56): schbench ``-m 1 -t 30 -r 60 -c 10000 -R 500`` under a
   700 ms quota per 100 ms period, without and with ``cpu.cfs_burst_us = 400000``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pod_cpu_memory import Task, make_pod

from memstack_capacity import load_scenario, simulate
from memstack_capacity.components.cfs import Bandwidth, CfsSettings

VALIDATION = Path(__file__).resolve().parents[1] / "scenarios" / "validation"

# --- fibtest -------------------------------------------------------------------------------

QUOTA, PERIOD, RUN_S = 0.010, 0.1, 5.0

#: (source, kernel, threads, nr_throttled, CPU usage in ms) as printed by ``runfibtest``.
#: "fixed" kernels carry de53fd7aedb1 ("sched/fair: Fix low cpu usage with high throttling by
#: removing expiration of cpu-local slices", 5.4, backported to 4.19/4.14 stable); on the others
#: each CPU that ran a slow thread let up to 1 ms of its slice expire per period. With one
#: thread only one CPU ever holds a slice and it is spent, so the bug cannot show: those rows
#: count whatever the kernel.
FIBTEST = [
    # D. Chiluk, LKML 2019-05-30, 8 cores, before the fix:
    # https://lore.kernel.org/lkml/CAC=E7cU9GetuKVQE1HxXsSuOKgyxezXUmSH2ZDHOrLio_YZi1g@mail.gmail.com/
    ("chiluk-lkml", "unfixed", 1, 51, 507),
    ("chiluk-lkml", "unfixed", 8, 52, 380),
    # README proposed in https://github.com/indeedeng/fibtest/pull/4 (2020-04), 64 CPUs, the same
    # machine on an affected and on a patched kernel; the 1-thread line is its baseline.
    ("fibtest-pr4", "any", 1, 51, 501),
    ("fibtest-pr4", "unfixed", 64, 58, 88),
    ("fibtest-pr4", "fixed", 64, 51, 493),
    # https://github.com/kubernetes/kubernetes/issues/97445 (comment 2022-12-08), 4.18.0-rc4.
    ("k8s-97445", "unfixed", 1, 52, 508),
    ("k8s-97445", "unfixed", 8, 52, 327),
]

#: The patched 64-CPU run used 493 ms where one thread used 501: the README itself puts this "less
#: than 2%" on the kernel's work keeping track of 64 threads, CPU time the model does not count.
#: Measured usage may fall that far below the model's range (the README's bound, not a fit).
KERNEL_OVERHEAD = 0.02

#: runfibtest reads the counters before and after the whole process (thread start-up and exit,
#: and a CLOCK_REALTIME_COARSE end time, so the run is 5 s ± a tick): one period either side.
PERIOD_SLACK = 1


def fibtest(slow: int, phase: float, *, work: float = 2e-6, nap: float = 0.010) -> tuple[float, int, int]:
    """One fast thread always runnable plus ``slow`` threads that each run ``work`` CPU-seconds
    then sleep ``nap``, for 5 s from an idle start, periods at ``phase``; returns the CPU used,
    nr_periods and nr_throttled. ``work`` (100 additions and the usleep call) is a guess; what the
    group uses does not depend on it while the fast thread is runnable. A slow thread woken while the group is throttled waits for
    the refill like the fast one (it is runnable; the quota is the group's)."""
    bw = Bandwidth(limit=QUOTA / PERIOD, period=PERIOD, burst=0.0, phase=phase, now=0.0)
    running = dict.fromkeys(range(slow), work)
    sleeping: dict[int, float] = {}
    t = usage = 0.0
    while t < RUN_S:
        busy = 1 + len(running)
        nxt = min([RUN_S, *sleeping.values()])
        if running:
            nxt = min(nxt, bw.due(t, min(running.values()), busy))
        served, _ = bw.run(t, nxt, busy)
        usage += served * busy
        for i in list(running):
            running[i] -= served
            if running[i] <= 1e-12:
                del running[i]
                sleeping[i] = nxt + nap
        for i in [i for i, wake in sleeping.items() if wake <= nxt]:
            del sleeping[i]
            running[i] = work
        t = nxt
    return usage, bw.nr_periods, bw.nr_throttled


PHASES = [0.0, 0.0002, 0.0371, 0.05, 0.0999]


@pytest.mark.parametrize("threads", [1, 8, 64])
def test_fibtest_uses_the_quota_of_every_period_whatever_the_thread_count(threads):
    """The model's claim: a group with a thread always runnable uses its whole quota in every period
    it sees and is throttled in each; the slow threads change who gets the CPU, not how much.
    One thread, exact: the run's first and last partial periods give ``min(quota, length)``, the
    49 or 50 whole ones between 10 ms each — 500 to 510 ms over the phases of the period timer.
    With slow threads the edge periods can only fill sooner, so the range holds for every phase,
    with 50 or 51 periods throttled."""
    for phase in PHASES:
        usage, periods, throttled = fibtest(threads - 1, phase)
        if threads == 1:
            edges = min(QUOTA, phase) + min(QUOTA, PERIOD - phase) if phase > 0 else QUOTA
            assert usage == pytest.approx(49 * QUOTA + edges, abs=1e-12), phase
        assert 0.500 - 1e-9 <= usage <= 0.510 + 1e-9, (threads, phase, usage)
        assert throttled in (50, 51) and periods in (50, 51), (threads, phase, throttled, periods)


@pytest.mark.parametrize("row", [r for r in FIBTEST if r[1] != "unfixed" or r[2] == 1], ids=lambda r: f"{r[0]}-{r[2]}t")
def test_fibtest_measurements_on_kernels_without_the_slice_expiry_bug(row):
    """Measured runs the model describes: CPU usage within [500, 510] ms (the model's range over all
    phases) less the named kernel overhead, nr_throttled within one period of 50–51."""
    _, _, threads, nr_throttled, usage_ms = row
    lo = 500.0 * (1.0 - KERNEL_OVERHEAD)
    assert lo <= usage_ms <= 510.0, row
    assert 50 - PERIOD_SLACK <= nr_throttled <= 51 + PERIOD_SLACK, row


@pytest.mark.parametrize("row", [r for r in FIBTEST if r[1] == "unfixed" and r[2] > 1], ids=lambda r: f"{r[0]}-{r[2]}t")
def test_fibtest_on_unfixed_kernels_is_the_bug_the_model_leaves_out(row):
    """Before de53fd7aedb1 each CPU that ran a slow thread held a slice whose unused part expired
    at the period's end (about 1 ms per CPU after the slack timer's return), so with many
    threads the group was throttled with its quota unspent: 380, 327 and 88 ms where the model
    (and the fixed kernel: 493 ms on 64 CPUs) give 500–510. These rows are outside the model's
    range by more than the kernel overhead, which is why they are not used to check it."""
    _, _, threads, nr_throttled, usage_ms = row
    assert usage_ms < 500.0 * (1.0 - KERNEL_OVERHEAD), row
    assert nr_throttled >= 50, row  # throttled as often as the quota allows, or more


# --- schbench under a burstable quota ------------------------------------------------------

#: schbench as of the cover letter (masoncl/schbench abe4f96, 2020-10-23), ``-R 500 -t 30``: the
#: rps thread wakes ``30 × 2 / 3 = 20`` workers per batch, ``ceil(500 / 20) = 25`` batches a
#: second, sleeping ``usleep(40 000 µs)`` between them; each worker spins 10 ms (``-c 10000``)
#: per request and records (reply − request post) − 10 ms. 20 × 10 ms every 40 ms is the
#: letter's "200ms CPU time every 40ms", 500 % on average.
WORKERS, BATCH, SPIN = 30, 20, 0.010
LIMIT, BURST = 7.0, 0.4  # cpu.cfs_quota_us 700000 / period 100000; cpu.cfs_burst_us 400000
RPS_WITH_BURST, RPS_WITHOUT = 498.36, 498.31
#: usleep overshoots, so a batch comes every 40 ms plus a little. Calibrated on the run WITH
#: burst only (rps 498.36 → a batch every 20 / 498.36 s = 40.13 ms) and checked on the run
#: without.
INTERVAL = BATCH / RPS_WITH_BURST
#: One batch of 20 at either edge of a 60 s run of 29 900 requests: 0.07 % of the rate.
EDGE = BATCH / (60.0 * RPS_WITH_BURST)


def schbench(burst: float, *, seconds: float = 60.0, limit: float = LIMIT):
    """The pod as schbench's worker group: 30 one-thread processes, batches of 20 requests of
    10 ms CPU every ``INTERVAL``; returns each request's latency less its 10 ms, and the pod."""
    cfs = CfsSettings(enforce=True, period=0.1, burst=burst, phase="container_start", rng=None)
    clock, runtime, pod = make_pod(processes=WORKERS, concurrency=1, cpu_limit=limit, cfs=cfs)
    tasks = []
    for k in range(1, int(seconds / INTERVAL) + 1):
        clock.run(until=k * INTERVAL)
        for i in range(BATCH):
            tasks.append(Task(f"{k}.{i}", k * INTERVAL, SPIN))
            assert pod.submit(tasks[-1])
    clock.run(until=seconds + 1.0)
    return np.array([runtime.done[t.name] - t.t0 - SPIN for t in tasks]), pod


@pytest.fixture(scope="module")
def schbench_runs():
    return {burst: schbench(burst) for burst in (0.0, BURST)}


def test_schbench_with_burst_is_never_throttled(schbench_runs):
    """Published with burst: p99 12 µs, p99.9 19 µs, max 406 µs — scheduler wake-up latency, and no
    request ever waited out a throttle. The model: at most 3 batches (600 ms) fall in a 100 ms
    period, under the 700 ms quota, so nothing is throttled and every request takes its 10 ms;
    the model has no wake-up latency, so its p99 is 0 against 12 µs."""
    extra, pod = schbench_runs[BURST]
    assert pod.throttled_s == 0.0 and pod.cfs_counts()[1] == 0
    assert np.percentile(extra, 99) == pytest.approx(0.0, abs=1e-9)
    assert extra.max() < 406e-6


def test_schbench_throughput_and_cpu(schbench_runs):
    """rps: the batch interval was calibrated on the run with burst; without burst the model,
    unthrottled too, predicts the same rate, measured 498.31 against 498.36 — within a batch at
    the edges of the run. CPU: 20 × 10 ms per 40.13 ms = 4.98 cores, the letter's "around 500%"."""
    for burst, measured in ((0.0, RPS_WITHOUT), (BURST, RPS_WITH_BURST)):
        extra, pod = schbench_runs[burst]
        assert len(extra) / 60.0 == pytest.approx(measured, rel=EDGE), burst
        assert pod.usage_now() / 60.0 == pytest.approx(5.0, rel=0.01)


def test_schbench_without_burst_the_kernel_throttles_where_the_model_does_not(schbench_runs):
    """Published without burst: p95 10 µs but p99 933 µs, p99.9 3 ms, max 20 ms — at least 1 % of
    the requests waited about a millisecond or more. The model finds no throttling at all: 600 ms
    of demand per period at most, 700 ms of quota. The gap is the per-CPU slices the model
    leaves out: each of the 20 CPUs running a worker takes runtime from the pool 5 ms at a time
    (sched_cfs_bandwidth_slice_us), so up to 20 × 5 = 100 ms of the quota can sit unspent in
    other CPUs' slices while one CPU finds the pool empty and throttles — a quota of 600 ms in
    effect, the batches' peak. What the model does claim, and burst confirms: the same pod
    throttles once its quota is below the peak (here 5.5 cores), and a 400 ms burst removes it."""
    extra, pod = schbench_runs[0.0]
    assert pod.throttled_s == 0.0 and np.percentile(extra, 99) == pytest.approx(0.0, abs=1e-9)
    measured_p99 = 933e-6
    assert measured_p99 > 50 * 12e-6  # the published gap: p99 without burst over p99 with burst
    tight, tight_pod = schbench(0.0, seconds=10.0, limit=5.5)
    assert tight_pod.cfs_counts()[1] > 0 and np.percentile(tight, 99) > 0.005
    eased, eased_pod = schbench(BURST, seconds=10.0, limit=5.5)
    assert eased_pod.throttled_s == 0.0 and eased.max() == pytest.approx(0.0, abs=1e-9)


def test_the_schbench_scenario_is_the_same_configuration():
    """scenarios/validation/schbench-cfs-burst.yaml expresses schbench with 20 closed users that join
    together and think 30.13 ms (so batches of 20 every 40.13 ms while nothing is throttled): the
    whole simulation gives what the pod alone gave — nothing throttled, every request 10 ms, the
    calibrated rate within a batch at the run's edges — and without the burst the same answers,
    bit for bit: in the model the burst has nothing to carry here."""
    scenario = load_scenario(VALIDATION / "schbench-cfs-burst.yaml")
    assert scenario.cluster.cpu_cfs_burst == BURST
    runs = [scenario.with_overrides({"cluster.cpu_cfs_burst": burst}) for burst in ("400ms", "0s")]
    results = [simulate(run, seed=1, engine="des") for run in runs]
    for result in results:
        dep = result.summary["deployments"]["api"]
        assert dep["throttled_s"] == 0.0 and dep["throttled_periods_fraction"] == 0.0
        req = result.requests
        assert (req.status == "ok").all() and np.allclose(req.latency_s, SPIN, atol=1e-9)
        window = (req.t_arrival_s >= 5.0) & (req.t_arrival_s < 25.0)  # whole batches, well inside the run
        assert int(window.sum()) / 20.0 == pytest.approx(RPS_WITH_BURST, rel=BATCH / (20.0 * RPS_WITH_BURST))
    assert results[0].requests.equals(results[1].requests)
