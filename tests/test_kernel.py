"""The per-pod kernel (engine/kernel.py) against the general engine and against theory.

One pod: the kernel consumes every random stream in the engine's order, so the request rows
and the monitor's series must be the same numbers (times to 1e-9 s). Several pods: service
times are drawn pod after pod (not interleaved by admission time), so the runs are checked
against queueing theory instead, as tests/test_engine_theory.py checks the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from memstack_capacity.theory import queueing as theory
from memstack_capacity.engine.kernel import engine as kernel
from memstack_capacity.engine.run import run
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import mean_and_se, pod_scenario

SEEDS = range(1, 6)


def _both(data: dict, seed: int = 3):
    scenario = parse_scenario(data)
    assert kernel.eligibility(scenario) == []
    return run(scenario, seed, engine="des"), run(scenario, seed, engine="kernel")


def _assert_same(des, ker):
    a, b = des.recorder.requests, ker.recorder.requests
    assert len(a) == len(b) > 0
    for col in ("cls", "status", "reason", "pod"):
        assert np.array_equal(np.asarray(getattr(a, col)), np.asarray(getattr(b, col))), col
    for col in ("t_arrival", "t_end"):
        np.testing.assert_allclose(np.asarray(getattr(b, col)), np.asarray(getattr(a, col)), rtol=0, atol=1e-9)
    sa, sb = des.recorder.samples, ker.recorder.samples
    assert list(zip(sa.t_s, sa.component, sa.metric)) == list(zip(sb.t_s, sb.component, sb.metric))
    np.testing.assert_allclose(np.asarray(sb.value), np.asarray(sa.value), rtol=1e-9, atol=1e-9)
    assert (des.arrived, des.in_flight_end) == (ker.arrived, ker.in_flight_end)
    assert des.deployments == ker.deployments
    assert (des.jobs, des.datastores, des.flow) == (ker.jobs, ker.datastores, ker.flow)
    stats_a, stats_b = getattr(des, "request_stats", None), getattr(ker, "request_stats", None)
    if stats_a is not None and hasattr(stats_a, "counts"):
        assert stats_a.counts == stats_b.counts and stats_a.reasons == stats_b.reasons
    return np.bincount(np.asarray(a.status), minlength=3)


def test_single_pod_fcfs_matches_the_engine():
    # the backlog limit is below the request count but never reached: the kernel's optimistic path
    data = pod_scenario(350, 0.01, processes=4, backlog=400, duration=120, warmup=0, sample_interval=2)
    counts = _assert_same(*_both(data))
    assert counts[0] > 30_000 and counts[1] == 0


def test_single_pod_processor_sharing_matches_the_engine():
    data = pod_scenario(95, 0.01, concurrency=8, cpu_limit=1.0, duration=120, warmup=0, sample_interval=2)
    _assert_same(*_both(data))


def test_backlog_limit_and_timeouts_match_the_engine():
    ps = pod_scenario(110, 0.01, concurrency=3, backlog=5, cpu_limit=1.0, duration=120, warmup=0, timeout=0.08)
    counts = _assert_same(*_both(ps))
    assert counts[1] > 100 and counts[2] > 100  # 503s and 504s both happen
    fcfs = pod_scenario(450, 0.01, processes=4, backlog=10, duration=120, warmup=0, timeout=0.05)
    counts = _assert_same(*_both(fcfs))
    assert counts[1] > 100 and counts[2] > 100


def test_general_pod_several_processes_sharing_matches_the_engine():
    data = pod_scenario(500, 0.01, processes=3, concurrency=4, backlog=20, duration=60, warmup=0, timeout=0.1)
    data["workload"]["requests"] = [
        {"name": "a", "weight": 3, "memory": "10Mi", "steps": [{"cpu": {"dist": "exponential", "mean": 0.01}}]},
        {"name": "b", "weight": 1, "memory": "30Mi", "steps": [{"cpu": {"dist": "lognormal", "mean": 0.004, "cv": 2}}]},
    ]
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "2Gi"
    data["workload"]["arrivals"] = {"profile": [{"at": 0, "rps": 100}, {"at": 40, "rps": 600}], "cv": 1.5}
    _assert_same(*_both(data))


def test_several_pods_keep_the_engines_arrivals_and_routing():
    for policy in ("round_robin", "random"):
        des, ker = _both(pod_scenario(300, 0.01, replicas=3, load_balancing=policy, duration=60, warmup=0))
        a, b = des.recorder.requests, ker.recorder.requests
        # the same arrivals go to the same pods; service times are another sample of the same law
        rows = []
        for log in (a, b):
            t0, pod = np.asarray(log.t_arrival), np.asarray(log.pod)
            order = np.argsort(t0)
            keep = t0[order] < 55.0  # answered in both runs
            rows.append((t0[order][keep], pod[order][keep]))
        assert len(rows[0][0]) > 15_000
        assert np.array_equal(rows[0][0], rows[1][0]) and np.array_equal(rows[0][1], rows[1][1])
        assert des.arrived == ker.arrived


# ---- several pods: theory, through the kernel ---------------------------------------------------
def _kernel_runs(data):
    scenario = parse_scenario(data)
    assert kernel.eligibility(scenario) == []
    out = []
    for seed in SEEDS:
        rec = run(scenario, seed, engine="kernel")
        log = rec.recorder.requests
        t0, t1 = np.asarray(log.t_arrival), np.asarray(log.t_end)
        keep = t0 >= scenario.warmup
        out.append((t0[keep], t1[keep] - t0[keep], np.asarray(log.status)[keep], np.asarray(log.pod)[keep]))
    return out


def _check(values, expected, max_rel_se=0.03):
    mean, se = mean_and_se(values)
    assert se < max_rel_se * expected
    assert abs(mean - expected) < 4 * se + 1e-12, (mean, expected, se)


def test_kernel_mm1_and_erlang_c():
    lam, mu = 70.0, 100.0
    _check([lat.mean() for _, lat, _, _ in _kernel_runs(pod_scenario(lam, 1 / mu))], 1.0 / (mu - lam))
    lam, c = 320.0, 4
    runs = _kernel_runs(pod_scenario(lam, 1 / mu, processes=c))
    _check([lat.mean() for _, lat, _, _ in runs], theory.mmc(lam, mu, c).w_s)


def test_kernel_limited_processor_sharing_with_backlog():
    lam, mean_s, k, backlog = 95.0, 0.01, 3, 5
    runs = _kernel_runs(pod_scenario(lam, mean_s, concurrency=k, backlog=backlog, cpu_limit=1.0))
    expected = theory.limited_processor_sharing(lam, mean_s, max_in_service=k, max_in_system=k + backlog)
    _check([float((s == 1).mean()) for _, _, s, _ in runs], expected.blocking_probability, max_rel_se=0.05)
    _check([lat[s == 0].mean() for _, lat, s, _ in runs], expected.mean_response_s)


def test_kernel_random_splitting_and_round_robin():
    lam, mu = 210.0, 100.0
    runs = _kernel_runs(pod_scenario(lam, 1 / mu, replicas=3, load_balancing="random"))
    _check([lat.mean() for _, lat, _, _ in runs], 1.0 / (mu - lam / 3))
    for _, _, _, pod in runs:
        assert np.allclose(np.bincount(pod, minlength=3) / len(pod), 1 / 3, atol=0.01)
    rr = _kernel_runs(pod_scenario(lam, 1 / mu, replicas=3))
    assert np.mean([lat.mean() for _, lat, _, _ in rr]) < 0.9 / (mu - lam / 3)


# ---- eligibility ----------------------------------------------------------------------------------
def _set(path, value):
    def change(data):
        node = data
        *head, last = path.split(".")
        for key in head:
            node = node[key]
        node[last] = value
    return change


def _closed(data):
    data["workload"].pop("arrivals")
    data["workload"]["users"] = {"profile": [{"at": 0, "users": 5}], "think_time": {"dist": "exponential", "mean": 1}}


def _two_steps(data):
    data["workload"]["requests"][0]["steps"] = [{"cpu": 0.01}, {"cpu": 0.01}]


def _repeat(data):
    data["workload"]["requests"][0]["steps"][0]["repeat"] = 2


def _datastore(data):
    data["datastores"] = {"db": {"kind": "postgresql"}}
    data["workload"]["requests"][0]["steps"].append({"call": "db", "time": 0.001})


def _event(data):
    data["events"] = [{"at": 10, "traffic_spike": {"factor": 2, "duration": 10}}]


def _hpa(data):
    data["deployments"]["api"]["hpa"] = {
        "minReplicas": 1, "maxReplicas": 3,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
    }


def _oom(data):
    data["workload"]["requests"][0]["memory"] = "1Gi"
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "2Gi"
    data["deployments"]["api"]["concurrency"] = 4


def _worker(data):
    data["deployments"]["worker"] = dict(data["deployments"]["api"])


FALLBACKS = {
    "closed users": _closed,
    "two cpu steps": _two_steps,
    "a repeated cpu step": _repeat,
    "datastores": _datastore,
    "events": _event,
    "hpa": _hpa,
    "least_request": _set("deployments.api.load_balancing", "least_request"),
    "ewma": _set("deployments.api.load_balancing", "ewma"),
    "readiness probe": _set("deployments.api.readinessProbe", {"periodSeconds": 5}),
    "liveness probe": _set("deployments.api.livenessProbe", {"periodSeconds": 5}),
    "cpu limit below processes": _set("deployments.api.resources.limits.cpu", 1.0),
    "possible OOM": _oom,
    "no replicas": _set("deployments.api.replicas", 0),
    "unschedulable pods": _set("deployments.api.replicas", 200),
    "another deployment": _worker,
    "node autoscaler": lambda data: data.update(cluster={"node_autoscaler": {"max_nodes": 10}}),
}


@pytest.mark.parametrize("feature", sorted(FALLBACKS))
def test_every_ineligible_feature_falls_back(feature):
    data = pod_scenario(50, 0.01, processes=2, duration=20, warmup=0)
    assert kernel.eligibility(parse_scenario(data)) == []
    FALLBACKS[feature](data)
    scenario = parse_scenario(data)
    assert kernel.eligibility(scenario), feature
    with pytest.raises(ScenarioError, match="the per-pod kernel does not model"):
        run(scenario, 1, engine="kernel")
    rec = run(scenario, 1)  # auto: the general engine
    assert rec.arrived == len(rec.recorder.requests) + rec.in_flight_end


def test_engine_choice_is_checked_and_des_can_be_forced():
    scenario = parse_scenario(pod_scenario(50, 0.01, duration=20, warmup=0))
    with pytest.raises(ValueError, match="engine must be"):
        run(scenario, 1, engine="turbo")
    des = run(scenario, 1, engine="des")
    ker = run(scenario, 1)
    assert (des.engine, ker.engine) == ("des", "kernel")
    _assert_same(des, ker)
