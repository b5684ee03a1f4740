"""The worker tier: Temporal task-queue semantics checked against theory and by hand.

References:
* M/M/c: Kleinrock, *Queueing Systems* Vol. 1 §3.5; Gross & Harris, *Fundamentals of
  Queueing Theory* §2.3 (sojourn time of FIFO M/M/c: ``T = Wq + S`` with ``Wq`` zero
  with probability ``1 − C`` and else exponential with rate ``cμ − λ``, independent of
  the exponential service ``S``; so ``P(T > t) = (1 − C)e^{−μt} + C(a e^{−μt} − μ e^{−at})/(a − μ)``
  with ``a = cμ − λ``).
* Temporal RetryPolicy (docs.temporal.io, "Retry Policies"): the wait before the retry
  after attempt ``n`` is ``initial_interval × backoff_coefficient^(n−1)``, capped at
  ``maximum_interval``; at most ``maximum_attempts`` attempts.
* Temporal activity timeouts (docs.temporal.io, "Detecting Activity failures"): the
  server does not detect a worker's death; an attempt whose worker died is timed out at
  its start-to-close deadline (or heartbeat timeout), and a timed-out activity is not
  stopped on the worker unless it heartbeats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from memstack_capacity.components.recorder import E504, OK, REASON_CODE
from memstack_capacity.components.workers import retry_delay
from memstack_capacity.engine.des.run import finish, start_model
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.run import run
from memstack_capacity.scenario.load import parse_scenario
from memstack_capacity.theory.queueing import mmc


def scenario(rps=0.0, job=None, worker=None, duration=100.0, seed=1, warmup=0.0):
    """An open workload whose one request enqueues job `ep`, an API and a worker deployment, on
    nodes with a core for every worker process (so the node's cores are never shared)."""
    job = {"name": "ep", "steps": [{"cpu": {"dist": "constant", "mean": 10}}], **(job or {})}
    worker = {
        "replicas": 1, "processes": 1, "concurrency": 1, "consumes": ["ep"],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": 1, "memory": "2Gi"}},
        **(worker or {}),
    }
    return parse_scenario({
        "name": "workers", "seed": seed, "duration": duration, "warmup": warmup,
        "workload": {
            "arrivals": {"profile": [{"at": 0, "rps": rps}]},
            "requests": [{"name": "ingest", "weight": 1,
                          "steps": [{"cpu": {"dist": "constant", "mean": 1e-6}}, {"enqueue": "ep"}]}],
            "jobs": [job],
        },
        "cluster": {"node": {"cpu": max(8, worker["processes"] + 1), "memory": "32Gi"}},
        "deployments": {
            "api": {"replicas": 1, "concurrency": 1000,
                    "resources": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": 1, "memory": "2Gi"}}},
            "worker": worker,
        },
    })


class Harness:
    """A built model driven by hand: enqueue jobs and break pods at chosen times."""

    def __init__(self, sc, seed=1):
        self.model = build(sc, seed)
        self.env = self.model.env
        self.tier = self.model.jobs
        self.worker = self.model.runtimes["worker"]
        self.starts = []  # (time, job, attempt, pod index) of every attempt start
        self.ready_at_start = []  # (time, pod index, the pod was serving and up)
        original = self.tier._start

        def recording_start(task, pod):
            self.starts.append((self.env.now, task.owner, task.attempt, pod.index))
            ok = pod.serving and pod.container_up and not pod.deleting and pod.inflight < 4
            self.ready_at_start.append((self.env.now, pod.index, ok))
            original(task, pod)

        self.tier._start = recording_start
        start_model(self.model)

    def at(self, t, fn):
        def proc():
            yield self.env.timeout(t - self.env.now)
            fn()

        self.env.process(proc())

    def run(self, until):
        self.env.run(until=until)
        return finish(self.model, 0.0, "des")

    def pod(self, index):
        return next(p for p in self.worker.pods if p.index == index)


# ---- M/M/c ---------------------------------------------------------------------------------------
LAM, MU, C = 21.0, 10.0, 3


def _sojourn_tail(t):
    a = C * MU - LAM
    p_wait = mmc(LAM, MU, C).p_wait
    return (1 - p_wait) * math.exp(-MU * t) + p_wait * (a * math.exp(-MU * t) - MU * math.exp(-a * t)) / (a - MU)


def _sojourn_quantile(p):
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sojourn_tail(mid) > 1 - p else (lo, mid)
    return lo


def test_single_worker_pod_with_c_slots_is_mmc():
    """processes: c, concurrency: 1, limits.cpu: c ⇒ each job alone on a core; FIFO queue ⇒ M/M/c."""
    warmup = 100.0
    lats = []
    for seed in (1, 2, 3):
        sc = scenario(
            rps=LAM, duration=2000, warmup=warmup, seed=seed,
            job={"steps": [{"cpu": {"dist": "exponential", "mean": 1 / MU}}], "start_to_close_timeout": "1h"},
            worker={"processes": C, "resources": {"requests": {"cpu": C, "memory": "512Mi"},
                                                  "limits": {"cpu": C, "memory": "2Gi"}}},
        )
        record = run(sc)
        log = record.recorder.jobs
        t0, t1 = np.frombuffer(log.t_arrival), np.frombuffer(log.t_end)
        assert set(np.frombuffer(log.status, dtype=np.int8)) == {OK}
        lats.append((t1 - t0)[t0 >= warmup])
        jobs = record.jobs
        assert jobs["retries"] == 0 and jobs["failed"] == 0
    lat = np.concatenate(lats)
    theory = mmc(LAM, MU, C)
    err_mean = lat.mean() / theory.w_s - 1
    err_p90 = np.percentile(lat, 90) / _sojourn_quantile(0.90) - 1
    err_p99 = np.percentile(lat, 99) / _sojourn_quantile(0.99) - 1
    print(f"M/M/{C} rho={theory.utilisation:.2f} n={len(lat)} W err {err_mean:+.2%}, "
          f"p90 err {err_p90:+.2%}, p99 err {err_p99:+.2%}")
    assert abs(err_mean) < 0.04
    assert abs(err_p90) < 0.05
    assert abs(err_p99) < 0.08


# ---- conservation --------------------------------------------------------------------------------
def test_conservation_with_retries_timeouts_and_pods_coming_and_going():
    sc = scenario(
        rps=2.0, duration=400,
        job={"steps": [{"cpu": {"dist": "exponential", "mean": 0.8}}], "start_to_close_timeout": 2.5,
             "memory": "150Mi", "retry": {"maximum_attempts": 2, "initial_interval": 1, "maximum_interval": 5}},
        worker={"replicas": 2, "processes": 2, "concurrency": 2, "memory_base": "300Mi",
                "resources": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": 2, "memory": "1Gi"}}},
    )
    h = Harness(sc)
    h.at(50, lambda: h.worker.scale_to(4))
    h.at(120, lambda: h.worker.container_died(h.pod(1), "container_restarted"))
    h.at(150, lambda: h.worker.container_died(h.pod(2), "oom_killed"))
    h.at(200, lambda: h.worker.scale_to(1))
    h.at(260, lambda: h.worker.scale_to(3))
    # sample the identity during the run too, not only at the end
    checks = []
    for t in range(10, 400, 7):
        h.at(t + 0.5, lambda: checks.append(_balance(h.tier)))
    record = h.run(400)
    jobs = record.jobs
    totals = jobs["totals"]
    assert all(ok for ok in checks)
    assert totals["enqueued"] == (totals["completed"] + totals["failed"] + jobs["backlog_end"]
                                  + jobs["running_end"] + jobs["waiting_retry_end"])
    assert len(record.recorder.jobs) == totals["completed"] + totals["failed"]
    # each OK request enqueued exactly one job (its enqueue is its last step)
    req_status = np.frombuffer(record.recorder.requests.status, dtype=np.int8)
    assert totals["enqueued"] == int((req_status == OK).sum())
    # the run exercised what it claims to
    assert totals["retries"] > 0 and totals["failed"] > 0 and totals["crashes"] > 0
    assert record.deployments["worker"].oom_kills > 0
    used = set(np.frombuffer(record.recorder.jobs.pod, dtype=np.int32).tolist())
    assert {2, 3} <= used  # pods added by the scale-up got jobs once ready
    # attempts never exceed maximum_attempts
    assert max(a for _, _, a, _ in h.starts) == 2
    assert all(ready for *_, ready in h.ready_at_start)


def _balance(tier):
    q = tier.queues[0]
    return q.enqueued == q.completed + q.failed + len(q.waiting) + q.running + q.waiting_retry


def test_jobs_start_only_on_ready_pods_with_free_slots():
    sc = scenario(job={"steps": [{"cpu": {"dist": "constant", "mean": 100}}]},
                  worker={"replicas": 2, "processes": 2, "concurrency": 1,
                          "resources": {"requests": {"cpu": 1, "memory": "512Mi"},
                                        "limits": {"cpu": 2, "memory": "2Gi"}}})
    h = Harness(sc)
    for _ in range(5):
        h.tier.submit(0)
    # most free slots first, ties to the lower index: 0, 1, 0, 1; the fifth waits
    assert [s[3] for s in h.starts] == [0, 1, 0, 1]
    assert len(h.tier.queues[0].waiting) == 1
    h.worker.scale_to(3)  # the new pod becomes ready later: pull 5 s + startup 8 s, endpoints +1 s
    h.run(13.9)
    assert len(h.starts) == 4
    h.run(14.1)
    assert len(h.starts) == 5 and h.starts[-1][3] == 2 and h.starts[-1][0] == pytest.approx(14.0)


# ---- retries ---------------------------------------------------------------------------------------
def two_pods(**job):
    return scenario(job={"start_to_close_timeout": 30, **job},
                    worker={"replicas": 2, "terminationGracePeriodSeconds": 0})


def test_job_on_deleted_pod_is_retried_after_backoff_and_completes_elsewhere():
    h = Harness(two_pods(retry={"initial_interval": 1.5}))
    job = h.tier.submit(0)
    h.at(2, lambda: h.worker.delete_pod(h.pod(0)))  # grace 0: the worker's shutdown cancels it at once
    h.run(60)
    assert [(t, a, p) for t, _, a, p in h.starts] == [(0, 1, 0), (3.5, 2, 1)]
    log = h.tier.log
    assert list(log.status) == [OK] and list(log.pod) == [1]
    assert log.t_end[0] == pytest.approx(13.5) and log.t_arrival[0] == 0
    assert job.attempt == 2


def test_killed_worker_is_noticed_at_start_to_close_then_retried():
    """OOMKill: nothing is reported; the server times the attempt out at its deadline."""
    h = Harness(two_pods())
    h.tier.submit(0)
    h.at(2, lambda: h.worker.container_died(h.pod(0), "oom_killed"))
    record = h.run(100)
    # deadline 0 + 30, back-off 1 s; pod 0 is back by then, so the tie goes to it
    assert [(t, a) for t, _, a, _ in h.starts] == [(0, 1), (31, 2)]
    assert list(h.tier.log.status) == [OK] and h.tier.log.t_end[0] == pytest.approx(41)
    assert record.jobs["totals"]["crashes"] == 1 and record.jobs["retries"] == 1


def test_killed_worker_with_immediate_detection_retries_elsewhere():
    h = Harness(two_pods())
    h.tier.crash_detection = "immediate"
    h.tier.submit(0)
    h.at(2, lambda: h.worker.container_died(h.pod(0), "container_restarted"))
    h.run(100)
    assert [(t, a, p) for t, _, a, p in h.starts] == [(0, 1, 0), (3, 2, 1)]
    assert list(h.tier.log.pod) == [1] and h.tier.log.t_end[0] == pytest.approx(13)


def test_backoff_schedule_and_maximum_attempts():
    retry = {"maximum_attempts": 4, "initial_interval": 1, "backoff_coefficient": 2, "maximum_interval": 3}
    sc = scenario(job={"start_to_close_timeout": 1, "retry": retry},
                  worker={"processes": 4, "resources": {"requests": {"cpu": 1, "memory": "512Mi"},
                                                        "limits": {"cpu": 4, "memory": "2Gi"}}})
    h = Harness(sc)
    h.tier.submit(0)
    record = h.run(100)
    # attempt n times out at start + 1; the next starts after min(1·2^(n−1), 3)
    assert [t for t, *_ in h.starts] == pytest.approx([0, 2, 5, 9])
    assert [a for _, _, a, _ in h.starts] == [1, 2, 3, 4]
    log = h.tier.log
    assert list(log.status) == [E504] and list(log.reason) == [REASON_CODE["timeout"]]
    assert log.t_end[0] == pytest.approx(10)
    jobs = record.jobs
    assert jobs["failed"] == 1 and jobs["completed"] == 0 and jobs["retries"] == 3


def test_retry_delay_formula():
    from memstack_capacity.scenario.workload import JobRetry

    r = JobRetry(initial_interval=1, backoff_coefficient=2, maximum_interval=600)
    assert [retry_delay(r, n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]


# ---- start-to-close ----------------------------------------------------------------------------------
def test_timed_out_attempt_keeps_its_slot_until_it_finishes():
    """An activity past start-to-close is retried, but keeps running (and its slot) on the worker."""
    sc = scenario(job={"start_to_close_timeout": 4, "retry": {"maximum_attempts": 2, "initial_interval": 1}})
    h = Harness(sc)  # one pod, one slot; each attempt needs 10 s of CPU
    h.tier.submit(0)
    h.run(4.5)
    q = h.tier.queues[0]
    assert q.stale == 1 and q.waiting_retry == 1 and h.pod(0).inflight == 1
    record = h.run(100)
    # the retry is queued at 5 but the stale attempt holds the only slot until 10
    assert [(t, a) for t, _, a, _ in h.starts] == [(0, 1), (10, 2)]
    assert list(h.tier.log.status) == [E504] and h.tier.log.t_end[0] == pytest.approx(14)
    assert record.jobs["totals"]["stale_running_end"] == 0
    assert h.pod(0).cpu_used == pytest.approx(20, rel=1e-6)


def test_start_to_close_timeouts_follow_the_service_distribution():
    """Exponential(1 s) jobs, start-to-close 1.5 s, 3 attempts: an attempt times out with
    p = e^{-1.5}; expected retries per job p + p², failure probability p³."""
    sc = scenario(
        rps=10.0, duration=400, seed=3,
        job={"steps": [{"cpu": {"dist": "exponential", "mean": 1}}], "start_to_close_timeout": 1.5,
             "retry": {"maximum_attempts": 3, "initial_interval": 0.5}},
        worker={"processes": 64, "resources": {"requests": {"cpu": 1, "memory": "512Mi"},
                                               "limits": {"memory": "2Gi"}}},
    )
    record = run(sc)
    jobs = record.jobs
    n = jobs["totals"]["enqueued"]
    p = math.exp(-1.5)
    retries_per_job = jobs["totals"]["retries"] / n
    failed = jobs["totals"]["failed"]
    assert retries_per_job == pytest.approx(p + p * p, rel=0.08)
    assert abs(failed - n * p**3) < 4 * math.sqrt(n * p**3)
    status = np.frombuffer(record.recorder.jobs.status, dtype=np.int8)
    assert set(status.tolist()) <= {OK, E504}


# ---- measurements ---------------------------------------------------------------------------------------
def test_samples_and_summary_keys():
    sc = scenario(rps=2.0, duration=60, job={"steps": [{"cpu": {"dist": "exponential", "mean": 0.3}}]})
    record = run(sc)
    s = record.recorder.samples
    metrics = {m for c, m in zip(s.component, s.metric) if c == "worker"}
    assert {"jobs/backlog", "jobs/running", "jobs/completed_rps", "jobs/latency_p99_s", "jobs/retries",
            "worker_queue_fraction"} <= metrics
    jobs = record.jobs
    assert {"completed", "failed", "retries", "backlog_max", "backlog_end", "latency_s"} <= set(jobs)
    assert set(jobs["latency_s"]) == {"mean", "p99"}
    rows = [(t, v) for t, c, m, v in zip(s.t_s, s.component, s.metric, s.value)
            if c == "worker" and m == "jobs/completed_rps"]
    last = rows[-1][0]
    done_by_last = int((np.frombuffer(record.recorder.jobs.t_end) <= last).sum())
    assert sum(v for _, v in rows) * sc.sample_interval == pytest.approx(done_by_last)
