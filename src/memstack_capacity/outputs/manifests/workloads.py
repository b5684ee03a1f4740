"""The API and worker workloads: Deployment, Service, ServiceAccount, HPA and PDB.

Fixed parts follow the real deployment: images ``memstack/<role>:latest`` pulled
Always, the Prometheus pod annotations, a non-root security context, the
ConfigMap and Secret as ``envFrom`` plus explicit secret refs, a ``/tmp``
emptyDir. Only the API has a Service (upstream has none for the worker).
"""

from __future__ import annotations

import copy
from typing import Any

from memstack_capacity.outputs.manifests.inputs import DeploymentInputs
from memstack_capacity.scenario.quantities import format_cpu, format_memory

APP = "memstack"
CONFIGMAP_NAME = "memstack-config"
SECRET_NAME = "memstack-secrets"
API_PORT = 8000
METRICS_PORT = 9090
# The API server command upstream (the image's own command); spelled out only to add --workers.
UVICORN_COMMAND = [
    "uvicorn", "src.infrastructure.adapters.primary.web.main:app", "--host", "0.0.0.0", "--port", str(API_PORT),
]
# Upstream injects these one by one as well as through envFrom (a harmless repetition, kept).
SECRET_ENV = {
    "api": ["NEO4J_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY", "GEMINI_API_KEY"],
    "worker": ["NEO4J_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "GEMINI_API_KEY"],
}
# The worker probe looks for uvicorn although the worker runs a Temporal worker (upstream as written).
WORKER_PROBE_EXEC = {"command": ["/bin/sh", "-c", "pgrep -f uvicorn || exit 1"]}


def object_name(role: str) -> str:
    """``memstack-api`` or ``memstack-worker``."""
    return f"{APP}-{role}"


def labels(role: str) -> dict[str, str]:
    """The labels every object of a role carries and selects on."""
    return {"app": APP, "component": role}


def _metadata(name: str, namespace: str, with_labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if with_labels is not None:
        meta["labels"] = dict(with_labels)
    return meta


def _resources(dep: DeploymentInputs) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if dep.cpu_request_cores is not None:
        requests["cpu"] = format_cpu(dep.cpu_request_cores)
    if dep.memory_request_bytes is not None:
        requests["memory"] = format_memory(dep.memory_request_bytes)
    if dep.cpu_limit_cores is not None:
        limits["cpu"] = format_cpu(dep.cpu_limit_cores)
    if dep.memory_limit_bytes is not None:
        limits["memory"] = format_memory(dep.memory_limit_bytes)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probes(dep: DeploymentInputs) -> dict[str, Any]:
    """Liveness and readiness probes: the handler is fixed per role, the timing simulated."""
    if dep.name == "api":
        live_handler: dict[str, Any] = {"httpGet": {"path": "/health", "port": "http"}}
        ready_handler: dict[str, Any] = {"httpGet": {"path": "/ready", "port": "http"}}
    else:
        # The worker has no HTTP port; a readiness probe, when simulated, uses the liveness command.
        live_handler = {"exec": copy.deepcopy(WORKER_PROBE_EXEC)}
        ready_handler = {"exec": copy.deepcopy(WORKER_PROBE_EXEC)}
    out: dict[str, Any] = {}
    if dep.liveness is not None:
        out["livenessProbe"] = {**live_handler, **dep.liveness.to_k8s()}
    if dep.readiness is not None:
        out["readinessProbe"] = {**ready_handler, **dep.readiness.to_k8s()}
    return out


def _affinity(dep: DeploymentInputs) -> dict[str, Any] | None:
    if dep.anti_affinity is None:
        return None
    term = {
        "labelSelector": {"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]} for key, value in labels(dep.name).items()
        ]},
        "topologyKey": "kubernetes.io/hostname",
    }
    if dep.anti_affinity == "preferred":
        rule = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}
    else:
        rule = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {"podAntiAffinity": rule}


def _container(dep: DeploymentInputs) -> dict[str, Any]:
    role = dep.name
    container: dict[str, Any] = {"name": role, "image": f"{APP}/{role}:latest", "imagePullPolicy": "Always"}
    if dep.processes > 1:
        # Upstream runs one uvicorn process per pod and never reads API_WORKERS; more
        # processes need uvicorn's own flag, so the command is written out in full.
        container["command"] = [*UVICORN_COMMAND, "--workers", str(dep.processes)]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    if role == "api":
        ports.insert(0, {"name": "http", "containerPort": API_PORT, "protocol": "TCP"})
    container["ports"] = ports
    container["env"] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}} for key in SECRET_ENV[role]
    ]
    container["envFrom"] = [{"configMapRef": {"name": CONFIGMAP_NAME}}, {"secretRef": {"name": SECRET_NAME}}]
    resources = _resources(dep)
    if resources:
        container["resources"] = resources
    container.update(_probes(dep))
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    return container


def deployment(dep: DeploymentInputs, namespace: str) -> dict[str, Any]:
    """The ``apps/v1`` Deployment of one role."""
    role = dep.name
    pod_spec: dict[str, Any] = {
        "serviceAccountName": object_name(role),
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
        "containers": [_container(dep)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    affinity = _affinity(dep)
    if affinity is not None:
        pod_spec["affinity"] = affinity
    if dep.termination_grace_period_s != 30:
        pod_spec["terminationGracePeriodSeconds"] = dep.termination_grace_period_s
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(object_name(role), namespace, labels(role)),
        "spec": {
            "replicas": dep.replicas,
            "strategy": dep.strategy.to_k8s(),
            "selector": {"matchLabels": labels(role)},
            "template": {
                "metadata": {
                    "labels": labels(role),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def api_service(namespace: str) -> dict[str, Any]:
    """The API's ClusterIP Service: port 80 to ``http``, 9090 to ``metrics``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(object_name("api"), namespace, labels("api")),
        "spec": {
            "type": "ClusterIP",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
            "selector": labels("api"),
        },
    }


def service_account(role: str, namespace: str) -> dict[str, Any]:
    """The role's ServiceAccount (no labels, as upstream)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(object_name(role), namespace)}


def hpa(dep: DeploymentInputs, namespace: str) -> dict[str, Any] | None:
    """The ``autoscaling/v2`` HPA: the given spec verbatim plus the target; ``None`` without one."""
    if dep.hpa is None:
        return None
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name(dep.name)},
        **copy.deepcopy(dict(dep.hpa)),
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(f"{object_name(dep.name)}-hpa", namespace),
        "spec": spec,
    }


def pdb(dep: DeploymentInputs, namespace: str) -> dict[str, Any] | None:
    """The ``policy/v1`` PodDisruptionBudget; ``None`` without one."""
    if dep.pdb is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(f"{object_name(dep.name)}-pdb", namespace),
        "spec": {**copy.deepcopy(dict(dep.pdb)), "selector": {"matchLabels": labels(dep.name)}},
    }


def workload_objects(dep: DeploymentInputs, namespace: str) -> list[dict[str, Any]]:
    """One role's objects in upstream file order: Deployment, [Service], ServiceAccount, HPA, PDB."""
    objects = [deployment(dep, namespace)]
    if dep.name == "api":
        objects.append(api_service(namespace))
    objects.append(service_account(dep.name, namespace))
    objects.extend(obj for obj in (hpa(dep, namespace), pdb(dep, namespace)) if obj is not None)
    return objects
