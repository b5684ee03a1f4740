"""Invariants of the engine over small random scenarios (hypothesis), and determinism.

For any scenario: every request that arrived is answered exactly once or still in flight
(conservation; no request lost or counted twice); latencies are non-negative and answers come
after arrivals; OK answers never exceed the client timeout; a pod's CPU use never exceeds
min(processes, limits.cpu) cores; replicas stay fixed without an HPA; the same seed gives
bit-for-bit identical outputs.
"""

from __future__ import annotations

import filecmp
import hashlib

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstack_capacity import simulate
from memstack_capacity.cli import main
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import assert_conservation, closed_scenario, pod_scenario


@st.composite
def small_scenarios(draw):
    processes = draw(st.integers(1, 3))
    concurrency = draw(st.integers(1, 4))
    replicas = draw(st.integers(1, 3))
    mean = draw(st.floats(0.002, 0.05))
    capacity = replicas * processes / mean
    load = draw(st.floats(0.2, 1.5))
    kwargs = dict(
        processes=processes,
        concurrency=concurrency,
        replicas=replicas,
        backlog=draw(st.integers(0, 50)),
        cpu_limit=draw(st.sampled_from([None, 0.5, 1.0, 2.0])),
        load_balancing=draw(st.sampled_from(["round_robin", "random", "least_request", "ewma"])),
        service_dist=draw(st.sampled_from(["exponential", "constant"])),
        timeout=draw(st.sampled_from([0.5, 5.0, 60.0])),
        duration=60.0,
        warmup=5.0,
    )
    if draw(st.booleans()):
        data = closed_scenario(draw(st.integers(1, 60)), draw(st.floats(0.05, 1.0)), mean, **kwargs)
    else:
        data = pod_scenario(load * capacity, mean, **kwargs)
    memory = draw(st.sampled_from([0, 1, 64]))  # MiB per request; 64 can OOMKill a pod with 1Gi
    data["workload"]["requests"][0]["memory"] = f"{memory}Mi"
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "1Gi"
    data["deployments"]["api"]["memory_base"] = "300Mi"
    return data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=small_scenarios(), seed=st.integers(0, 2**20))
def test_invariants_hold_on_random_scenarios(data, seed):
    scenario = parse_scenario(data)
    result = simulate(scenario, seed=seed)
    assert_conservation(result)
    requests = result.requests
    assert (requests.latency_s >= 0).all()
    ok = requests[requests.status == "ok"]
    assert (ok.latency_s <= scenario.workload.timeout + 1e-9).all()
    timeouts = requests[requests.status == "504"]
    assert np.allclose(timeouts.latency_s, scenario.workload.timeout)
    series = result.series
    api = scenario.deployments["api"]
    limit = api.resources.limits.cpu if api.resources.limits.cpu is not None else np.inf
    # CFS: a window of W seconds can hold the quota of one more period than W / period (its
    # boundaries are not the periods'), so a pod's CPU over a sample is at most limit × (1 + P / W).
    period = scenario.cluster.cpu_cfs_quota_period
    per_pod_max = min(api.processes, limit * (1.0 + period / scenario.sample_interval))
    cores = series["api/cpu_cores"].to_numpy()
    assert (cores <= per_pod_max * api.replicas + 1e-6).all()
    assert (series["api/replicas_desired"] == api.replicas).all()
    utilisation = series["api/cpu_utilization"].dropna().to_numpy()
    assert (utilisation >= -1e-9).all()
    assert set(requests.status.astype(str)) <= {"ok", "503", "504", "502"}
    if (requests.reason == "oom_killed").any():
        assert result.summary["deployments"]["api"]["oom_kills"] > 0


def _frames_equal(a, b) -> None:
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries, check_exact=True)
    pd.testing.assert_frame_equal(a.scaling, b.scaling, check_exact=True)
    assert a.summary == b.summary


def test_same_seed_same_results_bit_for_bit():
    data = pod_scenario(150.0, 0.01, replicas=2, processes=2, concurrency=3, duration=120.0, load_balancing="random")
    scenario = parse_scenario(data)
    first, second = simulate(scenario, seed=11), simulate(scenario, seed=11)
    _frames_equal(first, second)
    other = simulate(scenario, seed=12)
    assert not first.requests["t_arrival_s"].equals(other.requests["t_arrival_s"])


def test_run_outputs_are_identical_files(tmp_path):
    """`run` twice with the same seed writes byte-identical data files (gzip without a timestamp)."""
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump(pod_scenario(80.0, 0.01, duration=60.0, warmup=10.0, name="det")))
    for out in ("a", "b"):
        assert main(["run", str(path), "--out", str(tmp_path / out), "--seed", "3"]) == 0
    for name in ("summary.json", "timeseries.csv", "requests.csv.gz", "scaling.csv", "pods.csv"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
    digest = hashlib.sha256((tmp_path / "a" / "requests.csv.gz").read_bytes()).hexdigest()
    assert len(digest) == 64


def test_adding_a_request_class_does_not_shift_another_components_stream():
    """Streams are per named component (model.md §1): a new class leaves the arrival times alone."""
    base = pod_scenario(100.0, 0.01, duration=60.0, warmup=10.0)
    wider = pod_scenario(100.0, 0.01, duration=60.0, warmup=10.0)
    wider["workload"]["requests"].append({"name": "extra", "weight": 0.0, "steps": [{"cpu": 0.001}]})
    a = simulate(parse_scenario(base), seed=5).requests
    b = simulate(parse_scenario(wider), seed=5).requests
    assert np.array_equal(np.sort(a.t_arrival_s.to_numpy()), np.sort(b.t_arrival_s.to_numpy()))
