"""Datastore kinds live in one table (scenario/kinds.py): nothing else names them, and a kind
added to the table runs everywhere a built-in kind of its family runs."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Literal

import pytest

from memstack_capacity import simulate
from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.bottleneck import ceilings
from memstack_capacity.outputs.findings import findings
from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario
from memstack_capacity.scenario import kinds
from memstack_capacity.scenario.infrastructure import PostgresSpec, RedisSpec
from memstack_capacity.scenario.load import parse_scenario
from memstack_capacity.scenario.models import register_kind, unregister_kind

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memstack_capacity"
TABLE = PACKAGE / "scenario" / "kinds.py"


def _kind_strings(node: ast.Compare) -> set[str]:
    """The string constants a comparison tests against, inside tuples, lists and sets too."""
    out = set()
    for side in [node.left, *node.comparators]:
        items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
        out |= {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
    return out


def test_no_module_but_the_table_compares_kind_names():
    names = set(kinds.KINDS)
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == TABLE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and _kind_strings(node) & names:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "ask the kind (scenario/kinds.py) instead:\n" + "\n".join(offenders)


def test_every_kind_has_its_familys_fields():
    for kind in kinds.KINDS.values():
        assert kinds.kind_problems(kind) == [], kind


def test_a_kind_missing_its_familys_fields_is_refused():
    class Bare(PostgresSpec):
        kind: Literal["bare"]

    class BareKind(kinds.DatastoreKind):
        name, spec, family = "bare", Bare, kinds.CACHE

    with pytest.raises(ValueError, match="lacks `op_time`"):
        register_kind(BareKind())
    assert "bare" not in kinds.KINDS


# ---- a kind registered at run time, end to end --------------------------------------------------------
class MySqlSpec(PostgresSpec):
    kind: Literal["mysql"]


class ValkeySpec(RedisSpec):
    kind: Literal["valkey"]


class MySql(kinds.DatastoreKind):
    name, spec, family, queue_pool = "mysql", MySqlSpec, kinds.POOLED, True


class Valkey(kinds.DatastoreKind):
    name, spec, family = "valkey", ValkeySpec, kinds.CACHE


@pytest.fixture
def toy_kinds():
    for kind in (MySql(), Valkey()):
        register_kind(kind)
    yield
    for name in ("mysql", "valkey"):
        unregister_kind(name)


def _scenario(db: str, cache: str, events: bool = True) -> dict:
    """A minute of traffic through a cache, its backing database and an external API; with
    `events`, a slow database and a cache flush (the fluid mode models neither)."""
    return {
        "name": "kinds",
        "duration": "60s",
        "warmup": "10s",
        "workload": {
            "arrivals": {"profile": [{"at": 0, "rps": 40}]},
            "timeout": "30s",
            "requests": [{"name": "r", "weight": 1, "steps": [
                {"call": "cache", "key_space": 500, "key_alpha": 0.9,
                 "miss": [{"call": "db", "time": {"dist": "exponential", "mean": "4ms"}}]},
                {"call": "db", "time": {"dist": "exponential", "mean": "2ms"}},
                {"external": "llm"},
                {"cpu": {"dist": "exponential", "mean": "5ms"}},
            ]}],
        },
        "deployments": {"api": {
            "replicas": 2, "processes": 2, "concurrency": 20,
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
        }},
        "datastores": {
            "db": {"kind": db, "cores": 2, "max_connections": 30, "pool": {"pool_size": 3, "max_overflow": 2}},
            "cache": {"kind": cache, "maxmemory": "100Ki", "value_size": 1024, "maxmemory_policy": "allkeys-lru"},
            "llm": {"kind": "external", "latency": {"dist": "exponential", "mean": "50ms"}, "rate_limit": "3000/min"},
        },
        "events": [{"at": "40s", "cache_flush": "cache"},
                   {"at": "20s", "datastore_slowdown": {"datastore": "db", "factor": 3, "duration": "10s"}}]
        if events else [],
    }


def _outputs(result, db: str, cache: str) -> str:
    """Everything a run says, with the kinds' names put back to the built-in ones."""
    text = json.dumps(result.summary, default=str) + result.timeseries.to_csv() + result.requests.to_csv()
    return text.replace(f'"{db}"', '"postgresql"').replace(f'"{cache}"', '"redis"')


@pytest.mark.parametrize("mode", ["des", "fluid"])
def test_a_registered_kind_runs_as_the_built_in_kind_of_its_family(toy_kinds, mode):
    events = mode == "des"
    builtin = parse_scenario(_scenario("postgresql", "redis", events))
    toy = parse_scenario(_scenario("mysql", "valkey", events))
    assert type(toy.datastores["db"]) is MySqlSpec and type(toy.datastores["cache"]) is ValkeySpec
    a, b = simulate(builtin, seed=3, mode=mode), simulate(toy, seed=3, mode=mode)
    assert b.summary["datastores"]["db"]["kind"] == "mysql"
    for store in ("db/utilization", "cache/utilization", "llm/in_flight"):
        assert b.series[store].max() > 0, store
    assert _outputs(a, "postgresql", "redis") == _outputs(b, "mysql", "valkey")
    assert [f.text for f in findings(toy, b.summary, b.series)] == [f.text for f in findings(builtin, a.summary,
                                                                                             a.series)]
    assert ceilings(toy) == ceilings(builtin)
    assert inputs_from_scenario(toy) == inputs_from_scenario(builtin)


def test_an_unregistered_kind_is_a_scenario_error(toy_kinds):
    unregister_kind("mysql")
    try:
        with pytest.raises(ScenarioError, match="mysql"):
            parse_scenario(_scenario("mysql", "valkey"))
    finally:
        register_kind(MySql())
