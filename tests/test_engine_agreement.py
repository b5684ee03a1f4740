"""Each fast engine against the reference (the general engine) on the same scenario: every
headline figure within 4 combined standard errors over 5 seeds, and the HPA's trajectory within
one replica on at least 95 % of the samples (tests/agreement.py says why these bounds).

With 5 seeds a mean's standard error is itself estimated from 5 values (t with 4 degrees of
freedom per engine); at 4 SE the chance that one figure of an exact twin fails is about 1 %
(Welch, about 8 degrees of freedom), so the ~20 figures of a scenario hold with ~80 %
probability for an equivalent engine — and, the seeds being fixed, the verdict is the same on
every run: a failure after a change means the change moved a figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.scenario.load import parse_scenario
from tests.agreement import TRAJECTORY_SHARE, disagreements, trajectory_share
from tests.factory import pod_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SEEDS = range(1, 6)


def _runs(scenario, engine: str):
    return [simulate(scenario, seed=s, engine=engine) for s in SEEDS]


def _day_ramp():
    """day.yaml's API tier, its HPA and probes, under a 10-minute ramp from 80 to 320 req/s."""
    return load_scenario(SCENARIOS / "day.yaml").with_overrides({
        "duration": "10m", "warmup": "1m", "sample_interval": "15s",
        "workload.arrivals.profile": [{"at": 0, "rps": 80}, {"at": 600, "rps": 320}],
    })


def test_the_batched_data_plane_agrees_with_the_general_engine_on_an_autoscaled_ramp():
    scenario = _day_ramp()
    des, hybrid = _runs(scenario, "des"), _runs(scenario, "hybrid")
    assert {r.record.engine for r in hybrid} == {"hybrid"}
    assert disagreements([r.summary for r in des], [r.summary for r in hybrid]) == []
    replicas = [r.series["api/replicas_desired"].to_numpy() for r in des]
    assert max(r.max() for r in replicas) > min(r.min() for r in replicas)  # the HPA did scale
    share = trajectory_share(replicas, [r.series["api/replicas_desired"].to_numpy() for r in hybrid])
    assert share >= TRAJECTORY_SHARE


@pytest.mark.parametrize("policy", ["round_robin", "random"])
def test_the_kernel_agrees_with_the_general_engine_on_several_pods(policy):
    """Several pods: the kernel draws service times pod after pod, so it is another sample."""
    scenario = parse_scenario(pod_scenario(60.0, 0.04, processes=2, concurrency=4, replicas=3,
                                           load_balancing=policy, duration=300, warmup=30))
    des, kernel = _runs(scenario, "des"), _runs(scenario, "kernel")
    assert disagreements([r.summary for r in des], [r.summary for r in kernel]) == []


def test_the_oracle_catches_a_different_model():
    """The check can fail: a 20 % slower CPU is caught."""
    data = pod_scenario(60.0, 0.04, processes=2, concurrency=4, replicas=3, duration=300, warmup=30)
    slower = pod_scenario(60.0, 0.048, processes=2, concurrency=4, replicas=3, duration=300, warmup=30)
    base = [simulate(parse_scenario(data), seed=s, engine="des").summary for s in SEEDS]
    other = [simulate(parse_scenario(slower), seed=s, engine="kernel").summary for s in SEEDS]
    assert any(d.startswith("latency_mean_s") for d in disagreements(base, other))
