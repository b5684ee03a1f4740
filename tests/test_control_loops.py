"""Independent control loops: how long after a load step the HPA decides, over the loops' phases.

The setting (hpa-spec.md §3, §9): 3 pods of 500m request, target 70 %, tolerance 0.1. The
controller's utilisation is a whole percentage, so a scale-up needs 78 % (78 / 70 > 1.1; 77
is within tolerance) = 0.39 cores a pod. Each pod burns 0.1 cores until the step at t0 and
0.9 cores after. metrics-server reports the rate between the two points it holds, so a window
W tells once at least 0.3625 W of it ((0.39 − 0.1) / 0.8) falls after the step, and the
controller decides at its first sync after that scrape.

Read at the scrape (aligned loops, and the loops' phases alone): the points are R = 15 s
apart, so the first scrape whose window holds at least T = 0.3625 R = 5.4375 s of the step
tells. The delay is that scrape's lag behind t0 plus the time to the next sync. With aligned
loops the second part is always 1 s, and the first is fixed by where t0 falls on the scrape
grid: the best case is T + 1 s. With independent phases the scrape lag is uniform on [T, T + R)
and the time to the next sync uniform on (0, S), independent: the delay spans [T, T + R + S]
with the triangular law of their sum (mean T + R/2 + S/2, variance (R² + S²)/12).

What a cluster does (independent loops, the engine's default): the points are cAdvisor's
housekeeping samples (components/cadvisor.py), up to one jittered interval (< 2I, I = 10 s)
old, and the window between the two a scrape holds lies in [I, R + 2I). The first sample
telling the step is at least 0.3625 I after it, so the delay is at least 3.625 s; and the first
scrape at or after t0 + 0.3625 (R + 2I) + 2I = t0 + 32.6875 s holds, for every pod, a sample at
least 12.6875 s after the step in a window under 35 s, so it tells: the delay is below
32.6875 + R + S = 62.6875 s. Within those bounds each seed's delay is checked against the
schedule rebuilt from the streams (each pod's stationary start and jitters) and metrics-server's
rule, independently of the simulator's code.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import simpy

from memstack_capacity.components.cadvisor import Housekeeping
from memstack_capacity.components.hpa.calc import ControllerConfig
from memstack_capacity.components.hpa.controller import HPAController
from memstack_capacity.components.hpa.phases import SYNC_OFFSET_S, loop_phases
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.engine.rng import stream
from memstack_capacity.scenario.load import parse_scenario
from tests.test_hpa_engine import autoscaled

R = S = 15.0
I = 10.0  # the kubelet's housekeeping interval
LOW, HIGH = 0.1, 0.9
TELLS = (0.39 - LOW) / (HIGH - LOW)  # the fraction of a window after the step that tells: 0.3625
THRESHOLD_LAG = TELLS * R  # 5.4375 s of the step in a 15 s window


class StepPod:
    """A running pod, up for an hour, that burns LOW cores until t0 and HIGH after."""

    def __init__(self, env, i: int, t0: float):
        self.env, self.t0, self.name = env, t0, f"api-{i}"
        self.phase, self.container_up, self.ready, self.deleting, self.restarts = "Running", True, True, False, 0
        self.scheduled_at = self.ready_changed_at = self.started_at = -3600.0
        self.cpu_request, self.mem_request, self.mem = 0.5, 512 * 2**20, 300 * 2**20

    def usage_now(self) -> float:
        t = self.env.now
        return LOW * t + (HIGH - LOW) * max(0.0, t - self.t0)


def decision_delay(cluster, seed: int, t0: float, housekeeping: bool = True) -> float:
    """Seconds from the step at t0 to the first sync that asks for more than 3 pods (with independent
    loops metrics-server reads cAdvisor's samples, as in the engine, unless `housekeeping` is False)."""
    env = simpy.Environment()
    pods = [StepPod(env, i, t0) for i in range(3)]
    kubelet = None
    if housekeeping and cluster.control_loops == "independent":
        kubelet = Housekeeping(env, cluster.housekeeping_interval, lambda name: stream(seed, name))
        for pod in pods:
            kubelet.container_up(pod)
    decided = []
    runtime = SimpleNamespace(pods=pods, spec_replicas=3, scale_to=lambda n: decided.append((env.now, n)))
    recorder = SimpleNamespace(scaling=[], pod_event=lambda *a: None)
    hpa_spec = parse_scenario(autoscaled(1.0)).deployments["api"].hpa
    phases = loop_phases(cluster, ["api"], stream(seed, "control-loops/phases"))
    server = MetricsServer(env, R, {"api": runtime}, first_scrape=phases.scrape_at, housekeeping=kubelet)
    controller = HPAController(env, "api", runtime, hpa_spec, server, ControllerConfig(sync_period_s=S), recorder,
                               first_sync=phases.sync_at["api"])
    env.process(server.run())
    env.process(controller.run())
    env.run(until=t0 + 90.0)
    assert decided and decided[0][1] > 3
    assert all(row["desired_replicas"] == 3 for row in recorder.scaling if row["t_s"] < t0)
    return decided[0][0] - t0


def cluster(**keys):
    data = autoscaled(1.0)
    data["cluster"] = {"control_loops": "aligned", **keys}
    return parse_scenario(data).cluster


def test_aligned_loops_decide_one_second_after_the_first_telling_scrape():
    """Aligned (scrapes at 0, 15, 30 …, syncs 1 s later): a step at 100 s is first told by the scrape at
    120 s (105 s holds only 5 s of it), decided at 121 s; a step at 114.5 s: 5.5 s by 120 s, so 121 s,
    6.5 s after the step (near the best case, T + 1 s)."""
    aligned = cluster()
    assert decision_delay(aligned, 1, 100.0) == pytest.approx(21.0)
    assert decision_delay(aligned, 1, 114.5) == pytest.approx(THRESHOLD_LAG + 0.0625 + SYNC_OFFSET_S)
    assert decision_delay(aligned, 1, 114.6) == pytest.approx(135.0 + SYNC_OFFSET_S - 114.6)  # 5.4 s: not yet


def test_the_loops_phases_alone_spread_the_delay_over_a_resolution_and_a_sync_period():
    """Over 200 seeds (the step at a fixed time, the loops' phases drawn, pods read at the scrape):
    every delay within [T, T + R + S], and their mean and standard deviation those of the triangular
    law (4 standard errors: the sd of the mean is 6.1 s / √200, of the sd about 6.1 s / √400)."""
    independent = cluster(control_loops="independent")
    delays = np.array([decision_delay(independent, seed, 100.0, housekeeping=False) for seed in range(200)])
    assert delays.min() >= THRESHOLD_LAG - 1e-9 and delays.max() <= THRESHOLD_LAG + R + S + 1e-9
    sd = np.sqrt((R * R + S * S) / 12.0)
    assert abs(delays.mean() - (THRESHOLD_LAG + R / 2 + S / 2)) < 4 * sd / np.sqrt(delays.size)
    assert abs(delays.std(ddof=1) - sd) < 4 * sd / np.sqrt(2 * delays.size)


def reference_delay(cluster, seed: int, t0: float) -> float:
    """The delay rebuilt by hand: each pod's cAdvisor samples from its stream (the stationary start
    I·√(1 + 3u)·v, then I(1 + u) — busy pods stay at the baseline), the sample each scrape sees, the
    rate between the last two distinct ones, the controller's whole-percent utilisation ≥ 78."""
    phases = loop_phases(cluster, ["api"], stream(seed, "control-loops/phases"))
    horizon = t0 + 90.0
    samples = []
    for i in range(3):
        rng = stream(seed, f"kubelet/housekeeping/api-{i}/0")
        length = I * np.sqrt(1.0 + 3.0 * rng.random())
        t, times = rng.random() * length, []
        while t < horizon:
            times.append(t)
            t += I * (1.0 + rng.random())
        samples.append(np.array(times))

    def used(t):
        return LOW * t + (HIGH - LOW) * max(0.0, t - t0)

    last, rate = [None] * 3, [None] * 3
    scrape = phases.scrape_at
    while True:
        for i in range(3):
            seen = samples[i][samples[i] <= scrape]
            if seen.size and (last[i] is None or seen[-1] > last[i]):
                if last[i] is not None:
                    rate[i] = (used(seen[-1]) - used(last[i])) / (seen[-1] - last[i])
                last[i] = seen[-1]
        if scrape > t0 and None not in rate and sum(int(r * 1000) for r in rate) * 100 // 1500 >= 78:
            break
        scrape += R
    sync = phases.sync_at["api"] + S * np.ceil((scrape - phases.sync_at["api"]) / S)
    return float(sync - t0)


def test_with_housekeeping_the_delay_is_what_the_samples_tell():
    """Independent loops as the engine runs them, 200 seeds: every delay within [0.3625 I, 62.6875 s)
    and equal to the hand-rebuilt one. Measured: mean 28.9 s, sd 6.7 s, 15.3 to 47.5 s — 8.5 s later
    on average than read at the scrape (20.4 s), close to the mean age of a sample (7I/9 = 7.8 s)."""
    independent = cluster(control_loops="independent")
    delays = np.array([decision_delay(independent, seed, 100.0) for seed in range(200)])
    assert delays.min() >= TELLS * I - 1e-9 and delays.max() < TELLS * (R + 2 * I) + 2 * I + R + S
    reference = np.array([reference_delay(independent, seed, 100.0) for seed in range(200)])
    assert delays == pytest.approx(reference, abs=1e-9)


def test_phases_are_the_seeds_and_can_be_set():
    independent = cluster(control_loops="independent")
    a, b = (loop_phases(independent, ["api", "worker"], stream(seed, "control-loops/phases")) for seed in (1, 1))
    assert a == b and 0.0 <= a.scrape_at < R and all(0.0 <= s < S for s in a.sync_at.values())
    assert a != loop_phases(independent, ["api", "worker"], stream(2, "control-loops/phases"))
    fixed = loop_phases(cluster(control_loops="independent", metrics_scrape_offset="4s", hpa_sync_offset="9s"), ["api"],
                        stream(1, "control-loops/phases"))
    assert (fixed.scrape_at, fixed.sync_at) == (4.0, {"api": 9.0})
    assert loop_phases(cluster(), ["api"]).sync_at == {"api": SYNC_OFFSET_S}
    with pytest.raises(Exception, match=r"cluster.hpa_sync_offset: must be shorter than hpa_sync_period \(15s\)"):
        cluster(hpa_sync_offset="15s")


@pytest.mark.parametrize("engine", ["des", "hybrid", "fluid"])
def test_every_engine_syncs_at_the_drawn_phases(engine):
    """The general engine, the batched data plane and the fluid model run the HPA at the same drawn
    phase: its decisions fall at sync_at + k × S."""
    data = autoscaled(240.0, duration=120.0)
    data["cluster"]["control_loops"] = "independent"
    scenario = parse_scenario(data)
    from memstack_capacity import simulate

    result = simulate(scenario, seed=4, engine=engine)
    phases = loop_phases(scenario.cluster, ["api"], stream(4, "control-loops/phases"))
    expected = phases.sync_at["api"] + S * np.arange(len(result.scaling))
    assert phases.sync_at["api"] != SYNC_OFFSET_S
    assert result.scaling["t_s"].to_numpy() == pytest.approx(expected, abs=1e-9)
