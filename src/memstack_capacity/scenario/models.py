"""The scenario: one YAML file describing the workload, the deployments, the
datastores, the cluster, events and targets. Frozen, validated data; the engine
consumes it and never changes it.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from memstack_capacity.scenario.base import Duration, PositiveDuration, SpecModel
from memstack_capacity.scenario.deployment import Deployment
from memstack_capacity.scenario.infrastructure import (
    Cluster,
    DatastoreSpec,
    Event,
    ExternalSpec,
    Targets,
)
from memstack_capacity.scenario.workload import CallStep, EnqueueStep, ExternalStep, Workload, iter_steps


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
        problems: list[str] = []
        if self.warmup >= self.duration:
            problems.append(f"warmup ({self.warmup:g}s) must be shorter than duration ({self.duration:g}s)")
        if "api" not in self.deployments:
            problems.append(f"deployments must include `api` (got {sorted(self.deployments)})")
        jobs = {j.name for j in self.workload.jobs}
        externals = {n for n, d in self.datastores.items() if isinstance(d, ExternalSpec)}
        stores = set(self.datastores) - externals
        owners = [(f"workload.requests[{r.name}]", r.steps) for r in self.workload.requests]
        owners += [(f"workload.jobs[{j.name}]", j.steps) for j in self.workload.jobs]
        for where, steps in owners:
            for step in iter_steps(steps):
                if isinstance(step, CallStep) and step.call not in stores:
                    problems.append(f"{where}: call `{step.call}` names no datastore (have: {_names(stores)})")
                elif isinstance(step, ExternalStep) and step.external not in externals:
                    problems.append(
                        f"{where}: external `{step.external}` names no datastore of kind external "
                        f"(have: {_names(externals)})"
                    )
                elif isinstance(step, EnqueueStep) and step.enqueue not in jobs:
                    problems.append(f"{where}: enqueue `{step.enqueue}` names no job (have: {_names(jobs)})")
        consumed: dict[str, str] = {}
        for dep_name, dep in self.deployments.items():
            for job in dep.consumes:
                if job not in jobs:
                    problems.append(f"deployments.{dep_name}.consumes: `{job}` names no job (have: {_names(jobs)})")
                elif job in consumed:
                    problems.append(f"job `{job}` is consumed by both {consumed[job]} and {dep_name}")
                consumed[job] = dep_name
        if "api" in self.deployments and self.deployments["api"].consumes:
            problems.append("deployments.api.consumes: the API serves requests; jobs go to a worker deployment")
        for job in sorted(jobs - set(consumed)):
            problems.append(f"workload.jobs[{job}]: no deployment consumes it (add it to a worker's `consumes`)")
        for i, event in enumerate(self.events):
            if event.at > self.duration:
                problems.append(f"events[{i}].at ({event.at:g}s) is after the end of the run ({self.duration:g}s)")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def api(self) -> Deployment:
        return self.deployments["api"]

    def worker_names(self) -> list[str]:
        return [n for n, d in self.deployments.items() if d.consumes]


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names)) if names else "none"
