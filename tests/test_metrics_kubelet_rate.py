"""The older resource-metrics pipeline: metrics-server copies the kubelet's CPU rate (``cluster.metrics_cpu_window``).

References (components/metrics.py and components/cadvisor.py cite them at length):

* kubernetes-sigs/metrics-server 0.3 ``pkg/sources/summary/summary.go``: ``decodeCPU`` copies the
  summary API's ``UsageNanoCores``; a pod whose container lacks it is dropped from the batch;
  the point is stamped with the sample's time (``getScrapeTime``);
* metrics-server 0.3 ``pkg/provider/sink/sinkprov.go``: each batch replaces the last (``Receive``),
  served with ``Window: kubernetesCadvisorWindow`` = 30 s;
* kubernetes ``pkg/kubelet/stats/helper.go``: ``UsageNanoCores = &cstat.CpuInst.Usage.Total`` of the
  latest cAdvisor sample; google/cadvisor ``info/v2/conversion.go``: ``InstCpuStats(last, cur)`` =
  Δcounter / Δtime between the two latest samples;
* metrics-server 0.5 and later (the default here) compute the rate themselves between the two
  points they hold (``pkg/storage/types.go: resourceUsage``), tests/test_housekeeping.py.

Every expected value below is worked out by hand from the pod's counter.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import simpy

from memstack_capacity import simulate
from memstack_capacity.components.cadvisor import Housekeeping
from memstack_capacity.components.metrics import KUBELET_RATE_WINDOW_S, MetricsServer
from memstack_capacity.engine import capabilities
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import parse_scenario
from tests.test_housekeeping import LoadPod, Scripted, scrape_at
from tests.test_hpa_engine import autoscaled

I = 10.0  # the kubelet's housekeeping interval
MIB = 2**20


def counter(*pieces):
    """A cumulative CPU counter from (start time, cores) pieces, the first starting at 0."""
    def usage(t: float) -> float:
        total = 0.0
        for (t0, cores), (t1, _) in zip(pieces, [*pieces[1:], (float("inf"), 0.0)]):
            total += cores * max(0.0, min(t, t1) - t0)
        return total
    return usage


def kubelet_rig(usage, resolution: float, first_scrape: float, cpu_window="housekeeping"):
    """One pod up since before the run; cAdvisor samples at 3, 19, 38, 51, 66, 81 s (draws below)."""
    env = simpy.Environment()
    pod = LoadPod(env, usage)
    # The stationary start u = 0 (a 10 s interval) cut at 0.3 → 3 s; then jitters 10 (1 + u).
    draws = {"kubelet/housekeeping/api-0/0": Scripted(0.0, 0.3, 0.6, 0.9, 0.3, 0.5, 0.5, 0.5)}
    hk = Housekeeping(env, I, draws.__getitem__)
    hk.container_up(pod)
    server = MetricsServer(env, resolution, {"api": SimpleNamespace(pods=[pod])}, first_scrape=first_scrape,
                           housekeeping=hk, cpu_window=cpu_window)
    return env, pod, server


def test_the_kubelet_rate_is_the_last_housekeeping_interval_not_the_scrape_period():
    """0.1 cores until 30 s, 0.9 after; samples at 3, 19, 38, 51, 66 s; metrics-server scrapes every
    60 s (metrics-server 0.3's default resolution) at 5 and 65 s.

    * 5 s: one sample → no ``CpuInst`` → the pod is not served (CPU and memory);
    * 65 s: the kubelet's rate between 38 and 51 s = 0.9 cores, stamped 51 s, window 30 s (fixed);
    * the 0.5 pipeline on the same samples: (U(51) − U(3)) / 48 = (3 + 18.9 − 0.3) / 48 = 0.45 over
      a 48 s window — the average since the previous scrape's point, where the old one tells the
      last 13 s before the latest sample.
    """
    usage = counter((0.0, 0.1), (30.0, 0.9))
    env, pod, server = kubelet_rig(usage, 60.0, 5.0)
    seen = scrape_at(env, server, pod, [5.0, 65.0])
    assert seen[0] == (None, 0.0, 0.0, None)
    assert seen[1] == pytest.approx((0.9, KUBELET_RATE_WINDOW_S, 51.0, 300 * MIB), rel=1e-12)
    assert KUBELET_RATE_WINDOW_S == 30.0

    env, pod, server = kubelet_rig(usage, 60.0, 5.0, cpu_window=None)
    seen = scrape_at(env, server, pod, [5.0, 65.0])
    assert seen[1][:3] == pytest.approx((21.6 / 48.0, 48.0, 51.0), rel=1e-12)


def test_between_scrapes_the_value_holds_and_a_stale_sample_is_served_again():
    """Load 0.4 cores until 45 s, 0.1 after; scrapes every 15 s at 20, 35, 50, 65, 80 s:

    * 20 s: samples 3 and 19 → 0.4, stamped 19;
    * 35 s: no new sample → the same 0.4, stamped 19 (16 s stale);
    * 50 s: 19 and 38 → 0.4 (the drop at 45 s is after the sample);
    * 65 s: 38 and 51 → (0.4 × 7 + 0.1 × 6) / 13 = 3.4 / 13;
    * 80 s: 51 and 66 → 0.1.
    """
    env, pod, server = kubelet_rig(counter((0.0, 0.4), (45.0, 0.1)), 15.0, 20.0)
    seen = scrape_at(env, server, pod, [20.0, 35.0, 50.0, 65.0, 80.0])
    expected = [(0.4, 19.0), (0.4, 19.0), (0.4, 38.0), (3.4 / 13.0, 51.0), (0.1, 66.0)]
    for (cpu, window, stamp, mem), (want, want_stamp) in zip(seen, expected):
        assert (cpu, stamp) == pytest.approx((want, want_stamp), rel=1e-12)
        assert window == KUBELET_RATE_WINDOW_S and mem == 300 * MIB


def test_a_new_container_needs_two_samples_of_its_own():
    """A container that comes up at 100 s (0.25 cores) samples at 100 and 100 + 10 (1 + 0.2) = 112 s:
    a scrape at 111 s finds one sample (not served, memory neither: the pod is out of the batch);
    at 113 s the rate over [100, 112] = 0.25."""
    env = simpy.Environment()
    pod = LoadPod(env, lambda t: 0.25 * t, started_at=95.0)
    pod.container_up = False
    hk = Housekeeping(env, I, {"kubelet/housekeeping/api-0/0": Scripted(0.2, 0.5)}.__getitem__)
    server = MetricsServer(env, 15.0, {"api": SimpleNamespace(pods=[pod])}, housekeeping=hk,
                           cpu_window="housekeeping")
    env.run(until=100.0)
    pod.container_up = True
    hk.container_up(pod)
    seen = scrape_at(env, server, pod, [111.0, 113.0])
    assert seen[0] == (None, 0.0, 0.0, None)
    assert seen[1][:3] == pytest.approx((0.25, KUBELET_RATE_WINDOW_S, 112.0), rel=1e-12)


def aligned_rig(usage, window: float, pods_extra=()):
    env = simpy.Environment()
    pod = LoadPod(env, usage)
    pods = [pod, *pods_extra]
    server = MetricsServer(env, 60.0, {"api": SimpleNamespace(pods=pods)}, cpu_window=window)
    env.process(server.run())
    return env, pod, server


def test_a_window_with_aligned_loops_is_the_rate_over_the_last_d_seconds():
    """Aligned scrapes at 0, 60, 120 s with a 10 s window; load 0.1 until 30 s, 0.9 until 55 s, 0.3 after:

    * 0 s: no counter read at −10 s → no CPU; memory from the first scrape (as aligned loops do);
    * 60 s: (U(60) − U(50)) / 10 = (0.9 × 5 + 0.3 × 5) / 10 = 0.6, window 10 s, stamped 60 s;
      the default (rate between scrapes) says (3 + 22.5 + 1.5) / 60 = 0.45;
    * 120 s: 0.3.
    """
    usage = counter((0.0, 0.1), (30.0, 0.9), (55.0, 0.3))
    env, pod, server = aligned_rig(usage, 10.0)
    seen = []
    for t in (0.0, 60.0, 120.0):
        env.run(until=t + 1.0)  # the scrape at t has run
        seen.append(server.sample(pod))
    assert seen[0] == (None, 0.0, 0.0, 300 * MIB)
    assert seen[1] == pytest.approx((0.6, 10.0, 60.0, 300 * MIB), rel=1e-12)
    assert seen[2] == pytest.approx((0.3, 10.0, 120.0, 300 * MIB), rel=1e-12)

    env, pod, server = aligned_rig(usage, None)
    env.run(until=61.0)
    assert server.sample(pod)[:3] == pytest.approx((0.45, 60.0, 60.0), rel=1e-12)


def test_a_window_longer_than_the_resolution_and_containers_that_were_not_there_at_its_start():
    """A 90 s window with scrapes every 60 s: the counter is read at 30 s (for 120 s) and 90 s (for
    180 s); load 0.2 cores, 0.25 from 100 s: at 120 s (U(120) − U(30)) / 90 = (25 − 6) / 90, at 180 s
    (40 − 18) / 90. A pod whose container came up at 100 s, after the read for 180 s, has no CPU at
    180 s (memory yes); nor has a pod whose container restarted between that read and the scrape."""
    env = simpy.Environment()
    steady = LoadPod(env, lambda t: 0.2 * t + 0.05 * max(0.0, t - 100.0))
    late = LoadPod(env, lambda t: 0.5 * t, name="api-1")
    late.container_up = False
    restarted = LoadPod(env, lambda t: 0.3 * t, name="api-2")
    server = MetricsServer(env, 60.0, {"api": SimpleNamespace(pods=[steady, late, restarted])}, cpu_window=90.0)
    env.process(server.run())
    env.run(until=100.0)
    late.container_up = True
    restarted.restarts = 1  # a new container between the read at 90 s and the scrape at 180 s
    env.run(until=121.0)
    assert server.sample(steady)[:3] == pytest.approx(((24.0 + 1.0 - 6.0) / 90.0, 90.0, 120.0), rel=1e-12)
    env.run(until=181.0)
    assert server.sample(steady)[:3] == pytest.approx((22.0 / 90.0, 90.0, 180.0), rel=1e-12)
    assert server.sample(late)[0] is None and server.sample(late)[3] == 300 * MIB
    assert server.sample(restarted)[0] is None


def scenario(**cluster):
    data = autoscaled(240.0, duration=120.0)
    data["cluster"].update(cluster)
    return data


def test_the_scenario_key_checks_its_loops_and_the_flow_model_refuses_it():
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(metrics_cpu_window="housekeeping"))  # aligned loops
    assert "cluster.metrics_cpu_window" in str(err.value) and "independent" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(control_loops="independent", metrics_cpu_window="10s"))
    assert "cluster.metrics_cpu_window" in str(err.value) and "aligned" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(metrics_cpu_window="often"))
    assert "`housekeeping`" in str(err.value) and "10s" in str(err.value)
    sc = parse_scenario(scenario(control_loops="independent", metrics_cpu_window="housekeeping"))
    with pytest.raises(ScenarioError) as err:
        capabilities.choose(sc, "fluid")
    assert "metrics_cpu_window: housekeeping" in str(err.value) and "before 0.5" in str(err.value)
    assert capabilities.choose(sc, "auto").engine == "fast"
    assert parse_scenario(scenario()).cluster.metrics_cpu_window is None  # the default: metrics-server ≥ 0.5


@pytest.mark.parametrize("engine", ["des", "hybrid"])
def test_the_engines_run_it_and_the_controller_reads_the_kubelet_rate(engine):
    """A busy API (240 req/s × 10 ms on 3 pods: 0.8 cores each, 160 % of a 500m request against a
    70 % target) scales up on the kubelet's rate in both engines, and the same seed gives the same
    decisions."""
    sc = parse_scenario(scenario(control_loops="independent", metrics_cpu_window="housekeeping"))
    first = simulate(sc, seed=3, engine=engine)
    again = simulate(sc, seed=3, engine=engine)
    assert first.scaling.equals(again.scaling)
    assert first.scaling["desired_replicas"].max() > 3
