"""Bad scenario input: every problem on one line, with the file, the dotted field and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario, parse_scenario, scenario_problems

DATA = Path(__file__).parent / "data"


def _minimal() -> dict:
    return yaml.safe_load((DATA / "minimal.yaml").read_text())


def _problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [p.render(info.value.source) for p in info.value.problems]


def test_minimal_is_valid():
    scenario = load_scenario(DATA / "minimal.yaml")
    assert scenario.name == "minimal"
    assert scenario.api.replicas == 2


# (fixture, the one expected line's field, phrases the message must contain)
FILE_CASES = [
    ("does-not-exist.yaml", "(top level)", ["no such file"]),
    ("bad_yaml.yaml", "(top level)", ["not valid YAML", "line 5, column 12", "starts at line 4"]),
    ("empty.yaml", "(top level)", ["YAML mapping", "the file is empty"]),
    ("list.yaml", "(top level)", ["YAML mapping", "the file is a YAML list"]),
    (".", "(top level)", ["is a directory"]),
    ("bad_unknown_key.yaml", "duraton",
     ["unknown key", "allowed keys here: name, description, seed, duration", "did you mean `duration`?"]),
    ("bad_negative_duration.yaml", "duration", ["must not be negative", "(got '-5m')"]),
    ("bad_zero_weights.yaml", "workload.requests", ["weights must sum to more than zero", "[0.0, 0.0]"]),
    ("bad_hpa_bounds.yaml", "deployments.api.hpa", ["maxReplicas (3)", "minReplicas (5)"]),
]


@pytest.mark.parametrize(("name", "field", "phrases"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files(name, field, phrases):
    path = DATA / name
    lines = _problems(path)
    matching = [line for line in lines if line.startswith(f"{path}: {field}: ")]
    assert matching, lines
    for phrase in phrases:
        assert any(phrase in line for line in matching), (phrase, matching)
    assert all("\n" not in line for line in lines)


def test_two_problems_in_one_file_are_reported_together():
    lines = _problems(DATA / "bad_two_problems.yaml")
    path = DATA / "bad_two_problems.yaml"
    assert lines == [
        f"{path}: deployments.api.resources.requests.cpu: not a CPU quantity such as 500m or 2 (cores): "
        "unknown suffix 'q' (got '500q')",
        f"{path}: workload.requests[0].steps[1].call: names no datastore (have: postgres); "
        "did you mean `postgres`? (got 'postgress')",
    ]


def _edit(path: list, value):
    def apply(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


STEP0 = ["workload", "requests", 0, "steps", 0]

# (id, edit of minimal.yaml, expected field, phrases)
DATA_CASES = [
    ("wrong-type", _edit(["deployments", "api", "replicas"], "two"),
     "deployments.api.replicas", ["must be a whole number", "(got 'two')"]),
    ("negative-weight", _edit(["workload", "requests", 0, "weight"], -1),
     "workload.requests[0].weight", ["must be at least 0", "(got -1)"]),
    ("zero-duration", _edit(["duration"], 0), "duration", ["must be greater than zero"]),
    ("bad-memory", _edit(["deployments", "api", "resources", "requests", "memory"], "512MB!"),
     "deployments.api.resources.requests.memory", ["not a memory quantity", "512Mi", "(got '512MB!')"]),
    ("bad-cpu", _edit(["deployments", "api", "resources", "limits", "cpu"], "2 cores"),
     "deployments.api.resources.limits.cpu", ["not a CPU quantity", "(got '2 cores')"]),
    ("bad-duration", _edit(["duration"], "10 minutes"), "duration", ["not a duration such as 250ms, 30s"]),
    ("literal", _edit(["deployments", "api", "load_balancing"], "rr"),
     "deployments.api.load_balancing", ["must be one of 'round_robin', 'random', 'least_request' or 'ewma'"]),
    ("dist-literal", _edit(STEP0 + ["cpu", "dist"], "normal"),
     "workload.requests[0].steps[0].cpu.dist", ["must be one of 'constant', 'exponential'", "(got 'normal')"]),
    ("step-unknown-key", _edit(STEP0, {"call": "postgres", "tim": "2ms"}),
     "workload.requests[0].steps[0].tim", ["unknown key", "call, time, write", "did you mean `time`?"]),
    ("step-kind", _edit(STEP0, {"cpux": 1}),
     "workload.requests[0].steps[0]", ["exactly one of the keys cpu, call", "got keys: cpux"]),
    ("unknown-datastore", _edit(STEP0, {"call": "postgres", "time": "1ms"}),
     "workload.requests[0].steps[0].call", ["names no datastore (have: none)", "(got 'postgres')"]),
    ("unknown-external-nested", _edit(STEP0, {"parallel": [{"cpu": "1ms"}, {"external": "llm"}]}),
     "workload.requests[0].steps[0].parallel[1].external", ["names no datastore of kind external"]),
    ("unknown-job", _edit(STEP0, {"enqueue": "episode"}),
     "workload.requests[0].steps[0].enqueue", ["names no job in workload.jobs"]),
    ("datastore-kind", _edit(["datastores"], {"pg": {"kind": "mysql"}}),
     "datastores.pg.kind", ["must be one of 'postgresql', 'neo4j', 'redis', 'external'", "(got 'mysql')"]),
    ("datastore-nested-unknown-key", _edit(["datastores"], {"pg": {"kind": "postgresql", "pool": {"pool_sise": 3}}}),
     "datastores.pg.pool.pool_sise", ["allowed keys here: pool_size, max_overflow", "did you mean `pool_size`?"]),
    ("datastore-bound", _edit(["datastores"], {"pg": {"kind": "postgresql", "max_connections": 0}}),
     "datastores.pg.max_connections", ["must be at least 1", "(got 0)"]),
    ("empty-name", _edit(["workload", "requests", 0, "name"], ""),
     "workload.requests[0].name", ["must not be empty"]),
    ("no-requests", _edit(["workload", "requests"], []), "workload.requests", ["needs at least 1 item"]),
    ("requests-not-list", _edit(["workload", "requests"], {"ping": 1}),
     "workload.requests", ["must be a list; got a mapping"]),
    ("warmup", _edit(["warmup"], "20m"), "warmup", ["must be shorter than duration (10m)", "(got '20m')"]),
    ("no-api", lambda d: d.update(deployments={"web": d["deployments"]["api"]}),
     "deployments", ["must include `api` (have: web)"]),
    ("percent", _edit(["deployments", "api", "strategy"], {"rollingUpdate": {"maxSurge": "x"}}),
     "deployments.api.strategy.rollingUpdate.maxSurge", ["whole number or a percentage"]),
    ("missing-key", lambda d: d["deployments"]["api"].pop("resources"),
     "deployments.api.resources", ["required key is missing"]),
]


@pytest.mark.parametrize(("edit", "field", "phrases"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_data(edit, field, phrases):
    data = _minimal()
    edit(data)
    lines = [p.render("s.yaml") for p in scenario_problems(data)]
    matching = [line for line in lines if line.startswith(f"s.yaml: {field}: ")]
    assert matching, lines
    for phrase in phrases:
        assert any(phrase in line for line in matching), (phrase, lines)


def test_cross_references_reported_alongside_field_errors():
    # A field error stops pydantic's scenario-level validator; the loader still checks names.
    data = _minimal()
    data["deployments"]["api"]["replicas"] = -1
    data["warmup"] = "1h"
    data["workload"]["requests"][0]["steps"].append({"call": "neo4j", "time": "1ms"})
    fields = [p.field for p in scenario_problems(data)]
    assert fields == ["deployments.api.replicas", "warmup", "workload.requests[0].steps[1].call"]


def test_every_problem_rendered_on_its_own_line():
    data = _minimal()
    data["duraton"] = 1
    data["seed"] = -1
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "x.yaml")
    text = str(info.value)
    assert text.splitlines()[0] == "2 problems in scenario x.yaml:"
    assert "x.yaml: seed: must be at least 0 (got -1)" in text


def test_union_tags_never_appear_in_fields():
    data = _minimal()
    data["workload"]["requests"][0]["steps"] = [{"cpu": {"dist": "exponential", "mean": "5xs"}},
                                                {"call": 3, "time": "1ms"}]
    data["datastores"] = {"pg": {"kind": "postgresql", "cores": 0}}
    fields = [p.field for p in scenario_problems(copy.deepcopy(data))]
    assert "workload.requests[0].steps[0].cpu.mean" in fields
    assert "workload.requests[0].steps[1].call" in fields
    assert "datastores.pg.cores" in fields
    assert not any(tag in f for f in fields for tag in (".cpu.cpu", "call.call", "postgresql", "PostgresSpec"))
