"""``recommend`` through the public names notebooks use: ``memstack_capacity.recommend`` and
``load_space`` (a space as a dict, one scenario alone, ``workers``), ``plotting.plot_pareto`` and
``reporting.manifests_diff`` / ``recommend_markdown``.

Reference: the same search through the internal entry point the CLI calls
(:func:`memstack_capacity.api.recommend.recommend` with a space file and one process), which
tests/test_recommend.py checks against an exhaustive sweep. The public path must give the same
document byte for byte: same points, same seeds (common random numbers), same answer. Scenario:
small.yaml at 250 users for 40 s with a 60 ms p99 target, API replicas 1–3: one pod saturates,
two miss (≈ 99 ms), three pass (≈ 58 ms), as in tests/test_recommend.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import memstack_capacity
from memstack_capacity import load_scenario, load_space, recommend
from memstack_capacity.api import recommend as internal
from memstack_capacity.api.recommend_space import SpaceError
from memstack_capacity.plotting import figure_png, plot_pareto
from memstack_capacity.reporting import manifests, manifests_diff, recommend_markdown

ROOT = Path(__file__).resolve().parents[1]
SETS = {"duration": "40s", "warmup": "5s", "workload.users.profile": [{"at": "0s", "users": 250}],
        "targets.latency_p99.max": "60ms"}
GRID = {"deployments.api.replicas": [1, 2, 3]}


@pytest.fixture(scope="module")
def base():
    return load_scenario(str(ROOT / "scenarios" / "small.yaml"), SETS)


@pytest.fixture(scope="module")
def found(base):
    return recommend(base, load_space(GRID, base), replications=2, workers=2)


def test_public_names():
    for name in ("recommend", "load_space", "Recommendation"):
        assert name in memstack_capacity.__all__ and hasattr(memstack_capacity, name)


def test_same_answer_as_the_internal_path(found, base, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"space": GRID}), encoding="utf-8")
    reference = internal.recommend([base], load_space(str(path), [base]), replications=2)
    ours, theirs = found.to_dict(), reference.to_dict()
    assert ours["space"]["source"] == "<python>"
    ours["space"]["source"] = theirs["space"]["source"]
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    assert found.best.overrides == {"deployments.api.replicas": 3}


def test_a_bad_dict_space_names_the_key(base):
    with pytest.raises(SpaceError) as err:
        load_space({"deployments.api.replicaz": [1, 2]}, base)
    assert "<python>" in err.value.render() and "space.deployments.api.replicaz" in err.value.render()


def test_pareto_and_markdown(found, base):
    png = figure_png(plot_pareto(found))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert figure_png(plot_pareto(found.to_dict()))[:8] == png[:8]
    text = recommend_markdown(found, base)
    assert text.startswith("# Recommendation") and "`deployments.api.replicas=3`" in text


def test_manifests_diff_is_the_change_to_apply(base):
    more = base.with_overrides({"deployments.api.replicas": 3})
    diff = manifests_diff(base, more)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff.startswith("diff -u -N input/api-deployment.yaml recommended/api-deployment.yaml")
    assert [c.replace(" ", "") for c in changed] == [f"-replicas:{base.api.replicas}", "+replicas:3"]
    assert manifests_diff(base, base) == "" and set(manifests(base)) >= {"api-deployment.yaml"}
