"""The batched data plane (engine/hybrid.py) against the general engine.

One pod: the batched plane consumes every random stream in the general engine's order
(arrivals, classes, service times at admission), and its control plane is the general
engine's, so the request rows, the monitor's series and the pod events must be the same —
with probes running through the pod's CPU and answered at their instant, with a backlog
that fills (503) and clients that time out (504). Several pods with an autoscaler: service
times are drawn pod by pod between control events, so the runs are other samples of the same
model; they are compared with the general engine over seeds, and the per-pod queues with
theory.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from memstack_capacity.theory import queueing as theory
from memstack_capacity.engine.hybrid import engine as hybrid
from memstack_capacity.engine.run import run
from memstack_capacity.errors import ScenarioError
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import mean_and_se, pod_scenario

PROBES = {
    "readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3},
    "livenessProbe": {"initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3},
}


def _both(data: dict, seed: int = 3):
    scenario = parse_scenario(data)
    assert hybrid.eligibility(scenario) == []
    return run(scenario, seed, engine="des"), run(scenario, seed, engine="hybrid")


def _assert_same(des, hyb, atol: float = 1e-9):
    """Rows, samples, events and counts equal; times to 1e-9 s (samples to 1e-9 relative), or to
    `atol` seconds (and 10 × `atol` relative for the samples' latency figures) where hundreds of
    requests share a core (the general engine's lazy timer also updates a process's virtual time
    when it fires early, a different order of the same float additions, amplified by the number
    in service)."""
    assert hyb.engine == "hybrid" and des.engine == "des"
    a, b = des.recorder.requests, hyb.recorder.requests
    assert len(a) == len(b) > 0
    for col in ("cls", "status", "reason", "pod"):
        assert np.array_equal(np.asarray(getattr(a, col)), np.asarray(getattr(b, col))), col
    for col in ("t_arrival", "t_end"):
        np.testing.assert_allclose(np.asarray(getattr(b, col)), np.asarray(getattr(a, col)), rtol=0, atol=atol)
    sa, sb = des.recorder.samples, hyb.recorder.samples
    assert list(zip(sa.t_s, sa.component, sa.metric)) == list(zip(sb.t_s, sb.component, sb.metric))
    np.testing.assert_allclose(np.asarray(sb.value), np.asarray(sa.value), rtol=max(10 * atol, 1e-9), atol=1e-9)
    assert (des.arrived, des.in_flight_end) == (hyb.arrived, hyb.in_flight_end)
    assert des.deployments == hyb.deployments
    ea, eb = des.recorder.pod_events, hyb.recorder.pod_events
    assert [(e.pod, e.event, e.detail) for e in ea] == [(e.pod, e.event, e.detail) for e in eb]
    np.testing.assert_allclose([e.t_s for e in eb], [e.t_s for e in ea], rtol=0, atol=atol)
    assert des.request_stats.counts == hyb.request_stats.counts
    assert des.request_stats.reasons == hyb.request_stats.reasons
    return np.bincount(np.asarray(a.status), minlength=3)


def test_single_pod_processor_sharing_matches_the_engine():
    data = pod_scenario(95, 0.01, concurrency=8, cpu_limit=1.0, duration=120, warmup=0, sample_interval=2)
    _assert_same(*_both(data))


def test_single_pod_with_probes_matches_the_engine():
    # the probes' CPU work shares the process with the requests; each is answered at its instant
    data = pod_scenario(90, 0.01, concurrency=50, cpu_limit=1.0, duration=180, warmup=0, sample_interval=2)
    data["deployments"]["api"].update(PROBES)
    _assert_same(*_both(data))


def test_overload_death_spiral_matches_the_engine():
    # ρ = 1.4 on one process: probes time out behind the load, the pod leaves the endpoints
    # (503 no_endpoints), liveness restarts the container (502), it comes back, and again
    data = pod_scenario(140, 0.01, concurrency=2000, backlog=50, cpu_limit=1.0, duration=300, warmup=0, timeout=2.0)
    data["deployments"]["api"].update(copy.deepcopy(PROBES))
    data["deployments"]["api"]["livenessProbe"]["failureThreshold"] = 1
    data["deployments"]["api"]["startup"] = "3s"
    des, hyb = _both(data)
    counts = _assert_same(des, hyb, atol=1e-7)
    assert counts[1] > 100 and counts[2] > 100  # 503s and 504s
    events = [e.event for e in hyb.recorder.pod_events]
    assert "NotReady" in events and "Unhealthy" in events and events.count("Ready") >= 1
    assert 3 in np.asarray(hyb.recorder.requests.status)  # 502: requests held by the restarted container


def test_several_processes_backlog_and_timeouts_match_the_engine():
    data = pod_scenario(500, 0.01, processes=3, concurrency=4, backlog=20, duration=60, warmup=0, timeout=0.1)
    data["workload"]["requests"] = [
        {"name": "a", "weight": 3, "memory": "10Mi", "steps": [{"cpu": {"dist": "exponential", "mean": 0.01}}]},
        {"name": "b", "weight": 1, "memory": "30Mi", "steps": [{"cpu": {"dist": "lognormal", "mean": 0.004, "cv": 2}}]},
    ]
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "2Gi"
    data["deployments"]["api"].update(PROBES)
    data["workload"]["arrivals"] = {"profile": [{"at": 0, "rps": 100}, {"at": 40, "rps": 600}], "cv": 1.5}
    counts = _assert_same(*_both(data))
    assert counts[1] > 0 and counts[2] > 0


def test_spike_kill_and_rollout_match_the_engine():
    """A traffic spike (folded into the arrival profile), a pod killed (no endpoint until its
    replacement is Ready: 503 no_endpoints) and a rolling update, on one pod: the same rows,
    samples and pod events as the general engine."""
    data = pod_scenario(60, 0.01, concurrency=100, cpu_limit=1.0, duration=240, warmup=0, sample_interval=2)
    api = data["deployments"]["api"]
    api.update(PROBES)
    api.update({"image_pull": "2s", "startup": "2s", "terminationGracePeriodSeconds": 5})
    data["events"] = [
        {"at": 20, "traffic_spike": {"factor": 1.5, "duration": 30, "ramp": 5}},
        {"at": 70, "pod_kill": {"deployment": "api", "count": 1}},
        {"at": 150, "rolling_update": "api"},
    ]
    des, hyb = _both(data)
    counts = _assert_same(des, hyb)
    assert counts[1] > 0  # the gap without endpoints
    events = [e.event for e in hyb.recorder.pod_events]
    assert "Killing" in events and "RolloutComplete" in events


def _autoscaled() -> dict:
    """A ramp from 100 to 500 req/s into an HPA-scaled API with probes (10 ms of CPU per request)."""
    data = pod_scenario(100, 0.01, concurrency=200, cpu_limit=2.0, duration=600, warmup=120, sample_interval=5)
    api = data["deployments"]["api"]
    api.update(PROBES)
    api.update({"replicas": 2, "image_pull": "5s", "startup": "5s", "memory_base": "100Mi"})
    api["resources"]["limits"]["memory"] = "2Gi"
    api["hpa"] = {
        "minReplicas": 2,
        "maxReplicas": 20,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
    }
    data["workload"]["arrivals"] = {"profile": [{"at": 0, "rps": 100}, {"at": 200, "rps": 500}, {"at": 600, "rps": 500}]}
    return data


def test_autoscaled_run_agrees_with_the_engine_over_seeds():
    """HPA, probes, pods starting: the same model, other samples. Per seed the replica counts
    are one apart at most in 90 % of the samples (measured: 97–100 %, equal in 82–100 %); over
    five seeds the mean and p99 latency agree within 4 standard errors (measured: mean 11.138
    vs 11.137 ms, SE 0.03; p99 60.6 vs 60.7 ms, SE 0.3)."""
    scenario = parse_scenario(_autoscaled())
    assert hybrid.eligibility(scenario) == []
    figures = {(e, k): [] for e in ("des", "hybrid") for k in ("mean", "p99")}
    for seed in range(1, 6):
        runs = {e: Result(run(scenario, seed, engine=e)) for e in ("des", "hybrid")}
        reps = {e: r.series["api/replicas_desired"].to_numpy() for e, r in runs.items()}
        assert np.mean(np.abs(reps["des"] - reps["hybrid"]) <= 1) >= 0.9
        assert reps["hybrid"].max() >= 12  # it did scale
        for e, r in runs.items():
            for k in ("mean", "p99"):
                figures[(e, k)].append(r.summary["requests"]["latency_s"][k])
    for k in ("mean", "p99"):
        (m_d, se_d), (m_h, se_h) = mean_and_se(figures[("des", k)]), mean_and_se(figures[("hybrid", k)])
        assert se_h < 0.02 * m_h
        assert abs(m_h - m_d) < 4 * np.hypot(se_d, se_h)


def test_no_probe_is_answered_late():
    _model, plane = hybrid.run_model(parse_scenario(_autoscaled()), 2)
    assert plane.late_probes == 0


@pytest.mark.parametrize("policy", ["round_robin", "random"])
def test_several_pods_against_erlang_c_and_random_splitting(policy):
    """Four FCFS pods (M/M/1 each under random splitting; round robin is smoother): the mean
    response is the M/M/1 value for random splitting, below it for round robin (5 seeds)."""
    data = pod_scenario(280, 0.01, replicas=4, duration=300, warmup=30, load_balancing=policy)
    data["deployments"]["api"].update(PROBES)
    means = []
    for seed in range(1, 6):
        r = Result(run(parse_scenario(data), seed, engine="hybrid"))
        means.append(r.summary["requests"]["latency_s"]["mean"])
    m, se = mean_and_se(means)
    mm1 = theory.mmc(70.0, 100.0, 1).w_s
    assert se < 0.03 * m
    if policy == "random":
        assert abs(m - mm1) < 4 * se + 0.002 * mm1  # probes add 0.5 ms every 5 s: negligible
    else:
        assert m < mm1 - 4 * se


def test_eligibility_names_what_it_cannot_take():
    data = pod_scenario(10, 0.01)
    data["deployments"]["api"]["load_balancing"] = "least_request"
    data["deployments"]["api"]["resources"]["limits"]["memory"] = "600Mi"
    data["deployments"]["api"]["concurrency"] = 1000
    data["workload"]["requests"][0]["memory"] = "1Mi"
    data["events"] = [{"at": 5, "pod_kill": {"deployment": "api"}}, {"at": 6, "node_failure": {"count": 1}}]
    why = hybrid.eligibility(parse_scenario(data))
    assert any("least_request" in w for w in why) and any("OOM" in w for w in why)
    assert any("node_failure" in w for w in why) and not any("pod_kill" in w for w in why)  # pod_kill is taken
    with pytest.raises(ScenarioError, match="the batched data plane does not model"):
        run(parse_scenario(data), 1, engine="hybrid")


def test_bulk_answers_keep_the_rows_a_sampled_log_keeps():
    """record_answers appends a batch to a log that keeps every 3rd row: the same rows, in the
    same order, as RequestLog.add one by one (the batches straddle the stride)."""
    from types import SimpleNamespace

    from memstack_capacity.components.recorder import RequestLog
    from memstack_capacity.engine.kernel.series import record_answers

    rng = np.random.default_rng(7)
    one_by_one, bulk = RequestLog(every=3), RequestLog(every=3)
    model = SimpleNamespace(recorder=SimpleNamespace(requests=bulk), ingress=SimpleNamespace(stats=None))
    for size in (1, 2, 5, 7, 0, 11):
        t0 = np.sort(rng.random(size))
        ans = SimpleNamespace(cls=rng.integers(0, 3, size), t0=t0, t_end=t0 + rng.random(size),
                              status=rng.integers(0, 5, size), reason=rng.integers(0, 12, size), pod=rng.integers(-1, 4, size))
        record_answers(model, ans)
        for row in zip(ans.cls.tolist(), ans.t0.tolist(), ans.t_end.tolist(), ans.status.tolist(), ans.reason.tolist(), ans.pod.tolist()):
            one_by_one.add(*row)
    assert bulk.seen == one_by_one.seen == 26 and len(bulk) == len(one_by_one) == 8
    for col in ("cls", "t_arrival", "t_end", "status", "reason", "pod"):
        assert list(getattr(bulk, col)) == list(getattr(one_by_one, col)), col


def test_pod_deleted_while_a_probe_runs_matches_the_engine():
    """The HPA deletes an idle pod 0.1 ms after its readiness probe started: the probe does not
    hold the drain (the pod is Gone at once, as in the general engine), and it still finishes on
    the discarded processes and reaches its prober. A constant service time makes the two-pod run
    the general engine's exactly (no service draws to interleave)."""
    data = pod_scenario(2, 0.01, replicas=2, duration=40, warmup=0, service_dist="constant")
    api = data["deployments"]["api"]
    api["readinessProbe"] = {"initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 1}
    api["hpa"] = {
        "minReplicas": 1,
        "maxReplicas": 2,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
    }
    data["cluster"] = {"hpa_sync_period": 14.0001, "control_loops": "aligned"}  # syncs at 1, 15.0001: inside the probe started at 15
    des, hyb = _both(data)
    _assert_same(des, hyb)
    killed = [e for e in hyb.recorder.pod_events if e.event in ("Killing", "Deleted")]
    assert [(e.event, round(e.t_s, 4)) for e in killed] == [("Killing", 15.0001), ("Deleted", 15.0001)]
    # the kubelet stops probing a terminating pod: its late answer makes nothing Ready again
    victim = killed[0].pod
    after = [e.event for e in hyb.recorder.pod_events if e.pod == victim and e.t_s >= killed[0].t_s]
    assert "Ready" not in after
