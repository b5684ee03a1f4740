"""Dotted-path overrides on raw data and on a Scenario, and the ``--set`` parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario
from memstack_capacity.scenario.overrides import (
    apply_overrides,
    parse_set_argument,
    parse_set_arguments,
    split_path,
)

DATA = Path(__file__).parent / "data"
RAW = {
    "duration": "10m",
    "workload": {"requests": [{"name": "search", "weight": 0.6}, {"name": "add_memory", "weight": 0.4}]},
    "deployments": {"api": {"replicas": 3, "hpa": {"minReplicas": 3, "maxReplicas": 20}}},
}


def test_split_path():
    assert split_path("workload.requests[0].weight") == ["workload", "requests", 0, "weight"]
    assert split_path("workload.requests.0.weight") == ["workload", "requests", 0, "weight"]
    assert split_path("workload.requests[search].weight") == ["workload", "requests", "search", "weight"]
    with pytest.raises(ValueError):
        split_path("a..b")


def test_nested_key_and_original_untouched():
    out = apply_overrides(RAW, {"deployments.api.hpa.maxReplicas": 30})
    assert out["deployments"]["api"]["hpa"]["maxReplicas"] == 30
    assert RAW["deployments"]["api"]["hpa"]["maxReplicas"] == 20


@pytest.mark.parametrize("path", ["workload.requests[1].weight", "workload.requests.1.weight",
                                  "workload.requests[add_memory].weight", "workload.requests.add_memory.weight"])
def test_list_by_index_and_by_name(path):
    out = apply_overrides(RAW, {path: 0.9})
    assert [r["weight"] for r in out["workload"]["requests"]] == [0.6, 0.9]


def test_missing_key_names_path_and_suggests():
    with pytest.raises(ScenarioError) as info:
        apply_overrides(RAW, {"deployments.api.hpa.maxReplica": 5}, source="s.yaml")
    (problem,) = info.value.problems
    assert problem.field == "--set deployments.api.hpa.maxReplica"
    assert "deployments.api.hpa has no key `maxReplica`" in problem.message
    assert "did you mean `maxReplicas`" in problem.message


def test_missing_name_and_index():
    with pytest.raises(ScenarioError) as info:
        apply_overrides(RAW, {"workload.requests[serch].weight": 1, "workload.requests[5].weight": 1})
    first, second = info.value.problems
    assert "no item named `serch`" in first.message and "did you mean `search`" in first.message
    assert "has 2 items; no index 5" in second.message


@pytest.mark.parametrize(("text", "value"), [
    ("deployments.api.hpa.maxReplicas=30", 30),
    ("duration=30m", "30m"),
    ("workload.requests[0].weight=0.25", 0.25),
    ("deployments.api.readinessProbe={periodSeconds: 5}", {"periodSeconds": 5}),
    ("datastores.postgres.pool.pool_pre_ping=true", True),
    ("description=", None),
    ("name=a=b", "a=b"),
])
def test_parse_set_argument_values_are_yaml(text, value):
    key, parsed = parse_set_argument(text)
    assert key == text.partition("=")[0]
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text", ["no-equals-sign", "=5", "a..b=1", "x=[1, 2"])
def test_parse_set_argument_rejects(text):
    with pytest.raises(ScenarioError):
        parse_set_argument(text)


def test_parse_set_arguments_later_wins():
    assert parse_set_arguments(["a=1", "b=2", "a=3"]) == {"b": 2, "a": 3}


def test_scenario_with_overrides_reaches_defaults():
    scenario = load_scenario(DATA / "minimal.yaml")
    changed = scenario.with_overrides({"cluster.nodes": 10, "deployments.api.replicas": 6, "duration": "30m",
                                       "workload.requests[ping].memory": "8Mi"})
    assert changed.cluster.nodes == 10 and changed.api.replicas == 6 and changed.duration == 1800.0
    assert changed.workload.requests[0].memory == 8 * 2**20
    assert scenario.api.replicas == 2  # frozen original unchanged


def test_with_overrides_revalidates():
    scenario = load_scenario(DATA / "minimal.yaml")
    with pytest.raises(ScenarioError) as info:
        scenario.with_overrides({"deployments.api.replicas": -1})
    assert [p.field for p in info.value.problems] == ["deployments.api.replicas"]


def test_load_scenario_with_overrides():
    scenario = load_scenario(DATA / "minimal.yaml", {"workload.arrivals.profile[0].rps": 75})
    assert scenario.workload.arrivals.profile[0].rps == 75.0


def test_json_round_trip_is_identical():
    raw = yaml.safe_load((DATA / "minimal.yaml").read_text())
    raw["workload"]["requests"][0]["steps"].append({"cpu": {"dist": "lognormal", "mean": "1.5ms", "cv": 0.3}})
    raw["deployments"]["api"]["resources"]["requests"]["cpu"] = 0.123456
    raw["deployments"]["api"]["memory_base"] = "350Mi"
    raw["datastores"] = {"pg": {"kind": "postgresql", "pool": {"pool_timeout": "2.5s"}}}
    raw["workload"]["requests"][0]["steps"].append({"call": "pg", "time": 0.0123456789})
    from memstack_capacity.scenario.load import parse_scenario

    scenario = parse_scenario(raw)
    dumped = scenario.model_dump(mode="json")
    assert dumped["deployments"]["api"]["memory_base"] == "350Mi"
    assert dumped["deployments"]["api"]["resources"]["limits"]["cpu"] == "1"
    assert parse_scenario(dumped) == scenario
    assert scenario.with_overrides({}) == scenario
