"""A scale model of a scenario: the same autoscaling decisions for a fraction of the work.

Simulating the full ``peak.yaml`` takes minutes; its 1/k model takes seconds and, for the
autoscalers, is the same system. Every pod gets 1/k of its CPU (of the cores its processes
can use), of its memory and of its concurrency, and the load is 1/k, so each pod sees the
full-size utilisation: the HPAs' decisions, the pod counts and pod-hours are those of the
full-size system. Latencies are not: CPU steps run k times slower on the smaller pods, and a
datastore with 1/k of its cores queues more. Throughput is 1/k of the full size.

>>> small = scale_model(peak, 8, profile=[("0s", 200), ("2m", 1200)], overrides={"duration": "4m"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memstack_capacity.scenario.models import Scenario


def scale_model(scenario: Scenario, k: int = 8, profile: Sequence[tuple[Any, float]] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Scenario:
    """``scenario`` at 1/k: 1/k of the load, pods 1/k the size, datastores and providers 1/k as fast.

    ``profile`` is the full-size load as ``(at, users)`` pairs (``(at, rps)`` for an open
    workload), ``None`` for the scenario's own; ``overrides`` (dotted keys, as ``--set``)
    apply after the scaling, at the model's scale (e.g. ``{"datastores.neo4j.cores": 4}``).
    ``k = 1`` is the scenario itself with the overrides.
    """
    if k < 1:
        raise ValueError(f"k = {k}: a scale model is 1/k of the system, k ≥ 1")
    out = _load(scenario, k, profile)
    for name, dep in scenario.deployments.items():
        key, req, lim = f"deployments.{name}", dep.resources.requests, dep.resources.limits
        usable = min(lim.cpu or dep.processes, dep.processes)
        out[f"{key}.resources.requests.cpu"] = f"{req.cpu * 1000 / k:g}m"
        out[f"{key}.resources.limits.cpu"] = f"{usable * 1000 / k:g}m"
        out[f"{key}.resources.requests.memory"] = int(req.memory / k)
        out[f"{key}.resources.limits.memory"] = int(lim.memory / k)
        out[f"{key}.memory_base"] = int(dep.memory_base / k)
        out[f"{key}.concurrency"] = max(1, round(dep.concurrency / k))
        out[f"{key}.backlog"] = round(dep.backlog / k)
    for name, store in scenario.datastores.items():
        if getattr(store, "cores", None):
            out[f"datastores.{name}.cores"] = max(1, store.cores // k)
        if getattr(store, "rate_limit", None):
            out[f"datastores.{name}.rate_limit"] = store.rate_limit / k
    return scenario.with_overrides({**out, **dict(overrides or {})})


def _load(scenario: Scenario, k: int, profile) -> dict[str, Any]:
    """The workload's profile at 1/k (users rounded, at least 1; a rate divided)."""
    workload = scenario.workload
    if workload.users is not None:
        points = profile if profile is not None else [(p.at, p.users) for p in workload.users.profile]
        return {"workload.users.profile": [{"at": at, "users": max(1, round(users / k))} for at, users in points]}
    points = profile if profile is not None else [(p.at, p.rps) for p in workload.arrivals.profile]
    return {"workload.arrivals.profile": [{"at": at, "rps": rps / k} for at, rps in points]}
