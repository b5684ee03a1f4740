"""Engines as peers: one door (engine/run.py), one capability table (engine/capabilities.py).

The table decides which engine may run a scenario; these tests hold the door, the table,
the refusal messages and docs/performance.md to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from memstack_capacity.engine import capabilities
from memstack_capacity.engine.run import RUNNERS, run
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario, parse_scenario
from tests.factory import pod_scenario

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "src" / "memstack_capacity" / "engine"


def test_every_engine_has_a_runner_and_a_title():
    assert set(RUNNERS) == set(capabilities.ENGINES) == set(capabilities.TITLES)
    assert set(capabilities.AUTO_ORDER) <= set(capabilities.ENGINES) and capabilities.AUTO_ORDER[-1] == "des"


def test_the_general_engine_models_every_feature():
    assert all("des" in f.engines for f in capabilities.FEATURES)
    names = [f.name for f in capabilities.FEATURES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path, engine", [
    ("small.yaml", "fast"), ("peak.yaml", "fast"), ("flash-crowd.yaml", "fast"), ("node-loss.yaml", "fast"),
    ("day.yaml", "fast"), ("week.yaml", "des"),
])
def test_auto_picks_the_fastest_engine_for_each_bundled_scenario(path, engine):
    """What docs/performance.md says each bundled scenario runs on."""
    assert capabilities.choose(load_scenario(ROOT / "scenarios" / path)).engine == engine


def test_auto_takes_the_kernel_for_an_independent_pod_and_says_nothing():
    choice = capabilities.choose(parse_scenario(pod_scenario(50, 0.01, duration=20, warmup=0)))
    assert choice.engine == "kernel" and capabilities.fallback_note(choice) is None


def test_a_fallback_to_the_general_engine_is_said_with_its_reasons():
    data = pod_scenario(50, 0.01, duration=20, warmup=0)
    data["deployments"]["api"]["load_balancing"] = "least_request"
    choice = capabilities.choose(parse_scenario(data))
    assert choice.engine == "des" and set(choice.passed_over) == {"kernel", "hybrid", "fast"}
    note = capabilities.fallback_note(choice)
    assert note.startswith("note: running on the general engine") and "least_request" in note


def test_a_named_engine_that_cannot_run_the_scenario_is_refused_naming_the_feature():
    data = pod_scenario(50, 0.01, duration=20, warmup=0)
    data["deployments"]["api"]["resources"]["limits"]["cpu"] = 1
    data["events"] = [{"at": 5, "config_change": {"set": {"deployments.api.processes": 4}}}]
    scenario = parse_scenario(data)
    for engine in ("kernel", "hybrid", "fast", "fluid"):
        with pytest.raises(ScenarioError) as info:
            run(scenario, 1, engine=engine)
        problem = info.value.problems[0]
        assert problem.field == "engine" and problem.value == engine
        if engine == "fast":  # it runs config changes, but not the binding CPU limit this one brings in
            assert "a CPU limit shared by the processes" in problem.message
            assert "after the config_change at 5s" in problem.message
        else:
            assert "`config_change` events (events: config_change at 5s)" in problem.message
    assert run(scenario, 1, engine="des").engine == "des"


def test_an_unknown_engine_names_the_allowed_ones():
    with pytest.raises(ValueError, match="engine must be one of auto, des, fast, hybrid, kernel, fluid"):
        capabilities.choose(parse_scenario(pod_scenario(50, 0.01)), "turbo")


def test_the_record_says_which_engine_ran():
    scenario = parse_scenario(pod_scenario(50, 0.01, duration=20, warmup=0))
    assert [run(scenario, 1, engine=e).engine for e in ("auto", "des", "kernel", "hybrid", "fluid")] == \
        ["kernel", "des", "kernel", "hybrid", "fluid"]


def test_docs_show_the_capability_table_as_the_code_has_it():
    assert capabilities.markdown_table() in (ROOT / "docs" / "performance.md").read_text()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


#: Which engines each engine builds on (the general engine's model and its run's ending).
MAY_USE = {"des": set(), "kernel": {"des"}, "hybrid": {"des", "kernel"}, "fluid": set()}


@pytest.mark.parametrize("engine", sorted(MAY_USE))
def test_an_engine_uses_only_the_engines_it_builds_on(engine):
    """Engines are peers: none reaches into another except the general engine's model it builds on."""
    used = set()
    for path in (ENGINE_DIR / engine).glob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] == ["memstack_capacity", "engine"] and len(parts) > 2:
                used.add(parts[2])
    others = used & set(MAY_USE) - {engine}
    assert others <= MAY_USE[engine]
    assert "run" not in used, "an engine is reached through engine/run.py, never the other way"
