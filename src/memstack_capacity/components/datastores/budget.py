"""The PostgreSQL connection budget: what the pools may open at worst, against what the server accepts.

Per process a SQLAlchemy ``QueuePool`` opens at most ``pool_size + max_overflow``
connections (unbounded with ``max_overflow: -1`` or ``pool_size: 0``). A deployment
that calls the database can run ``maxReplicas`` pods (the HPA's, else its fixed
``replicas``) plus the rollout surge: ``strategy.rollingUpdate.maxSurge``, an integer
or a percentage of the replicas rounded **up** (the Deployment controller's
``intstr.GetScaledValueFromIntOrPercent(maxSurge, replicas, true)`` in
``pkg/controller/deployment/util.ResolveFenceposts``); ``Recreate`` has no surge.
Pods still terminating after a rollout or a scale-down hold their pools too; they are
not counted here (their number depends on timing), so the real worst case is higher.
"""

from __future__ import annotations

import math

from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.workload import CallStep, ParallelStep, RepeatStep


def surge_pods(dep, replicas: int) -> int:
    """Extra pods a rolling update may create (maxSurge, percent rounded up)."""
    if dep.strategy.type != "RollingUpdate":
        return 0
    surge = dep.strategy.rollingUpdate.maxSurge
    if isinstance(surge, str):
        return math.ceil(int(surge.rstrip("%")) * replicas / 100.0)
    return int(surge)


def _calls(steps, store: str) -> bool:
    """Whether `steps` call `store` in this process (jobs they enqueue run elsewhere)."""
    for step in steps:
        if isinstance(step, CallStep):
            if step.call == store or (step.miss and _calls(step.miss, store)):
                return True
        elif isinstance(step, ParallelStep) and _calls(step.parallel, store):
            return True
        elif isinstance(step, RepeatStep) and _calls(step.steps, store):
            return True
    return False


def callers(scenario, store: str) -> list[str]:
    """Deployments whose processes call `store`: the API through requests, workers through the jobs they consume."""
    jobs = {j.name: j for j in scenario.workload.jobs}
    out = []
    for name, dep in scenario.deployments.items():
        if dep.consumes:
            steps = [s for j in dep.consumes if j in jobs for s in jobs[j].steps]
        elif name == "api":
            steps = [s for c in scenario.workload.requests for s in c.steps]
        else:
            steps = []
        if _calls(steps, store):
            out.append(name)
    return out


def connection_budget(scenario) -> dict:
    """For every PostgreSQL datastore: the connections the pools may open at worst, and whether they fit.

    Returns ``{store: {"limit", "demand", "fits", "deployments": {name: {"pods_max",
    "max_replicas", "surge", "processes", "per_process", "connections"}}}}``; ``demand``
    is ``inf`` when a pool is unbounded.
    """
    out: dict = {}
    for store, spec in scenario.datastores.items():
        if not KINDS[spec.kind].queue_pool:
            continue
        pool = spec.pool
        unbounded = pool.max_overflow == -1 or pool.pool_size == 0
        per_process = math.inf if unbounded else pool.pool_size + pool.max_overflow
        limit = max(0, spec.max_connections - spec.superuser_reserved_connections)
        deps: dict = {}
        demand = 0
        for name in callers(scenario, store):
            dep = scenario.deployments[name]
            max_replicas = dep.max_replicas
            surge = surge_pods(dep, max_replicas)
            pods = max_replicas + surge
            connections = pods * dep.processes * per_process
            deps[name] = {"max_replicas": max_replicas, "surge": surge, "pods_max": pods,
                          "processes": dep.processes, "per_process": per_process, "connections": connections}
            demand += connections
        out[store] = {"limit": limit, "max_connections": spec.max_connections,
                      "superuser_reserved_connections": spec.superuser_reserved_connections,
                      "demand": demand, "fits": demand <= limit, "deployments": deps}
    return out
