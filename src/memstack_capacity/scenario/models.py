"""The scenario: one YAML file describing the workload, the deployments, the
datastores, the cluster, events and targets. Frozen, validated data; the engine
consumes it and never changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from memstack_capacity.scenario.base import Count, Duration, PositiveDuration, SpecModel, raise_problems
from memstack_capacity.scenario.cost import CostSpec
from memstack_capacity.scenario.crossref import cross_reference_problems
from memstack_capacity.scenario.deployment import Deployment
from memstack_capacity.scenario.hpa import keep_given_fields
from memstack_capacity.scenario.infrastructure import Cluster, Event, Targets
from memstack_capacity.scenario import kinds
from memstack_capacity.scenario.kinds import DatastoreSpec
from memstack_capacity.scenario.overrides import apply_overrides, split_path
from memstack_capacity.scenario.problems import parse_as
from memstack_capacity.scenario.workload import Workload


class Scenario(SpecModel):
    """A whole what-if: simulate it with :func:`memstack_capacity.simulate`."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: Count = Field(1, ge=0, le=2**63 - 1)
    duration: PositiveDuration
    warmup: Duration = 0.0
    sample_interval: PositiveDuration = 5.0
    workload: Workload
    deployments: dict[str, Deployment]
    datastores: dict[str, DatastoreSpec] = {}
    cluster: Cluster = Cluster()
    events: list[Event] = []
    targets: Targets = Targets()
    cost: CostSpec = CostSpec()

    @model_validator(mode="after")
    def _cross_references(self) -> "Scenario":
        problems = cross_reference_problems(self.model_dump())
        if problems:
            # A distinct kind: the loader runs the same checks on the raw data itself
            # (so they are reported even when field errors stop this validator).
            raise_problems(problems, kind="cross_reference")
        return self

    def with_overrides(self, overrides: Mapping[str, Any], source: str | None = None, label=None) -> "Scenario":
        """A copy with ``{"dotted.path": value}`` overrides applied, validated again.

        Paths address the resolved scenario (every default filled in), e.g.
        ``{"deployments.api.replicas": 6, "workload.requests[search].weight": 0.8,
        "duration": "30m"}``. Values are written as in YAML. Raises
        :class:`~memstack_capacity.errors.ScenarioError` for a path that names
        nothing or a value the scenario does not accept; ``label(path)`` is the field
        a bad path is reported at (default ``--set path``).
        """
        where = f"{source or self.name} (with overrides)"
        data = apply_overrides(self.model_dump(mode="json"), overrides, source=where, label=label)
        new = parse_as(type(self), data, where)
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


def register_kind(kind: kinds.DatastoreKind) -> kinds.DatastoreKind:
    """Add a datastore kind at run time (a plug-in, a test): scenarios may then name it.

    Raises ValueError naming what the kind lacks. The built-in kinds are in
    :data:`memstack_capacity.scenario.kinds.KINDS`.
    """
    kinds.add(kind)
    _accept_registered_kinds()
    return kind


def unregister_kind(name: str) -> None:
    """Take a kind added by :func:`register_kind` away again."""
    kinds.remove(name)
    _accept_registered_kinds()


def _accept_registered_kinds() -> None:
    """Scenario's ``datastores`` field takes the union of the kinds now registered."""
    kinds.DatastoreSpec = kinds.spec_union()
    Scenario.model_fields["datastores"].annotation = dict[str, kinds.DatastoreSpec]
    Scenario.model_rebuild(force=True)

