"""A Deployment as the simulator sees it: pods, processes, resources, probes, autoscaling.

Kubernetes blocks keep Kubernetes' field names (``readinessProbe``, ``strategy``,
``hpa`` as an autoscaling/v2 spec, ``pdb``) so they can be pasted from manifests.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from memstack_capacity.scenario.base import MAX_COUNT, Count, Cpu, Duration, Memory, Seconds, SpecModel
from memstack_capacity.scenario.hpa import HorizontalPodAutoscalerSpec

LoadBalancing = Literal["round_robin", "random", "least_request", "ewma"]


class ResourceList(SpecModel):
    cpu: Cpu | None = None
    memory: Memory | None = None


class Resources(SpecModel):
    """Container requests and limits (Kubernetes `resources`)."""

    requests: ResourceList
    limits: ResourceList = ResourceList()

    @model_validator(mode="after")
    def _requests_within_limits(self) -> "Resources":
        if self.requests.cpu is None or self.requests.memory is None:
            raise ValueError("requests.cpu and requests.memory are required (the HPA measures utilisation against them)")
        for name in ("cpu", "memory"):
            req, lim = getattr(self.requests, name), getattr(self.limits, name)
            if lim is not None and req > lim:
                raise ValueError(f"requests.{name} ({req}) must not exceed limits.{name} ({lim})")
        return self


class Probe(SpecModel):
    """A readiness or liveness probe; defaults are Kubernetes' own."""

    initialDelaySeconds: Seconds = 0
    periodSeconds: Seconds = Field(10, ge=1)
    timeoutSeconds: Seconds = Field(1, ge=1)
    successThreshold: Count = Field(1, ge=1)
    failureThreshold: Count = Field(3, ge=1)


_PERCENT = re.compile(r"^\d+%$")


def _int_or_percent(value: object) -> int | str:
    if isinstance(value, bool):
        raise ValueError("must be a whole number or a percentage such as 25%")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        if value > MAX_COUNT:
            raise ValueError(f"must be at most {MAX_COUNT}")
        return value
    if isinstance(value, str) and _PERCENT.match(value.strip()):
        return value.strip()
    raise ValueError("must be a whole number or a percentage such as 25%")


class RollingUpdate(SpecModel):
    maxSurge: int | str = "25%"
    maxUnavailable: int | str = "25%"

    _check = field_validator("maxSurge", "maxUnavailable", mode="before")(classmethod(lambda cls, v: _int_or_percent(v)))

    @model_validator(mode="after")
    def _not_both_zero(self) -> "RollingUpdate":
        if self.maxSurge in (0, "0%") and self.maxUnavailable in (0, "0%"):
            raise ValueError("maxSurge and maxUnavailable must not both be zero")
        return self


class Strategy(SpecModel):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rollingUpdate: RollingUpdate = RollingUpdate()


class PodDisruptionBudget(SpecModel):
    minAvailable: int | str | None = None
    maxUnavailable: int | str | None = None

    _check = field_validator("minAvailable", "maxUnavailable", mode="before")(
        classmethod(lambda cls, v: v if v is None else _int_or_percent(v))
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "PodDisruptionBudget":
        if (self.minAvailable is None) == (self.maxUnavailable is None):
            raise ValueError("give exactly one of minAvailable or maxUnavailable")
        return self


class Deployment(SpecModel):
    """One Deployment: the API (serves requests) or the worker (consumes jobs)."""

    replicas: Count = Field(ge=0, description="replicas at the start")
    processes: Count = Field(1, ge=1, description="server processes per pod (uvicorn/gunicorn workers)")
    concurrency: Count = Field(100, ge=1, description="in-flight requests (or jobs) per process")
    backlog: Count = Field(2048, ge=0, description="the pod's accept queue; beyond it the pod answers 503")
    resources: Resources
    memory_base: Memory = Field(0, description="the container's working set with nothing in flight")
    background_cpu: Cpu | None = Field(None, description="CPU the container burns while it runs without serving anything "
                                "(GC, agents, a sidecar's share): counted in its usage, as cAdvisor counts it, and "
                                "spending the container's CFS quota beside its processes")
    load_balancing: LoadBalancing = "round_robin"
    image_pull: Duration = Field(5.0, description="time to pull the image once the pod is scheduled")
    startup: Duration = Field(8.0, description="time from container start until the app accepts requests")
    endpoint_delay: Duration = Field(1.0, description="time for a Ready pod to reach the load balancer")
    terminationGracePeriodSeconds: Seconds = 30
    readinessProbe: Probe | None = None
    livenessProbe: Probe | None = None
    strategy: Strategy = Strategy()
    anti_affinity: Literal["none", "preferred", "required"] = "none"
    hpa: HorizontalPodAutoscalerSpec | None = None
    pdb: PodDisruptionBudget | None = None
    consumes: list[str] = Field(default_factory=list, description="job names this deployment processes (workers)")

    @property
    def max_replicas(self) -> int:
        """The most pods the deployment asks for: the HPA's maxReplicas (its start replicas if more), else its replicas."""
        top = getattr(self.hpa, "maxReplicas", None)
        return self.replicas if top is None else max(int(top), self.replicas)

    @property
    def cpu_capacity(self) -> float:
        """Cores the pod can use: one per process, held to limits.cpu."""
        limit = self.resources.limits.cpu
        return float(self.processes) if limit is None else min(float(self.processes), limit)
