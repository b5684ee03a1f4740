"""The kubelet's usage window: metrics-server reads cAdvisor's last housekeeping sample.

References (components/cadvisor.py and components/metrics.py cite them at length):

* kubernetes ``pkg/kubelet/cadvisor/cadvisor_linux.go``: ``defaultHousekeepingInterval = 10s``,
  ``maxHousekeepingInterval = 15s``, ``allowDynamicHousekeeping = true``;
* google/cadvisor ``manager/container.go`` (v0.52): the first housekeeping when the container is
  added (timer armed at 0); ``nextHousekeepingInterval``: equal last two samples and the interval
  below the maximum → doubled (capped), else back to the baseline when it differs; then
  ``jitter(interval, 1.0)``, uniform on [interval, 2 × interval);
* kubelet ``/metrics/resource`` stamps each counter with cAdvisor's collection time, and asks
  cAdvisor for its cached samples (no on-demand housekeeping);
* kubernetes-sigs/metrics-server ``pkg/storage/pod.go``: ``last`` is the newest point; ``prev``
  the stored ``last`` when the new point is later, the stored ``prev`` when it is the same sample;
  a container whose point is 10 s to one resolution after its start gets ``prev`` = (start, 0); a
  pod is served only with both (``GetMetrics``); ``types.go: resourceUsage``: CPU =
  Δcounter / Δtimestamp, timestamp = last, window = last − prev.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import simpy

from memstack_capacity import simulate
from memstack_capacity.components.cadvisor import Housekeeping, residual
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import advance_to_horizon, start_model
from memstack_capacity.engine.rng import stream
from memstack_capacity.scenario.infrastructure import MetricsErrors
from memstack_capacity.scenario.load import parse_scenario
from tests.test_hpa_engine import autoscaled

I, MAX, R = 10.0, 15.0, 15.0  # the kubelet's housekeeping interval and maximum; metrics-server's resolution
MIB = 2**20


class LoadPod:
    """A running container whose cumulative CPU is ``usage(t)``; up since `started_at` (< 0: before the run)."""

    def __init__(self, env, usage, name: str = "api-0", started_at: float = -3600.0, mem: int = 300 * MIB):
        self.env, self.usage, self.name, self.started_at, self.mem = env, usage, name, started_at, mem
        self.phase, self.container_up, self.restarts = "Running", True, 0

    def usage_now(self) -> float:
        return self.usage(self.env.now)


class Scripted:
    """An rng whose ``random()`` returns the given values in turn (a hand-chosen housekeeping schedule)."""

    def __init__(self, *values: float):
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def step(t0: float, low: float, high: float):
    return lambda t: low * t + (high - low) * max(0.0, t - t0)


def rig(pods, stream_for, first_scrape: float, errors=None, rng=None):
    """Housekeeping and metrics-server over `pods`; the containers come up now."""
    env = pods[0].env
    hk = Housekeeping(env, I, stream_for)
    for pod in pods:
        hk.container_up(pod)
    server = MetricsServer(env, R, {"api": SimpleNamespace(pods=pods)}, errors, rng, first_scrape, housekeeping=hk)
    return hk, server


def scrape_at(env, server, pod, times):
    """Scrape at each of `times` (never at a housekeeping instant); what the HPA reads after each."""
    seen = []
    for t in times:
        env.run(until=t)
        server.scrape()
        seen.append(server.sample(pod))
    return seen


def test_hand_derived_timeline_through_a_step():
    """A pod up since before the run burns 0.1 cores until t = 30 and 0.9 after. Its housekeeping
    draws (u): the stationary start u = 0 (interval length I·√1 = 10 s) and 0.3 → the first sample at
    3 s; then jitters 0.6, 0.9, 0.3, 0.5 → samples at 3, 19 (+16), 38 (+19), 51 (+13), 66 (+15).
    Scrapes at 5, 20, 35, 50, 65:

    * 5 s: one point (3 s) → nothing served;
    * 20 s: points 3 and 19 → 0.1 cores over a 16 s window stamped 19 s (1 s stale);
    * 35 s: the kubelet still has the 19 s sample → the same values (16 s stale); a read at the
      scrape would have said (U(35) − U(20)) / 15 = 0.633;
    * 50 s: 19 and 38 → (U(38) − U(19)) / 19 = (3.8 + 6.4 − 1.9) / 19 = 8.3 / 19 (a 19 s window);
    * 65 s: 38 and 51 → 0.9 over 13 s.
    The working set is the last sample's.
    """
    env = simpy.Environment()
    pod = LoadPod(env, step(30.0, 0.1, 0.9))
    rngs = {"kubelet/housekeeping/api-0/0": Scripted(0.0, 0.3, 0.6, 0.9, 0.3, 0.5, 0.5)}
    hk, server = rig([pod], rngs.__getitem__, 5.0)
    seen = scrape_at(env, server, pod, [5.0, 20.0, 35.0, 50.0, 65.0])
    assert seen[0] == (None, 0.0, 0.0, None)
    expected = [(0.1, 16.0, 19.0), (0.1, 16.0, 19.0), (8.3 / 19.0, 19.0, 38.0), (0.9, 13.0, 51.0)]
    for (cpu, window, stamp, mem), (want_cpu, want_window, want_stamp) in zip(seen[1:], expected):
        assert (cpu, window, stamp) == pytest.approx((want_cpu, want_window, want_stamp), rel=1e-12)
        assert mem == 300 * MIB
    assert hk.samples == 4 and hk.stats(pod).t == pytest.approx(51.0)  # the next is at 66 s


def test_a_constant_load_is_reported_exactly_whatever_the_phase():
    """0.37 cores steadily, over 60 seeds (housekeeping and scrape phases drawn): every served rate is
    0.37; every window between two samples seen by scrapes lies in [10, 35) s (two samples are at
    least I apart; the later at most a scrape period after the earlier's scrape, which saw a sample
    less than 2I old); at every scrape the sample is less than 2I = 20 s old (the jittered interval
    of a busy container is below 2I); once served, a pod stays served (the same sample keeps its prev)."""
    for seed in range(60):
        env = simpy.Environment()
        pod = LoadPod(env, lambda t: 0.37 * t)
        phase = float(stream(seed, "test/phase").uniform(0.0, R))
        _, server = rig([pod], lambda name, seed=seed: stream(seed, name), phase)
        times = [phase + R * k for k in range(40)]
        seen = scrape_at(env, server, pod, times)
        served = [cpu is not None for cpu, *_ in seen]
        first = served.index(True)
        assert all(served[first:]) and first <= 3
        for t, (cpu, window, stamp, mem) in zip(times[first:], seen[first:]):
            assert cpu == pytest.approx(0.37, rel=1e-12) and mem == 300 * MIB
            assert 10.0 <= window < 35.0
            assert 0.0 <= t - stamp < 2 * I


class Recording(Housekeeping):
    """Housekeeping that keeps every sample's time."""

    def __init__(self, *args):
        super().__init__(*args)
        self.times: list = []

    def _sample(self, c) -> None:
        super()._sample(c)
        self.times.append(self.env.now)


def test_idle_containers_follow_the_dynamic_rule_and_busy_ones_go_back_to_the_baseline():
    """A container up at 100 s, idle (counter and working set unchanged) until 200 s, busy after. With
    u_k its stream's draws: the first gap is I(1 + u1) (one sample: no rule yet); then two equal
    samples → 15 s (doubled, capped at the maximum); equal again at the maximum → the rule's first
    branch fails and its second resets the baseline: 10 s, then 15 s … (cAdvisor's code as written);
    once the samples differ, 10 s."""
    env = simpy.Environment()
    env.run(until=100.0)
    pod = LoadPod(env, lambda t: 0.5 * max(0.0, t - 200.0), started_at=90.0)
    hk = Recording(env, I, lambda name: stream(7, name))
    hk.container_up(pod)
    env.run(until=400.0)
    u = stream(7, "kubelet/housekeeping/api-0/0")
    base, expected = I, [100.0]
    while len(expected) < len(hk.times):
        if len(expected) >= 2:
            equal = expected[-1] <= 200.0  # both of the last two samples before the load
            if equal and base < MAX:
                base = min(2 * base, MAX)
            elif base != I:
                base = I
        expected.append(expected[-1] + base * (1.0 + u.random()))
    assert hk.times == pytest.approx(expected, abs=1e-9)
    gaps = np.diff(hk.times)
    assert I <= gaps[0] < 2 * I and MAX <= gaps[1] < 2 * MAX and I <= gaps[2] < 2 * I
    assert all(I <= g < 2 * I for t, g in zip(hk.times[1:], gaps[1:]) if t > 200.0)


def test_a_new_container_is_served_at_the_first_scrape_after_its_second_sample():
    """A container up at 100 s samples at 100 s and at 100 + I(1 + u1). Hand case u1 = 0.2: 112 s.
    Scrapes at 98, 113: the 113 s scrape's point is 12 s after the start, within [10 s, 15 s) — the
    fresh-container rule gives it prev = (start, 0): served at 113 s over [100, 112]. Scrapes at 101,
    116: the 101 s scrape saw the 100 s sample, so the 116 s scrape has the same pair. Either way the
    first CPU comes at the first scrape at or after the second sample (so 10 to 35 s after the start;
    read at the scrape it would be the second scrape after the start, 15 to 30 s)."""
    for phase in (98.0, 101.0):
        rngs = {"kubelet/housekeeping/api-0/0": Scripted(0.2, 0.5, 0.5)}
        env, pod, server = pod_coming_up(rngs.__getitem__, phase)
        seen = scrape_at(env, server, pod, [phase, phase + R])
        assert seen[0][0] is None
        assert seen[1][:3] == pytest.approx((0.25, 12.0, 112.0), rel=1e-12)
    for seed in range(40):  # the law, with the drawn jitter
        phase = 100.0 + float(stream(seed, "test/phase").uniform(0.0, R))
        env, pod, server = pod_coming_up(lambda name, seed=seed: stream(seed, name), phase)
        second = 100.0 + I * (1.0 + stream(seed, "kubelet/housekeeping/api-0/0").random())
        times = [phase + R * k for k in range(4)]
        seen = scrape_at(env, server, pod, times)
        first = next(t for t, s in zip(times, seen) if s[0] is not None)
        assert first == min(t for t in times if t >= second)


def pod_coming_up(stream_for, first_scrape: float):
    """A container (started at 95 s) that comes up at 100 s, burning 0.25 cores; metrics-server scrapes it."""
    env = simpy.Environment()
    pod = LoadPod(env, lambda t: 0.25 * t, started_at=95.0)
    pod.container_up = False
    hk = Housekeeping(env, I, stream_for)
    server = MetricsServer(env, R, {"api": SimpleNamespace(pods=[pod])}, first_scrape=first_scrape, housekeeping=hk)

    def up():
        yield env.timeout(100.0)
        pod.container_up = True
        hk.container_up(pod)

    env.process(up())
    return env, pod, server


def test_a_restarted_container_starts_afresh():
    """The container restarts at 40 s (down) and is up again at 50 s with a new housekeeping: nothing
    is served until the first scrape after its second sample, and then only its own samples count."""
    env = simpy.Environment()
    pod = LoadPod(env, lambda t: 0.3 * t)
    _, server = rig([pod], lambda name: stream(3, name), 5.0)
    scrape_at(env, server, pod, [5.0, 20.0, 35.0])
    env.run(until=40.0)
    pod.container_up = False
    env.run(until=50.0)
    pod.restarts, pod.container_up, pod.started_at = 1, True, 45.0
    server.housekeeping.container_up(pod)
    second = 50.0 + I * (1.0 + stream(3, "kubelet/housekeeping/api-0/1").random())
    times = [50.0 + 0.5 + R * k for k in range(4)]
    seen = scrape_at(env, server, pod, times)
    for t, (cpu, window, stamp, _) in zip(times, seen):
        if t < second:
            assert cpu is None
        else:
            assert cpu == pytest.approx(0.3) and stamp - window >= 50.0


def test_missed_scrapes_drop_both_points():
    """With each pod's stats missing with probability 0.3: a pod absent from one scrape (missed, or
    no sample yet) is never served at the next — it holds one point at most; served values stay
    exact; the misses are binomial (4 standard errors)."""
    env = simpy.Environment()
    pods = [LoadPod(env, lambda t, c=0.2 + 0.01 * i: c * t, name=f"api-{i}") for i in range(20)]
    p, n = 0.3, 300
    _, server = rig(pods, lambda name: stream(11, name), 2.0, MetricsErrors(missing_probability=p),
                    np.random.default_rng(11))
    absent_before = {pod: True for pod in pods}
    served = 0
    for k in range(n):
        env.run(until=2.0 + R * k)
        server.scrape()
        for i, pod in enumerate(pods):
            cpu = server.sample(pod)[0]
            if absent_before[pod]:
                assert cpu is None
            if cpu is not None:
                served += 1
                assert cpu == pytest.approx(0.2 + 0.01 * i, rel=1e-12)
            absent_before[pod] = pod not in server.scrapes
    total = n * len(pods)
    assert abs(server.missed - p * total) < 4 * math.sqrt(p * (1 - p) * total)
    assert served > 0.3 * total


def test_the_stationary_start_is_the_forward_recurrence_time():
    """For intervals uniform on [I, 2I): mean 7I/9, P(R < I) = 2/3, support [0, 2I) (4 standard errors)."""
    rng = stream(5, "test/residual")
    draws = np.array([residual(rng, I) for _ in range(20000)])
    sd = math.sqrt(5 * I * I / 6 - (7 * I / 9) ** 2)  # E[R²] = E[X³] / (3 E[X]) = 5I²/6
    assert abs(draws.mean() - 7 * I / 9) < 4 * sd / math.sqrt(draws.size)
    below = (draws < I).mean()
    assert abs(below - 2 / 3) < 4 * math.sqrt(2 / 9 / draws.size)
    assert draws.min() >= 0.0 and draws.max() < 2 * I


def engine_model(loops: str, seed: int = 2):
    data = autoscaled(240.0, duration=90.0)
    data["cluster"]["control_loops"] = loops
    model = build(parse_scenario(data), seed)
    start_model(model)
    advance_to_horizon(model)
    return model


def test_in_the_engine_samples_are_housekeeping_instants_and_aligned_reads_at_the_scrape():
    """Independent loops: every point the HPA reads is stamped with its container's cAdvisor sample
    (never after the last scrape); aligned loops: no housekeeping, stamped with the scrape itself."""
    model = engine_model("independent")
    server, hk = model.metrics_server, model.metrics_server.housekeeping
    assert hk is not None and hk.samples > 0
    last_scrape = server.first_scrape + R * math.ceil((90.0 - server.first_scrape) / R - 1)
    stamps = []
    for pod in model.runtimes["api"].pods:
        cpu, window, stamp, _ = server.sample(pod)
        if cpu is not None:  # up to 2 × 15 s old (an idle new pod's longest interval); windows from I
            assert 0.0 <= last_scrape - stamp < 2 * MAX and 10.0 <= window < R + 2 * MAX
            assert stamp <= hk.stats(pod).t
            stamps.append(stamp)
    assert len(stamps) >= 3 and len(set(stamps)) == len(stamps)  # each container on its own cycle
    aligned = engine_model("aligned")
    assert aligned.metrics_server.housekeeping is None and aligned.runtimes["api"].containers_watch is None
    stamps = {aligned.metrics_server.sample(p)[2] for p in aligned.runtimes["api"].pods if p.container_up}
    assert stamps == {75.0}


def test_same_seed_same_run_and_the_phases_are_the_seeds():
    data = autoscaled(240.0, duration=240.0)
    data["cluster"]["control_loops"] = "independent"
    scenario = parse_scenario(data)
    a, b, c = simulate(scenario, seed=5), simulate(scenario, seed=5), simulate(scenario, seed=6)
    assert a.scaling.equals(b.scaling) and a.summary == b.summary
    assert not a.scaling["cpu_utilization_pct"].equals(c.scaling["cpu_utilization_pct"])


@pytest.mark.parametrize("value, ok", [("1s", True), ("60s", True), ("500ms", False), ("61s", False)])
def test_the_interval_is_a_cluster_key_with_a_range(value, ok):
    data = autoscaled(240.0)
    data["cluster"]["housekeeping_interval"] = value
    if ok:
        assert parse_scenario(data).cluster.housekeeping_interval == float(value.removesuffix("s"))
    else:
        with pytest.raises(Exception, match=r"cluster.housekeeping_interval: must be from 1s"):
            parse_scenario(data)
    assert parse_scenario(autoscaled(240.0)).cluster.housekeeping_interval == 10.0


def test_the_fluid_mode_says_it_reads_at_the_scrape():
    """The fluid model reads counters at the scrape (docs/fluid.md): its caveats say so with independent
    loops, and with aligned loops there is nothing to say."""
    data = autoscaled(240.0, duration=60.0)
    data["cluster"]["control_loops"] = "independent"
    caveats = simulate(parse_scenario(data), engine="fluid").record.flow.details["caveats"]
    assert any("housekeeping window" in c for c in caveats)
    caveats = simulate(parse_scenario(autoscaled(240.0, duration=60.0)), engine="fluid").record.flow.details["caveats"]
    assert not any("housekeeping" in c for c in caveats)
