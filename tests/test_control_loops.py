"""Independent control loops: how long after a load step the HPA decides, over the loops' phases.

The setting (hpa-spec.md §3, §9): 3 pods of 500m request, target 70 %, tolerance 0.1. The
controller's utilisation is a whole percentage, so a scale-up needs 78 % (78 / 70 > 1.1; 77
is within tolerance) = 0.39 cores a pod. Each pod burns 0.1 cores until the step at t0 and
0.9 cores after. metrics-server reports the rate between its last two scrapes (R = 15 s
apart), so the first scrape whose window holds at least T = (0.39 − 0.1) / 0.8 × R = 5.4375 s
of the step reports enough, and the controller decides at its first sync after that scrape.

The delay from the step to the decision is that scrape's lag behind t0 plus the time to the
next sync. With aligned loops the second part is always 1 s, and the first is fixed by where
t0 falls on the scrape grid: the best case is T + 1 s. With independent loops the scrape lag
is uniform on [T, T + R) and the time to the next sync uniform on (0, S), independent: the
delay spans [T, T + R + S] — about one resolution plus one sync period — with the triangular
law of their sum (mean T + R/2 + S/2, variance (R² + S²)/12), and its lower end is the aligned
best case less its fixed second.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import simpy

from memstack_capacity.components.hpa.calc import ControllerConfig
from memstack_capacity.components.hpa.controller import HPAController
from memstack_capacity.components.hpa.phases import SYNC_OFFSET_S, loop_phases
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.engine.rng import stream
from memstack_capacity.scenario.load import parse_scenario
from tests.test_hpa_engine import autoscaled

R = S = 15.0
LOW, HIGH = 0.1, 0.9
THRESHOLD_LAG = (0.39 - LOW) / (HIGH - LOW) * R  # 5.4375 s of the step in a 15 s window


class StepPod:
    """A running pod, up for an hour, that burns LOW cores until t0 and HIGH after."""

    def __init__(self, env, i: int, t0: float):
        self.env, self.t0, self.name = env, t0, f"api-{i}"
        self.phase, self.container_up, self.ready, self.deleting, self.restarts = "Running", True, True, False, 0
        self.scheduled_at = self.ready_changed_at = -3600.0
        self.cpu_request, self.mem_request, self.mem = 0.5, 512 * 2**20, 300 * 2**20

    def usage_now(self) -> float:
        t = self.env.now
        return LOW * t + (HIGH - LOW) * max(0.0, t - self.t0)


def decision_delay(cluster, seed: int, t0: float) -> float:
    """Seconds from the step at t0 to the first sync that asks for more than 3 pods."""
    env = simpy.Environment()
    pods = [StepPod(env, i, t0) for i in range(3)]
    decided = []
    runtime = SimpleNamespace(pods=pods, spec_replicas=3, scale_to=lambda n: decided.append((env.now, n)))
    recorder = SimpleNamespace(scaling=[], pod_event=lambda *a: None)
    hpa_spec = parse_scenario(autoscaled(1.0)).deployments["api"].hpa
    phases = loop_phases(cluster, ["api"], stream(seed, "control-loops/phases"))
    server = MetricsServer(env, R, {"api": runtime}, first_scrape=phases.scrape_at)
    controller = HPAController(env, "api", runtime, hpa_spec, server, ControllerConfig(sync_period_s=S), recorder,
                               first_sync=phases.sync_at["api"])
    env.process(server.run())
    env.process(controller.run())
    env.run(until=t0 + R + S + 30.0)
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


def test_independent_loops_spread_the_delay_over_a_resolution_and_a_sync_period():
    """Over 200 seeds (the step at a fixed time, the loops' phases drawn): every delay within
    [T, T + R + S], and their mean and standard deviation those of the triangular law (4 standard
    errors: the sd of the mean is 6.1 s / √200, of the sd about 6.1 s / √400)."""
    independent = cluster(control_loops="independent")
    delays = np.array([decision_delay(independent, seed, 100.0) for seed in range(200)])
    assert delays.min() >= THRESHOLD_LAG - 1e-9 and delays.max() <= THRESHOLD_LAG + R + S + 1e-9
    sd = np.sqrt((R * R + S * S) / 12.0)
    assert abs(delays.mean() - (THRESHOLD_LAG + R / 2 + S / 2)) < 4 * sd / np.sqrt(delays.size)
    assert abs(delays.std(ddof=1) - sd) < 4 * sd / np.sqrt(2 * delays.size)


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
