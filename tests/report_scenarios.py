"""Small scenarios for the report, plot, alert and capacity tests (built as dicts, validated by the loader)."""

from __future__ import annotations

import copy

from memstack_capacity.scenario.load import parse_scenario

BASE = {
    "name": "tiny",
    "seed": 1,
    "duration": "3m",
    "warmup": "20s",
    "sample_interval": "5s",
    "workload": {
        "arrivals": {"profile": [{"at": 0, "rps": 20}]},
        "timeout": "30s",
        "requests": [
            {"name": "search", "weight": 0.6, "memory": "8Mi", "steps": [{"cpu": {"dist": "exponential", "mean": "20ms"}}]},
            {"name": "add", "weight": 0.4, "steps": [{"cpu": {"dist": "exponential", "mean": "10ms"}}]},
        ],
    },
    "deployments": {
        "api": {
            "replicas": 2,
            "processes": 1,
            "concurrency": 100,
            "memory_base": "350Mi",
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        }
    },
    "targets": {"latency_p99": {"max": "1s"}, "error_rate": {"max": 0.01}},
}


def scenario(**changes):
    """BASE with dotted-path changes, e.g. ``scenario(**{"deployments.api.processes": 2})``."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return parse_scenario(data)
