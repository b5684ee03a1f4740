"""Checks between the blocks of scenario data: names that refer to nothing, warmup against
duration, HPA bounds hidden by field errors.

They work on plain data (raw YAML or ``model_dump()``), not on the models, so they run
even when field validation fails and every problem in a file is reported at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from memstack_capacity.errors import Problem
from memstack_capacity.scenario import quantities as q
from memstack_capacity.scenario.event_checks import event_reference_problems
from memstack_capacity.scenario.kinds import kind_of


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
    return (problems + _cfs_burst_problems(data, deployments) + event_reference_problems(data)
            + _cost_problems(data, datastores))


def _cost_problems(data: Mapping, datastores: Mapping) -> list[Problem]:
    """``cost.datastores`` must name datastores; an external API has no server whose memory to price."""
    problems = []
    for name, entry in _mapping(_mapping(data.get("cost")).get("datastores")).items():
        where = f"cost.datastores.{name}"
        if name not in datastores:
            problems.append(Problem(where, _unknown_name("datastore", str(name), set(datastores))))
        elif kind_of(datastores[name]).is_external and _mapping(entry).get("memory") is not None:
            problems.append(Problem(f"{where}.memory", "an external API has no server of yours to price by memory; "
                                    "give `hourly` (its price per hour) instead", _mapping(entry).get("memory"), True))
    return problems


def _cpu(value: object) -> float | None:
    try:
        return q.parse_cpu(value)
    except (TypeError, ValueError):
        return None


def _cfs_burst_problems(data: Mapping, deployments: Mapping) -> list[Problem]:
    """The kernel refuses a CFS burst above the container's quota (``limits.cpu × period``)."""
    cluster = _mapping(data.get("cluster"))
    burst = _seconds(cluster.get("cpu_cfs_burst", 0.0))
    period = _seconds(cluster.get("cpu_cfs_quota_period", 0.1))
    if not burst or not period or burst <= 0:
        return []
    problems = []
    for name, dep in deployments.items():
        limit = _cpu(_mapping(_mapping(_mapping(dep).get("resources")).get("limits")).get("cpu"))
        if limit is not None and burst > limit * period * (1 + 1e-12):
            problems.append(Problem(
                "cluster.cpu_cfs_burst",
                f"must not exceed the CPU quota of deployment `{name}` (limits.cpu × cpu_cfs_quota_period = "
                f"{q.format_duration(limit * period)}): the kernel refuses cpu.cfs_burst_us above cpu.cfs_quota_us",
                cluster.get("cpu_cfs_burst"), True))
    return problems


def hpa_bounds_problems(data: Mapping, problems: list[Problem]) -> list[Problem]:
    """minReplicas > maxReplicas, when field errors in the hpa block hid the model's own check."""
    found = []
    deployments = data.get("deployments")
    for name, dep in (deployments.items() if isinstance(deployments, Mapping) else ()):
        hpa = dep.get("hpa") if isinstance(dep, Mapping) else None
        if not isinstance(hpa, Mapping):
            continue
        low, high = hpa.get("minReplicas", 1), hpa.get("maxReplicas")
        if not (isinstance(low, int) and isinstance(high, int)) or low <= high:
            continue
        where = f"deployments.{name}.hpa"
        if not any(p.field == where for p in problems):
            found.append(Problem(where, f"maxReplicas ({high}) must be greater than or equal to minReplicas ({low})"))
    return found
