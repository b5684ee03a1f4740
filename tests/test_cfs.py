"""CFS bandwidth control (components/cfs.py) against closed forms worked out from the kernel's rules.

Reference: Linux Documentation/scheduler/sched-bwc.rst — a group gets ``quota`` of runtime
per ``period``, its threads run in parallel until it is spent, then the group is throttled
until the period ends; the runtime is refilled at each period boundary, to at most
``quota + burst``. The kubelet sets ``quota = limits.cpu × period`` (period 100 ms).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from factory import mean_and_se, measured, pod_scenario, run_seeds

from memstack_capacity.components.cfs import Bandwidth, CfsSettings
from memstack_capacity.scenario.load import parse_scenario
from memstack_capacity.theory import queueing as theory

P = 0.1


def lone_request_time(work: float, quota: float, period: float, to_boundary: float) -> float:
    """Response of a lone request of ``work`` CPU-seconds that starts ``to_boundary`` before a period
    boundary, in an idle container (its runtime full): it runs ``min(to_boundary, quota)`` in this
    period, then ``quota`` at the start of each later period."""
    first = min(to_boundary, quota)
    if work <= first:
        return work
    rest = work - first
    full = math.ceil(rest / quota) - 1  # whole quotas before the last, partial one
    return to_boundary + full * period + (rest - full * quota)


def test_lone_request_aligned():
    """130 ms of CPU under 500m from a period's start: 50 ms run, 50 wait, 50 run, 50 wait, 30 run = 230 ms."""
    bw = Bandwidth(limit=0.5, period=P, burst=0.0, phase=0.0, now=0.0)
    assert bw.due(0.0, 0.130, busy=1) == pytest.approx(0.230, abs=1e-12)
    assert lone_request_time(0.130, 0.05, P, P) == pytest.approx(0.230, abs=1e-12)
    served, throttled = bw.run(0.0, 0.230, busy=1)
    assert served == pytest.approx(0.130, abs=1e-12) and throttled == pytest.approx(0.100, abs=1e-12)
    assert (bw.nr_periods, bw.nr_throttled) == (3, 2)


def test_lone_request_random_phase():
    """The same request at a uniformly random point of the period: its mean response is the average
    of the closed form over the distance to the next boundary (integrated on a fine grid), and
    the simulated containers' phases are drawn from the run's stream. 4 000 draws: the
    tolerance is 4 standard errors of their mean."""
    work, limit = 0.130, 0.5
    grid = (np.arange(200_000) + 0.5) / 200_000 * P
    expected = float(np.mean([lone_request_time(work, limit * P, P, r) for r in grid]))
    settings = CfsSettings(enforce=True, period=P, burst=0.0, phase="random", rng=np.random.default_rng(7))
    times = []
    for i in range(4000):
        now = 10.0 + 0.37 * i
        bw = settings.bandwidth(limit, processes=1, now=now)
        times.append(bw.due(now, work, busy=1) - now)
    mean, se = float(np.mean(times)), float(np.std(times, ddof=1) / math.sqrt(len(times)))
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    assert 0.13 < expected < 0.23 and min(times) >= work - 1e-12 and max(times) <= 0.23 + 1e-12


def test_parallel_threads_spend_the_quota_together():
    """Four threads on four cores under a 1-core limit: the 100 ms quota is gone after 25 ms, then all
    wait 75 ms. 100 ms of CPU each takes four periods: 0.3 + 0.025 = 0.325 s (a fluid cap: 0.4 s)."""
    bw = Bandwidth(limit=1.0, period=P, burst=0.0, phase=0.0, now=0.0)
    assert bw.due(0.0, 0.100, busy=4) == pytest.approx(0.325, abs=1e-12)
    served, throttled = bw.run(0.0, 0.325, busy=4)
    assert served == pytest.approx(0.100, abs=1e-12) and throttled == pytest.approx(3 * 0.075, abs=1e-12)
    assert (bw.nr_periods, bw.nr_throttled) == (4, 3)


def test_threads_below_the_limit_are_never_throttled():
    """Two threads under a 3-core limit cannot spend the quota: full speed, nothing throttled, every period active."""
    bw = Bandwidth(limit=3.0, period=P, burst=0.0, phase=0.03, now=0.0)
    assert bw.due(0.0, 7.5, busy=2) == pytest.approx(7.5, abs=1e-9)
    served, throttled = bw.run(0.0, 7.5, busy=2)
    assert served == pytest.approx(7.5, abs=1e-9) and throttled == 0.0
    assert bw.nr_throttled == 0 and bw.nr_periods == 76  # (-0.07, 0.03], (0.03, 0.13], ..., (7.43, 7.53]


def test_burst_carries_unused_quota_into_the_next_period():
    """cpu.cfs_burst_us = the quota: after an idle second the runtime is quota + burst = 100 ms, so a lone
    130 ms request from a period's start runs 100 ms, then 30 ms of the next period's quota: 0.13 s."""
    bw = Bandwidth(limit=0.5, period=P, burst=0.05, phase=0.0, now=0.0)
    bw.idle(1.0)
    assert bw.due(1.0, 0.130, busy=1) == pytest.approx(1.130, abs=1e-9)
    plain = Bandwidth(limit=0.5, period=P, burst=0.0, phase=0.0, now=0.0)
    plain.idle(1.0)
    assert plain.due(1.0, 0.130, busy=1) == pytest.approx(1.230, abs=1e-9)


def _cfs_pod(lam: float, mean_s: float, *, period: float, duration: float = 900.0, **pod) -> dict:
    data = pod_scenario(lam, mean_s, duration=duration, **pod)
    data["cluster"] = {"cpu_cfs_quota_period": period}
    return data


def test_saturated_pod_serves_at_its_cpu_limit():
    """Overloaded (400 req/s of 10 ms jobs against a 1.5-core limit, 3 processes, a short backlog):
    each period the three processes run 50 ms each — the 150 ms quota — so 15 jobs end per
    100 ms period and the pod serves limit / D = 150 req/s, the fluid cap's throughput. With
    constant service times the answers in the last 120 s are 18 000, give or take the jobs in
    service at either edge (at most one per process)."""
    data = _cfs_pod(400.0, 0.01, period=P, duration=180.0, processes=3, concurrency=1, cpu_limit=1.5, backlog=20,
                    service_dist="constant")
    result = run_seeds(data, [1], engine="des")[0]
    req = result.requests
    done = req.t_arrival_s + req.latency_s
    ok = int(((req.status == "ok") & (done > 60.0) & (done <= 180.0)).sum())
    assert abs(ok - 150.0 * 120.0) <= 3, ok
    assert result.summary["deployments"]["api"]["throttled_periods_fraction"] == pytest.approx(1.0, abs=0.01)


def test_short_periods_approach_the_fluid_cap():
    """Two processes held to one core, with jobs 100× the shortest period the kubelet accepts (1 ms):
    CFS then differs from a fluid cap only within a period, and the pod is the birth–death chain
    that serves at μ whenever busy (theory.limited_processor_sharing, L = 1, p = 2).

    Mean response: the chain's, within 4 SE plus one period (a completion moves by less than one
    period). Throttling: while both processes run they spend the quota in half the period, so the
    pods are throttled ½·P(n ≥ 2) of the time, and every period with both busy is throttled:
    throttled periods / active periods = P(n ≥ 2) / P(n ≥ 1).
    """
    lam, mean_s = 7.0, 0.1
    results = run_seeds(_cfs_pod(lam, mean_s, period=0.001, duration=900.0, processes=2, concurrency=1,
                                 cpu_limit=1.0), range(1, 6), engine="des")  # fmt: skip
    chain = theory.limited_processor_sharing(lam, mean_s, max_in_service=1, servers=1.0, processes=2)
    mean, se = mean_and_se([measured(r).latency_s.mean() for r in results])
    assert se < 0.03 * chain.mean_response_s
    assert abs(mean - chain.mean_response_s) < 4 * se + 0.001, (mean, chain.mean_response_s, se)
    p = chain.probabilities
    deps = [r.summary["deployments"]["api"] for r in results]
    thr, thr_se = mean_and_se([d["throttled_fraction"] for d in deps])
    assert abs(thr - 0.5 * float(p[2:].sum())) < 4 * thr_se + 0.01, (thr, 0.5 * float(p[2:].sum()), thr_se)
    periods, periods_se = mean_and_se([d["throttled_periods_fraction"] for d in deps])
    expected_periods = float(p[2:].sum() / p[1:].sum())
    assert abs(periods - expected_periods) < 4 * periods_se + 0.02, (periods, expected_periods, periods_se)


def test_quota_not_enforced_is_no_limit():
    """``cpu_cfs_quota: false``: every figure equals the same scenario without a CPU limit, bit for bit."""
    limited = _cfs_pod(150.0, 0.01, period=P, duration=120.0, processes=2, concurrency=2, cpu_limit=0.5)
    limited["cluster"]["cpu_cfs_quota"] = False
    unlimited = pod_scenario(150.0, 0.01, duration=120.0, processes=2, concurrency=2)
    del unlimited["deployments"]["api"]["resources"]["limits"]["cpu"]
    a, b = (run_seeds(d, [3], engine="des")[0] for d in (limited, unlimited))
    assert a.requests.equals(b.requests)
    assert a.series.drop(columns=["api/cpu_utilization"]).equals(b.series.drop(columns=["api/cpu_utilization"]))


def test_period_outside_the_kubelets_range_is_refused():
    data = _cfs_pod(10.0, 0.01, period=2.0, processes=2, cpu_limit=1.0)
    with pytest.raises(Exception, match="1ms to 1s"):
        parse_scenario(data)


def test_cpu_throttling_high_fires_after_fifteen_minutes_of_throttled_periods():
    """kube-prometheus' CPUThrottlingHigh: throttled periods / periods over 5 min above 25 % for 15 min.

    90 % of a 500m limit on two processes throttles most busy periods from the start; the 5 min
    ratio holds above 25 % throughout, so the alert is pending from the first evaluation and
    fires 15 min later (the group evaluates every 30 s). The same load without a limit never
    throttles and never fires. The alert column is the ratio of the summed series counts."""
    from memstack_capacity.results.alert_series import alert_frame, alert_summary

    hot = _cfs_pod(45.0, 0.01, period=P, duration=1200.0, processes=2, concurrency=4, cpu_limit=0.5)
    result = run_seeds(hot, [1], engine="des")[0]
    frame, series = alert_frame(result), result.series
    window = series.index[(series.index > 600.0) & (series.index <= 900.0)]
    ratio = series.loc[window, "api/cfs_throttled_periods"].sum() / series.loc[window, "api/cfs_periods"].sum()
    assert frame.loc[900.0, "cpu_throttled_periods_5m_max"] == pytest.approx(ratio, rel=1e-9)
    assert (frame["cpu_throttled_periods_5m_max"] > 0.25).all()
    fired = [a for a in alert_summary(result) if a["alert"] == "CPUThrottlingHigh"]
    assert len(fired) == 1 and fired[0]["start_s"] - fired[0]["pending_since_s"] == pytest.approx(900.0)
    assert fired[0]["severity"] == "info" and fired[0]["end_s"] is None
    cool = _cfs_pod(45.0, 0.01, period=P, duration=1200.0, processes=2, concurrency=4, cpu_limit=2.0)
    calm = run_seeds(cool, [1], engine="des")[0]
    assert (calm.series["api/cfs_throttled_periods"] == 0).all()
    assert not [a for a in alert_summary(calm) if a["alert"] == "CPUThrottlingHigh"]


def test_burst_above_a_containers_quota_is_refused():
    """cpu.cfs_burst_us may not exceed cpu.cfs_quota_us (the kernel's tg_set_cfs_bandwidth): 60 ms of burst
    against a 500m limit's 50 ms quota names the field, the deployment and the quota."""
    data = _cfs_pod(10.0, 0.01, period=P, processes=2, cpu_limit=0.5)
    data["cluster"]["cpu_cfs_burst"] = "60ms"
    with pytest.raises(Exception, match=r"cluster.cpu_cfs_burst[\s\S]*deployment `api`[\s\S]*50ms"):
        parse_scenario(data)
    data["cluster"]["cpu_cfs_burst"] = "50ms"
    assert parse_scenario(data).cluster.cpu_cfs_burst == pytest.approx(0.05)
