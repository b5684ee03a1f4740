"""A Temporal task queue's figures: its samples and the summary's ``jobs`` block, from its counts.

Whoever keeps the counts (:class:`.workers.WorkerTier`, or an engine that runs the queue itself)
hands them over as a :class:`QueueCounts`; the series and the block are then written the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memstack_capacity.components.recorder import OK

#: Temporal dynamic config ``limit.maxTaskQueueSize`` upstream (temporal-config/development.yaml).
MAX_TASK_QUEUE_SIZE = 10000


@dataclass
class QueueCounts:
    """A task queue's counters, whoever keeps them (this tier, or an engine that runs the queue itself)."""

    backlog: int
    running: int
    waiting_retry: int
    stale: int
    win_completed: int = 0
    win_failed: int = 0
    win_retries: int = 0
    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    retries: int = 0
    retries_counted: int = 0
    crashes: int = 0
    backlog_max: int = 0



def sample_queue(add, now: float, dt: float, name: str, q: QueueCounts, slots_busy: int, latencies: list,
                 max_task_queue_size: int = MAX_TASK_QUEUE_SIZE) -> None:
    """One task queue's samples over the last `dt` seconds (`latencies`: of the jobs completed in them)."""
    add(now, name, "jobs/backlog", q.backlog)
    add(now, name, "jobs/running", q.running)
    add(now, name, "jobs/waiting_retry", q.waiting_retry)
    add(now, name, "jobs/slots_busy", slots_busy)
    add(now, name, "jobs/stale_running", q.stale)
    add(now, name, "jobs/completed_rps", q.win_completed / dt if dt > 0 else 0.0)
    add(now, name, "jobs/failed_rps", q.win_failed / dt if dt > 0 else 0.0)
    add(now, name, "jobs/retries", q.win_retries)
    add(now, name, "worker_queue_fraction", q.backlog / max_task_queue_size)
    if len(latencies):
        arr = np.asarray(latencies)
        add(now, name, "jobs/latency_mean_s", float(arr.mean()))
        add(now, name, "jobs/latency_p99_s", float(np.percentile(arr, 99)))


def jobs_summary(log, warmup: float, classes: list, qs: list) -> dict:
    """Summary figures (summary.json ``jobs``). Counts and latencies are of jobs enqueued at or
    after the warm-up; ``*_end`` are states at the end; ``totals`` cover the whole run."""
    cls = np.frombuffer(log.cls, dtype=np.int32) if len(log) else np.empty(0, np.int32)
    t0 = np.frombuffer(log.t_arrival, dtype=np.float64) if len(log) else np.empty(0)
    t1 = np.frombuffer(log.t_end, dtype=np.float64) if len(log) else np.empty(0)
    status = np.frombuffer(log.status, dtype=np.int8) if len(log) else np.empty(0, np.int8)
    keep = t0 >= warmup

    def figures(mask) -> dict:
        ok = mask & (status == OK)
        lat = t1[ok] - t0[ok]
        return {
            "completed": int(ok.sum()),
            "failed": int((mask & (status != OK)).sum()),
            # No completed job has no latency: null, not a zero that reads as "instant".
            "latency_s": {"mean": float(lat.mean()) if len(lat) else None,
                          "p99": float(np.percentile(lat, 99)) if len(lat) else None},
        }

    out = figures(keep)
    out.update({
        "retries": sum(q.retries_counted for q in qs),
        "backlog_max": max((q.backlog_max for q in qs), default=0),
        "backlog_end": sum(q.backlog for q in qs),
        "running_end": sum(q.running for q in qs),
        "waiting_retry_end": sum(q.waiting_retry for q in qs),
        "by_class": {c.name: figures(keep & (cls == i)) for i, c in enumerate(classes)},
        "totals": {
            "enqueued": sum(q.enqueued for q in qs),
            "completed": sum(q.completed for q in qs),
            "failed": sum(q.failed for q in qs),
            "retries": sum(q.retries for q in qs),
            "crashes": sum(q.crashes for q in qs),
            "stale_running_end": sum(q.stale for q in qs),
        },
    })
    return out
