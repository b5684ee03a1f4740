"""Shared builders for the datastore tests (not a test module itself: no test functions)."""

from __future__ import annotations

import copy

from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import finish, start_model
from memstack_capacity.scenario.load import parse_scenario

BASE = {
    "name": "ds",
    "duration": "600s",
    "warmup": "50s",
    "sample_interval": "1s",
    "workload": {
        "timeout": "1h",
        "arrivals": {"profile": [{"at": 0, "rps": 10}]},
        "requests": [{"name": "q", "weight": 1, "steps": [{"call": "postgres", "time": {"dist": "exponential", "mean": "100ms"}}]}],
    },
    "deployments": {
        "api": {
            "replicas": 1,
            "concurrency": 100000,
            "backlog": 100000,
            "resources": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": 1, "memory": "2Gi"}},
        }
    },
    "datastores": {
        "postgres": {
            "kind": "postgresql",
            "max_connections": 10000,
            "cores": 10000,
            "connect_time": 0,
            "round_trip": 0,
            "pool": {"pool_size": 5, "max_overflow": 0, "pool_timeout": "1h"},
        }
    },
}


def scenario(patch=None, **top):
    data = copy.deepcopy(BASE)
    if patch:
        patch(data)
    data.update(top)
    return parse_scenario(data)


def simulate(sc, seed: int):
    """Run a scenario to its end; returns (model, run record)."""
    model = build(sc, seed)
    start_model(model)
    model.env.run(until=sc.duration)
    return model, finish(model, 0.0, "des")


def series(model, component: str, metric: str, after: float = 0.0) -> list[float]:
    s = model.recorder.samples
    return [v for t, c, m, v in zip(s.t_s, s.component, s.metric, s.value) if c == component and m == metric and t > after]
