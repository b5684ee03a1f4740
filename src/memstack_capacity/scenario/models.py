"""The scenario: one YAML file describing the workload, the deployments, the
datastores, the cluster, events and targets. Frozen, validated data; the engine
consumes it and never changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from memstack_capacity.errors import Problem
from memstack_capacity.scenario import quantities as q
from memstack_capacity.scenario.base import Duration, PositiveDuration, SpecModel, raise_problems
from memstack_capacity.scenario.deployment import Deployment
from memstack_capacity.scenario.infrastructure import Cluster, Event, Targets
from memstack_capacity.scenario.kinds import DatastoreSpec, kind_of
from memstack_capacity.scenario.workload import Workload


class Scenario(SpecModel):
    """A whole what-if: simulate it with :func:`memstack_capacity.simulate`."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = Field(1, ge=0)
    duration: PositiveDuration
    warmup: Duration = 0.0
    sample_interval: PositiveDuration = 5.0
    workload: Workload
    deployments: dict[str, Deployment]
    datastores: dict[str, DatastoreSpec] = {}
    cluster: Cluster = Cluster()
    events: list[Event] = []
    targets: Targets = Targets()

    @model_validator(mode="after")
    def _cross_references(self) -> "Scenario":
        problems = cross_reference_problems(self.model_dump())
        if problems:
            # A distinct kind: the loader runs the same checks on the raw data itself
            # (so they are reported even when field errors stop this validator).
            raise_problems(problems, kind="cross_reference")
        return self

    def with_overrides(self, overrides: Mapping[str, Any], source: str | None = None) -> "Scenario":
        """A copy with ``{"dotted.path": value}`` overrides applied, validated again.

        Paths address the resolved scenario (every default filled in), e.g.
        ``{"deployments.api.replicas": 6, "workload.requests[search].weight": 0.8,
        "duration": "30m"}``. Values are written as in YAML. Raises
        :class:`~memstack_capacity.errors.ScenarioError` for a path that names
        nothing or a value the scenario does not accept.
        """
        from memstack_capacity.scenario.load import parse_scenario
        from memstack_capacity.scenario.overrides import apply_overrides

        from memstack_capacity.scenario.hpa import keep_given_fields
        from memstack_capacity.scenario.overrides import split_path

        where = f"{source or self.name} (with overrides)"
        data = apply_overrides(self.model_dump(mode="json"), overrides, source=where)
        new = parse_scenario(data, where)
        # The hpa: blocks are written into the manifests as the user gave them; keep what was given.
        touched = [tuple(split_path(path)) for path in overrides]
        for name, dep in self.deployments.items():
            other = new.deployments.get(name)
            if dep.hpa is not None and other is not None and other.hpa is not None:
                here = ("deployments", name, "hpa")
                if not any(t[: len(here)] == here[: len(t)] and len(t) <= len(here) for t in touched):
                    keep_given_fields(dep.hpa, other.hpa, [t[len(here):] for t in touched if t[: len(here)] == here])
        return new

    @property
    def api(self) -> Deployment:
        return self.deployments["api"]

    def worker_names(self) -> list[str]:
        return [n for n, d in self.deployments.items() if d.consumes]


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names)) if names else "none"


def _seconds(value: object) -> float | None:
    try:
        return q.parse_duration(value)
    except ValueError:
        return None


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _unknown_name(kind: str, name: str, have: set[str], hint: str = "") -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(have), n=1)
    text = f"names no {kind} (have: {_names(have)})"
    if close:
        text += f"; did you mean `{close[0]}`?"
    return text + hint


def cross_reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Problems between blocks: names that refer to nothing, warmup against duration.

    Works on a scenario's plain data (raw YAML or ``model_dump()``) and skips
    whatever is malformed, since field validation reports that. The loader runs it
    even when fields fail, which stops pydantic from running the model validator,
    so every problem in a file is reported at once.
    """
    problems: list[Problem] = []
    duration, warmup = _seconds(data.get("duration")), _seconds(data.get("warmup", 0.0))
    if duration is not None and warmup is not None and duration > 0 and warmup >= duration:
        problems.append(Problem("warmup", f"must be shorter than duration ({q.format_duration(duration)})",
                                data.get("warmup"), True))
    deployments = _mapping(data.get("deployments"))
    if isinstance(data.get("deployments"), Mapping) and "api" not in deployments:
        problems.append(Problem("deployments", f"must include `api` (have: {_names(set(deployments))})"))
    workload = _mapping(data.get("workload"))
    jobs = {j["name"] for j in _list(workload.get("jobs")) if isinstance(j, Mapping) and isinstance(j.get("name"), str)}
    datastores = _mapping(data.get("datastores"))
    externals = {n for n, d in datastores.items() if isinstance(d, Mapping) and kind_of(d).is_external}
    stores = set(datastores) - externals

    def check_steps(steps: object, path: str) -> None:
        for j, step in enumerate(_list(steps)):
            if not isinstance(step, Mapping):
                continue
            where = f"{path}[{j}]"
            call, external, enqueue = step.get("call"), step.get("external"), step.get("enqueue")
            if isinstance(call, str) and call not in stores:
                hint = f"; `{call}` is an external API: use `external: {call}`" if call in externals else ""
                problems.append(Problem(f"{where}.call", _unknown_name("datastore", call, stores, hint), call, True))
            if isinstance(external, str) and external not in externals:
                hint = f"; `{external}` is a datastore: use `call: {external}`" if external in stores else ""
                problems.append(Problem(f"{where}.external",
                                        _unknown_name("datastore of kind external", external, externals, hint),
                                        external, True))
            if isinstance(enqueue, str) and enqueue not in jobs:
                problems.append(Problem(f"{where}.enqueue", _unknown_name("job in workload.jobs", enqueue, jobs),
                                        enqueue, True))
            for nested in ("parallel", "steps", "miss"):
                check_steps(step.get(nested), f"{where}.{nested}")

    for section in ("requests", "jobs"):
        for i, item in enumerate(_list(workload.get(section))):
            if isinstance(item, Mapping):
                check_steps(item.get("steps"), f"workload.{section}[{i}].steps")

    consumed: dict[str, str] = {}
    for dep_name, dep in deployments.items():
        for k, job in enumerate(_list(_mapping(dep).get("consumes"))):
            if not isinstance(job, str):
                continue
            where = f"deployments.{dep_name}.consumes[{k}]"
            if job not in jobs:
                problems.append(Problem(where, _unknown_name("job in workload.jobs", job, jobs), job, True))
            elif job in consumed:
                problems.append(Problem(where, f"job `{job}` is already consumed by deployment `{consumed[job]}`"))
            consumed.setdefault(job, dep_name)
    if _list(_mapping(deployments.get("api")).get("consumes")):
        problems.append(Problem("deployments.api.consumes",
                                "the API serves requests; jobs go to a worker deployment"))
    for i, job in enumerate(_list(workload.get("jobs"))):
        name = _mapping(job).get("name")
        if isinstance(name, str) and name not in consumed:
            problems.append(Problem(f"workload.jobs[{i}]",
                                    f"no deployment consumes job `{name}` (add it to a worker's `consumes`)"))
    for i, event in enumerate(_list(data.get("events"))):
        at = _seconds(_mapping(event).get("at"))
        if at is not None and duration is not None and at > duration:
            problems.append(Problem(f"events[{i}].at",
                                    f"is after the end of the run (duration {q.format_duration(duration)})",
                                    _mapping(event).get("at"), True))
    return problems
