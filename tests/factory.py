"""Small scenarios for the engine tests, built as dicts (the same shape as YAML)."""

from __future__ import annotations

import copy

import numpy as np

from memstack_capacity import simulate
from memstack_capacity.scenario.load import parse_scenario


def pod_scenario(
    rate: float,
    mean_service: float,
    *,
    processes: int = 1,
    concurrency: int = 1,
    backlog: int = 100000,
    replicas: int = 1,
    cpu_limit: float | None = None,
    duration: float = 600.0,
    warmup: float = 60.0,
    load_balancing: str = "round_robin",
    service_dist: str = "exponential",
    timeout: float = 3600.0,
    sample_interval: float = 5.0,
    name: str = "pod",
) -> dict:
    """An open Poisson stream into `replicas` fixed pods whose requests need one cpu step."""
    limit = cpu_limit if cpu_limit is not None else float(processes)
    return {
        "name": name,
        "duration": duration,
        "warmup": warmup,
        "sample_interval": sample_interval,
        "workload": {
            "arrivals": {"profile": [{"at": 0, "rps": rate}]},
            "timeout": timeout,
            "requests": [{"name": "r", "weight": 1, "steps": [{"cpu": {"dist": service_dist, "mean": mean_service}}]}],
        },
        "deployments": {
            "api": {
                "replicas": replicas,
                "processes": processes,
                "concurrency": concurrency,
                "backlog": backlog,
                "load_balancing": load_balancing,
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"cpu": limit, "memory": "64Gi"},
                },
            }
        },
    }


def closed_scenario(users: int, think: float, mean_service: float, *, duration=600.0, warmup=60.0, **pod) -> dict:
    data = pod_scenario(1.0, mean_service, duration=duration, warmup=warmup, **pod)
    data["workload"].pop("arrivals")
    data["workload"]["users"] = {
        "profile": [{"at": 0, "users": users}],
        "think_time": {"dist": "exponential", "mean": think},
    }
    return data


def with_changes(data: dict, **changes) -> dict:
    out = copy.deepcopy(data)
    out.update(changes)
    return out


def run_seeds(data: dict, seeds, engine: str = "auto") -> list:
    """Simulate the scenario once per seed; checks conservation on every run."""
    scenario = parse_scenario(data)
    results = []
    for seed in seeds:
        result = simulate(scenario, seed=seed, engine=engine)
        assert_conservation(result)
        results.append(result)
    return results


def assert_conservation(result) -> None:
    """Every request that arrived was answered (OK or an error) or is still in flight."""
    rec = result.record
    answered = len(rec.recorder.requests)
    assert rec.arrived == answered + rec.in_flight_end, (rec.arrived, answered, rec.in_flight_end)
    assert rec.in_flight_end >= 0


def mean_and_se(values) -> tuple[float, float]:
    """Mean across independent replications and its standard error."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1) / np.sqrt(len(arr)))


def measured(result):
    """Requests that arrived after the warm-up."""
    frame = result.requests
    return frame[frame["t_arrival_s"] >= result.scenario.warmup]
