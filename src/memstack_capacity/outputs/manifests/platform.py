"""The shared objects: Namespace, ConfigMap, Secret, Ingress and the Prometheus Operator objects.

The ConfigMap has upstream's 30 keys, all strings; the Postgres pool keys carry the
simulated pool. The Secret holds placeholders only (``CHANGE-ME``), never real
values; its three non-secret settings are upstream's. The alert rules are the real
deployment's seven, names and expressions unchanged.
"""

from __future__ import annotations

import math
from typing import Any

from memstack_capacity.outputs.manifests.inputs import ManifestInputs
from memstack_capacity.outputs.manifests.workloads import (
    APP,
    CONFIGMAP_NAME,
    METRICS_PORT,
    SECRET_NAME,
    labels,
    object_name,
)

PLACEHOLDER = "CHANGE-ME"
INGRESS_HOST = "memstack.example.com"
NGINX = "nginx.ingress.kubernetes.io/"
# Upstream's API_WORKERS; the code never reads it (one uvicorn process per pod).
UPSTREAM_API_WORKERS = "4"


def namespace(inputs: ManifestInputs) -> dict[str, Any]:
    """The Namespace, labelled ``name`` and ``app`` as upstream."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": inputs.namespace, "labels": {"name": inputs.namespace, "app": APP}}}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def configmap(inputs: ManifestInputs) -> dict[str, Any]:
    """``memstack-config``: upstream's 30 keys in upstream order, with the simulated pool."""
    pool = inputs.pool
    api_workers = UPSTREAM_API_WORKERS if inputs.api.processes == 1 else str(inputs.api.processes)
    data = {
        "API_HOST": "0.0.0.0",
        "API_PORT": "8000",
        "API_WORKERS": api_workers,
        "API_ALLOWED_ORIGINS": "*",
        "NEO4J_URI": "bolt://memstack-neo4j:7687",
        "NEO4J_USER": "neo4j",
        "POSTGRES_HOST": "memstack-postgres",
        "POSTGRES_PORT": "5432",
        "POSTGRES_DB": "memstack",
        "POSTGRES_USER": "postgres",
        "REDIS_HOST": "memstack-redis",
        "REDIS_PORT": "6379",
        "POSTGRES_POOL_SIZE": str(pool.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool.max_overflow),
        "POSTGRES_POOL_RECYCLE": str(pool.pool_recycle_s),
        "POSTGRES_POOL_PRE_PING": _bool(pool.pool_pre_ping),
        "LLM_TIMEOUT": "60",
        "LLM_CACHE_ENABLED": "true",
        "LLM_CACHE_TTL": "3600",
        "GRAPHITI_SEMAPHORE_LIMIT": "10",
        "MAX_ASYNC_WORKERS": "20",
        "RUN_BACKGROUND_WORKERS": "true",
        "QUEUE_BATCH_SIZE": "1",
        "ENABLE_METRICS": "true",
        "METRICS_PORT": str(METRICS_PORT),
        "ENABLE_TELEMETRY": "true",
        "SERVICE_NAME": "memstack",
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": inputs.namespace}, "data": data}


# Upstream's non-secret settings; every other key is a credential and gets a placeholder.
SECRET_SETTINGS = {"ALGORITHM": "HS256", "ACCESS_TOKEN_EXPIRE_MINUTES": "30", "LLM_PROVIDER": "gemini"}
SECRET_KEYS = (
    "NEO4J_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY",
    "ALGORITHM", "ACCESS_TOKEN_EXPIRE_MINUTES", "LLM_PROVIDER",
    "GEMINI_API_KEY", "DASHSCOPE_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ZAI_API_KEY", "TAVILY_API_KEY",
    "LLM_ENCRYPTION_KEY",
)


def secret(inputs: ManifestInputs) -> dict[str, Any]:
    """``memstack-secrets`` (Opaque, ``stringData``) with placeholder credentials."""
    placeholders = {"LLM_ENCRYPTION_KEY": f"{PLACEHOLDER}-64-hex-chars"}
    data = {key: SECRET_SETTINGS.get(key, placeholders.get(key, PLACEHOLDER)) for key in SECRET_KEYS}
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": inputs.namespace}, "type": "Opaque", "stringData": data}


def ingress(inputs: ManifestInputs) -> dict[str, Any]:
    """The nginx Ingress; ``proxy-read-timeout`` is the simulated client timeout in whole seconds."""
    read_timeout = str(math.ceil(inputs.ingress_timeout_s - 1e-9))
    annotations = {
        f"{NGINX}rewrite-target": "/",
        f"{NGINX}ssl-redirect": "true",
        f"{NGINX}proxy-body-size": "50m",
        f"{NGINX}proxy-connect-timeout": "60",
        f"{NGINX}proxy-send-timeout": "60",
        f"{NGINX}proxy-read-timeout": read_timeout,
        # Streaming responses (SSE) must not be buffered or cached.
        f"{NGINX}proxy-buffering": "off",
        f"{NGINX}proxy-cache": "off",
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": f"{APP}-ingress", "namespace": inputs.namespace, "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [INGRESS_HOST], "secretName": f"{APP}-tls"}],
            "rules": [{"host": INGRESS_HOST, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": object_name("api"), "port": {"number": 80}}},
            }]}}],
        },
    }


def service_monitor(role: str, inputs: ManifestInputs) -> dict[str, Any]:
    """A ServiceMonitor on the role's ``metrics`` port (the worker's selects no Service, as upstream)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": object_name(role), "namespace": inputs.namespace, "labels": labels(role)},
        "spec": {
            "selector": {"matchLabels": labels(role)},
            "endpoints": [{"port": "metrics", "interval": "30s", "path": "/metrics", "scheme": "http"}],
        },
    }


def _rule(alert: str, expr: str, for_: str, severity: str) -> dict[str, Any]:
    return {"alert": alert, "expr": expr, "for": for_, "labels": {"severity": severity}}


def prometheus_rule(inputs: ManifestInputs) -> dict[str, Any]:
    """``memstack-alerts``: upstream's seven rules in three groups (the worker group only with a worker)."""
    ns = inputs.namespace
    api_job = f'job="{object_name("api")}"'
    worker_job = f'job="{object_name("worker")}"'
    groups = [
        {"name": "memstack_api", "interval": "30s", "rules": [
            # Upstream's threshold is 0.05 failed requests per second, not a 5 % ratio.
            _rule("MemStackAPIHighErrorRate", f'rate(http_requests_total{{{api_job},status=~"5.."}}[5m]) > 0.05',
                  "5m", "warning"),
            _rule("MemStackAPIHighLatency",
                  f"histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{{{api_job}}}[5m])) > 1",
                  "10m", "warning"),
            _rule("MemStackAPINotReady", f"up{{{api_job}}} == 0", "2m", "critical"),
        ]},
        {"name": "memstack_worker", "interval": "30s", "rules": [
            _rule("MemStackWorkerNotReady", f"up{{{worker_job}}} == 0", "5m", "warning"),
            _rule("MemStackWorkerQueueFull",
                  f"memstack_queue_size{{{worker_job}}} / memstack_queue_max_size{{{worker_job}}} > 0.9",
                  "5m", "warning"),
        ]},
        {"name": "memstack_resources", "interval": "30s", "rules": [
            _rule("MemStackHighMemoryUsage",
                  f'container_memory_usage_bytes{{namespace="{ns}"}}'
                  f' / container_spec_memory_limit_bytes{{namespace="{ns}"}} > 0.9',
                  "10m", "warning"),
            # Cores per container, not a percentage (upstream as written).
            _rule("MemStackHighCPUUsage", f'rate(container_cpu_usage_seconds_total{{namespace="{ns}"}}[5m]) > 0.8',
                  "10m", "warning"),
        ]},
    ]
    if inputs.worker is None:
        groups = [group for group in groups if group["name"] != "memstack_worker"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": f"{APP}-alerts", "namespace": ns, "labels": {"app": APP}},
        "spec": {"groups": groups},
    }


def monitoring_objects(inputs: ManifestInputs) -> list[dict[str, Any]]:
    """The ServiceMonitors and the PrometheusRule, in upstream order."""
    roles = ["api"] + (["worker"] if inputs.worker is not None else [])
    return [*(service_monitor(role, inputs) for role in roles), prometheus_rule(inputs)]
