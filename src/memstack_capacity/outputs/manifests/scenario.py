"""From a validated scenario to :class:`ManifestInputs`: what the manifests take from it.

- ``deployments.api``: the API objects (``memstack-api``).
- The one other deployment, whatever its key: the worker objects (``memstack-worker``).
- ``replicas`` and ``resources``: ``spec.replicas`` and the container's ``resources``.
- ``readinessProbe`` and ``livenessProbe``: probe timing; the handlers stay upstream's.
- ``strategy``, ``pdb`` and ``hpa``: as given (the HPA gets its ``scaleTargetRef``).
- ``anti_affinity``: ``none``, ``preferred`` or ``required`` pod anti-affinity across nodes.
- ``processes`` of the API: ``uvicorn --workers N`` and ``API_WORKERS`` when N > 1.
- ``terminationGracePeriodSeconds``: written when it is not Kubernetes' default of 30.
- ``workload.timeout``: the ingress ``proxy-read-timeout``.
- The ``postgresql`` datastore's pool (the one named ``postgres`` if several):
  ``POSTGRES_POOL_SIZE``, ``_MAX_OVERFLOW``, ``_RECYCLE`` (-1 for never), ``_PRE_PING``;
  upstream's values when the scenario has no such datastore.

``pool_timeout`` is simulated but has no manifest setting: upstream never sets it, so the
application runs with SQLAlchemy's default of 30 s.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.outputs.manifests.inputs import (
    DeploymentInputs,
    ManifestInputs,
    PoolSettings,
    ProbeTiming,
    Strategy,
)
from memstack_capacity.scenario.kinds import kind_of


def _probe(probe: Any) -> ProbeTiming | None:
    if probe is None:
        return None
    return ProbeTiming(
        initial_delay_s=probe.initialDelaySeconds,
        period_s=probe.periodSeconds,
        timeout_s=probe.timeoutSeconds,
        failure_threshold=probe.failureThreshold,
        success_threshold=getattr(probe, "successThreshold", 1),
    )


def _plain(value: Any) -> Any:
    """A JSON-like copy: mappings to dicts, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def hpa_spec(hpa: Any) -> dict[str, Any] | None:
    """The ``hpa:`` block in Kubernetes shape, as the user wrote it.

    A plain mapping is copied as is. A validated model is dumped with only the keys
    that were given (``exclude_unset``), so defaults the user left out stay out. That
    holds inside ``behavior`` too: the model defaults each direction field by field for
    the simulation (a ``scaleDown`` without ``selectPolicy`` acts as ``Max``), but keeps
    which fields were written (``model_fields_set``), and only those are emitted, so
    upstream's ``scaleDown`` comes out without a ``selectPolicy``, as written.
    :meth:`Scenario.with_overrides` keeps that record through its round trip.
    """
    if hpa is None:
        return None
    if isinstance(hpa, Mapping):
        return _plain(hpa)
    dump = getattr(hpa, "model_dump", None)
    if dump is None:
        raise TypeError(f"hpa must be a mapping or a pydantic model, got {type(hpa).__name__}")
    return _plain(dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True))


def _deployment(role: str, dep: Any) -> DeploymentInputs:
    requests, limits = dep.resources.requests, dep.resources.limits
    strategy = dep.strategy
    rolling = getattr(strategy, "rollingUpdate", None)
    if strategy.type == "RollingUpdate" and rolling is not None:
        strategy_inputs = Strategy("RollingUpdate", rolling.maxSurge, rolling.maxUnavailable)
    else:
        strategy_inputs = Strategy(strategy.type)
    pdb = None
    if dep.pdb is not None:
        pdb = {k: getattr(dep.pdb, k) for k in ("minAvailable", "maxUnavailable") if getattr(dep.pdb, k) is not None}
    return DeploymentInputs(
        name=role,
        replicas=dep.replicas,
        cpu_request_cores=requests.cpu,
        cpu_limit_cores=limits.cpu,
        memory_request_bytes=requests.memory,
        memory_limit_bytes=limits.memory,
        liveness=_probe(dep.livenessProbe),
        readiness=_probe(dep.readinessProbe),
        strategy=strategy_inputs,
        hpa=hpa_spec(dep.hpa),
        pdb=pdb,
        anti_affinity=None if dep.anti_affinity in (None, "none") else dep.anti_affinity,
        processes=dep.processes,
        termination_grace_period_s=getattr(dep, "terminationGracePeriodSeconds", 30),
    )


def _pool(scenario: Any) -> PoolSettings:
    stores = dict(getattr(scenario, "datastores", {}) or {})
    postgres = [name for name, spec in stores.items() if kind_of(spec).queue_pool]
    if not postgres:
        return PoolSettings()
    pool = stores["postgres" if "postgres" in postgres else postgres[0]].pool
    recycle = -1 if pool.pool_recycle is None else int(round(pool.pool_recycle))
    return PoolSettings(pool_size=pool.pool_size, max_overflow=pool.max_overflow, pool_recycle_s=recycle,
                        pool_pre_ping=pool.pool_pre_ping)


def inputs_from_scenario(scenario: Any) -> ManifestInputs:
    """The manifest inputs of a validated :class:`~memstack_capacity.scenario.models.Scenario`.

    Raises:
        ScenarioError: If the scenario has a configuration the manifests cannot express:
            more than one deployment besides ``api``, or a worker with more than one process.
    """
    deployments = scenario.deployments
    others = [name for name in deployments if name != "api"]
    problems = []
    if len(others) > 1:
        problems.append(Problem("deployments", "the manifests cover `api` and one worker deployment; "
                                f"got {len(others)} besides `api`: {', '.join(others)}"))
    worker_key = others[0] if len(others) == 1 else None
    if worker_key is not None and deployments[worker_key].processes != 1:
        problems.append(Problem(f"deployments.{worker_key}.processes",
                                "the worker image runs one Temporal worker per pod; give more replicas instead",
                                deployments[worker_key].processes, True))
    if problems:
        raise ScenarioError(problems, source=getattr(scenario, "name", None))
    return ManifestInputs(
        api=_deployment("api", deployments["api"]),
        worker=_deployment("worker", deployments[worker_key]) if worker_key is not None else None,
        ingress_timeout_s=scenario.workload.timeout,
        pool=_pool(scenario),
    )
