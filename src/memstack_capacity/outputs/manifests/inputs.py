"""What the manifest generator needs to know: the simulated configuration as plain data.

:class:`ManifestInputs` is the boundary between a scenario and the Kubernetes
manifests. It holds only the values the simulation varies (replicas, resources,
probe timing, rollout strategy, autoscaler, disruption budget, anti-affinity,
server processes, the ingress read timeout and the Postgres pool). Everything
else in the manifests is fixed to the real MemStack deployment
(``s1366560/agi-demos`` commit ``30bd61be8``, ``k8s/``).

Numbers are SI: cores, bytes, seconds. The builders spell them the Kubernetes way.
:meth:`ManifestInputs.upstream` gives exactly the real deployment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AntiAffinity = Literal["preferred", "required"]
ROLES = ("api", "worker")
_GI = 2**30
_MI = 2**20


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ProbeTiming:
    """The timing of a liveness or readiness probe, in whole seconds as Kubernetes takes them.

    The probe's handler (HTTP path, exec command) is fixed per deployment role;
    only its timing is simulated.
    """

    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 1
    failure_threshold: int = 3
    success_threshold: int = 1

    def __post_init__(self) -> None:
        names = ("initial_delay_s", "period_s", "timeout_s", "failure_threshold", "success_threshold")
        for name in names:
            value = getattr(self, name)
            _require(_is_int(value) and value >= 0, f"probe {name} must be a whole number >= 0, got {value!r}")
        for name in names[1:]:
            _require(getattr(self, name) >= 1, f"probe {name} must be >= 1, got {getattr(self, name)!r}")

    def to_k8s(self) -> dict[str, int]:
        """The timing fields of a Kubernetes ``Probe``; ``successThreshold`` only when not the default 1."""
        fields = {
            "initialDelaySeconds": self.initial_delay_s,
            "periodSeconds": self.period_s,
            "timeoutSeconds": self.timeout_s,
            "failureThreshold": self.failure_threshold,
        }
        if self.success_threshold != 1:
            fields["successThreshold"] = self.success_threshold
        return fields


@dataclass(frozen=True)
class Strategy:
    """A Deployment's rollout strategy; surge and unavailable are a count or a percentage string."""

    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    max_surge: int | str = 1
    max_unavailable: int | str = 0

    def __post_init__(self) -> None:
        _require(self.type in ("RollingUpdate", "Recreate"),
                 f"strategy type must be RollingUpdate or Recreate, got {self.type!r}")
        for name in ("max_surge", "max_unavailable"):
            value = getattr(self, name)
            percent = isinstance(value, str) and value.endswith("%") and value[:-1].isdigit()
            _require((_is_int(value) and value >= 0) or percent,
                     f"strategy {name} must be a count >= 0 or a percentage like '25%', got {value!r}")

    def to_k8s(self) -> dict[str, Any]:
        """The Kubernetes ``DeploymentStrategy``."""
        if self.type == "Recreate":
            return {"type": "Recreate"}
        rolling = {"maxSurge": self.max_surge, "maxUnavailable": self.max_unavailable}
        return {"type": "RollingUpdate", "rollingUpdate": rolling}


@dataclass(frozen=True)
class DeploymentInputs:
    """The simulated settings of one Deployment (``api`` or ``worker``).

    Attributes:
        name: The role, ``"api"`` or ``"worker"``; objects are named ``memstack-<name>``.
        replicas: Replicas at the start (``spec.replicas``).
        cpu_request_cores, cpu_limit_cores: CPU in cores; ``None`` leaves the field out.
        memory_request_bytes, memory_limit_bytes: Memory in bytes; ``None`` leaves it out.
        liveness, readiness: Probe timing; ``None`` means no such probe.
        strategy: The rollout strategy.
        hpa: An autoscaling/v2 ``HorizontalPodAutoscalerSpec`` without ``scaleTargetRef``,
            in Kubernetes shape, emitted exactly as given; ``None`` means no HPA.
        pdb: ``{"minAvailable": n}`` or ``{"maxUnavailable": n}``; ``None`` means no PDB.
        anti_affinity: Pod anti-affinity across nodes, ``"preferred"``, ``"required"`` or ``None``.
        processes: Server processes per pod. The API runs one uvicorn process upstream;
            more than one adds ``--workers N`` to an explicit uvicorn command. The worker
            image runs one Temporal worker process, so the worker must have 1.
        termination_grace_period_s: Written only when not Kubernetes' default of 30 s.
    """

    name: str
    replicas: int
    cpu_request_cores: float | None
    cpu_limit_cores: float | None
    memory_request_bytes: int | None
    memory_limit_bytes: int | None
    liveness: ProbeTiming | None = None
    readiness: ProbeTiming | None = None
    strategy: Strategy = field(default_factory=Strategy)
    hpa: Mapping[str, Any] | None = None
    pdb: Mapping[str, Any] | None = None
    anti_affinity: AntiAffinity | None = None
    processes: int = 1
    termination_grace_period_s: int = 30

    def __post_init__(self) -> None:
        who = f"deployment {self.name!r}"
        _require(self.name in ROLES, f"{who}: name must be one of {ROLES}")
        _require(_is_int(self.replicas) and self.replicas >= 0,
                 f"{who}: replicas must be a whole number >= 0, got {self.replicas!r}")
        for attr in ("cpu_request_cores", "cpu_limit_cores"):
            value = getattr(self, attr)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            _require(value is None or ok, f"{who}: {attr} must be > 0 cores, got {value!r}")
        for attr in ("memory_request_bytes", "memory_limit_bytes"):
            value = getattr(self, attr)
            _require(value is None or (_is_int(value) and value > 0),
                     f"{who}: {attr} must be a whole number of bytes > 0, got {value!r}")
        if self.hpa is not None:
            _require(isinstance(self.hpa, Mapping), f"{who}: hpa must be a mapping in Kubernetes shape, got {self.hpa!r}")
            _require("scaleTargetRef" not in self.hpa,
                     f"{who}: hpa must not set scaleTargetRef (it is always the Deployment)")
            _require("maxReplicas" in self.hpa, f"{who}: hpa must set maxReplicas")
        if self.pdb is not None:
            keys = set(self.pdb)
            _require(keys in ({"minAvailable"}, {"maxUnavailable"}),
                     f"{who}: pdb must set exactly one of minAvailable or maxUnavailable, got {dict(self.pdb)!r}")
        _require(self.anti_affinity in (None, "preferred", "required"),
                 f"{who}: anti_affinity must be 'preferred', 'required' or None, got {self.anti_affinity!r}")
        _require(_is_int(self.processes) and self.processes >= 1,
                 f"{who}: processes must be a whole number >= 1, got {self.processes!r}")
        _require(_is_int(self.termination_grace_period_s) and self.termination_grace_period_s >= 0,
                 f"{who}: termination_grace_period_s must be a whole number >= 0, got {self.termination_grace_period_s!r}")
        _require(self.name == "api" or self.processes == 1,
                 f"{who}: processes must be 1; the worker image runs one Temporal worker per pod (got {self.processes!r})")


@dataclass(frozen=True)
class PoolSettings:
    """The SQLAlchemy pool settings the ConfigMap carries (``POSTGRES_POOL_*``).

    ``max_overflow`` -1 means no limit and ``pool_recycle_s`` -1 means never, as in SQLAlchemy.
    """

    pool_size: int = 20
    max_overflow: int = 40
    pool_recycle_s: int = 3600
    pool_pre_ping: bool = True

    def __post_init__(self) -> None:
        for name, lowest in (("pool_size", 0), ("max_overflow", -1), ("pool_recycle_s", -1)):
            value = getattr(self, name)
            _require(_is_int(value) and value >= lowest, f"pool {name} must be a whole number >= {lowest}, got {value!r}")
        _require(isinstance(self.pool_pre_ping, bool),
                 f"pool pool_pre_ping must be a bool, got {self.pool_pre_ping!r}")


@dataclass(frozen=True)
class ManifestInputs:
    """Everything that varies between generated manifest sets.

    Attributes:
        api: The API Deployment.
        worker: The worker Deployment, or ``None`` when the scenario has no worker tier
            (then no worker objects, worker ServiceMonitor or worker alert group).
        namespace: The namespace of every object.
        ingress_timeout_s: The client timeout; nginx's ``proxy-read-timeout`` (whole
            seconds, a fraction is rounded up).
        pool: The Postgres pool settings.
    """

    api: DeploymentInputs
    worker: DeploymentInputs | None
    namespace: str = "memstack"
    ingress_timeout_s: float = 60
    pool: PoolSettings = field(default_factory=PoolSettings)

    def __post_init__(self) -> None:
        _require(self.api.name == "api", f"ManifestInputs.api must be named 'api', got {self.api.name!r}")
        _require(self.worker is None or self.worker.name == "worker",
                 f"ManifestInputs.worker must be named 'worker', got {getattr(self.worker, 'name', None)!r}")
        _require(isinstance(self.namespace, str) and self.namespace != "", "namespace must be a non-empty string")
        _require(isinstance(self.ingress_timeout_s, (int, float)) and math.isfinite(self.ingress_timeout_s)
                 and self.ingress_timeout_s > 0, f"ingress_timeout_s must be > 0 seconds, got {self.ingress_timeout_s!r}")

    @classmethod
    def upstream(cls) -> ManifestInputs:
        """Exactly the real deployment (``k8s/`` at agi-demos ``30bd61be8``)."""

        def utilization(resource: str, percent: int) -> dict[str, Any]:
            target = {"type": "Utilization", "averageUtilization": percent}
            return {"type": "Resource", "resource": {"name": resource, "target": target}}

        def resource_hpa(min_replicas: int, max_replicas: int, behavior: dict[str, Any]) -> dict[str, Any]:
            return {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "metrics": [utilization("cpu", 70), utilization("memory", 80)],
                "behavior": behavior,
            }

        api = DeploymentInputs(
            name="api", replicas=3,
            cpu_request_cores=0.5, cpu_limit_cores=2.0,
            memory_request_bytes=512 * _MI, memory_limit_bytes=2 * _GI,
            liveness=ProbeTiming(initial_delay_s=30, period_s=10, timeout_s=5, failure_threshold=3),
            readiness=ProbeTiming(initial_delay_s=10, period_s=5, timeout_s=3, failure_threshold=3),
            strategy=Strategy("RollingUpdate", 1, 0),
            hpa=resource_hpa(3, 20, {
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30},
                                         {"type": "Pods", "value": 2, "periodSeconds": 60}],
                            "selectPolicy": "Max"},
            }),
            pdb={"minAvailable": 2}, anti_affinity="preferred", processes=1,
        )
        worker = DeploymentInputs(
            name="worker", replicas=2,
            cpu_request_cores=0.5, cpu_limit_cores=2.0,
            memory_request_bytes=512 * _MI, memory_limit_bytes=2 * _GI,
            liveness=ProbeTiming(initial_delay_s=30, period_s=30, timeout_s=5, failure_threshold=3),
            readiness=None,
            strategy=Strategy("RollingUpdate", 1, 0),
            hpa=resource_hpa(2, 15, {
                "scaleDown": {"stabilizationWindowSeconds": 600,
                              "policies": [{"type": "Percent", "value": 30, "periodSeconds": 90}]},
                "scaleUp": {"stabilizationWindowSeconds": 60,
                            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60},
                                         {"type": "Pods", "value": 1, "periodSeconds": 90}],
                            "selectPolicy": "Max"},
            }),
            pdb={"minAvailable": 1}, anti_affinity=None, processes=1,
        )
        return cls(api=api, worker=worker, namespace="memstack", ingress_timeout_s=60, pool=PoolSettings())
