"""The public helpers notebooks use: ``scale_model``, ``find_scenario`` and ``memstack_capacity.plotting``."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

import memstack_capacity
from memstack_capacity import find_scenario, load_scenario, scale_model, simulate
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peak():
    return load_scenario(ROOT / "scenarios" / "peak.yaml")


def test_scale_model_divides_the_load_and_the_pods(peak):
    model = scale_model(peak, 8, [("0s", 200), ("2m", 1200)], {"duration": "4m", "datastores.neo4j.cores": 4})
    assert [(p.at, p.users) for p in model.workload.users.profile] == [(0.0, 25), (120.0, 150)]
    api, full = model.deployments["api"], peak.deployments["api"]
    assert api.resources.requests.cpu == pytest.approx(full.resources.requests.cpu / 8)
    assert api.resources.limits.memory == int(full.resources.limits.memory / 8)
    assert api.concurrency == max(1, round(full.concurrency / 8))
    assert model.datastores["postgres"].cores == max(1, peak.datastores["postgres"].cores // 8)
    assert model.datastores["llm"].rate_limit == pytest.approx(peak.datastores["llm"].rate_limit / 8)
    assert model.datastores["neo4j"].cores == 4 and model.duration == 240.0  # overrides apply last
    assert scale_model(peak, 8).workload.users.profile[-1].users == round(peak.workload.users.profile[-1].users / 8)


def test_scale_model_of_an_open_workload_divides_the_rate():
    scenario = parse_scenario(pod_scenario(80.0, 0.01, replicas=2, duration=60, warmup=0))
    model = scale_model(scenario, 4)
    assert model.workload.arrivals.profile[0].rps == pytest.approx(20.0)
    assert scale_model(scenario, 1) == scenario
    with pytest.raises(ValueError):
        scale_model(scenario, 0)


def test_find_scenario_looks_upward(tmp_path):
    assert find_scenario("peak.yaml", ROOT / "notebooks") == ROOT / "scenarios" / "peak.yaml"
    with pytest.raises(FileNotFoundError):
        find_scenario("no-such.yaml", tmp_path)


def test_plotting_is_public_and_draws_a_scale_model(peak):
    from memstack_capacity import plotting

    assert {"show", "figure_png", "plot_replicas", "plot_runs", "plot_sweep", "sweep_table"} <= set(plotting.__all__)
    assert "scale_model" in memstack_capacity.__all__ and "find_scenario" in memstack_capacity.__all__
    result = simulate(scale_model(peak, 8, [("0s", 200), ("1m", 600)], {"duration": "1m", "warmup": "10s"}), seed=1)
    fig = plotting.plot_replicas(result)
    assert isinstance(fig, Figure) and plotting.figure_png(fig).startswith(b"\x89PNG")
    assert isinstance(plotting.plot_runs({"a": result}, ["api/pods_ready"]), Figure)
    plotting.show(None)  # a figure without data shows nothing
