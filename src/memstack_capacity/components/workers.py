"""Background jobs: Temporal task queues polled by worker pods (model.md §7).

The real system (upstream-deployment.md §2, "Background workers"): the API starts a
Temporal workflow (``episode_processing``) and returns; a worker process polls the
task queue ``memstack-default`` and runs the activity with ``max_concurrent_activities``
slots; the activity has a start-to-close timeout and a RetryPolicy.

What is modelled, and how:

* **Task queue.** One FIFO queue per set of consuming deployments (normally one:
  ``deployments.worker.consumes``). An ``enqueue`` step puts a job on it and the
  request carries on at once. Temporal does not bound a task queue's backlog; the
  upstream dynamic config's ``limit.maxTaskQueueSize`` (10000) is only the
  denominator of ``worker_queue_fraction`` (the MemStackWorkerQueueFull alert).
* **Pollers and slots.** A worker pod takes jobs while it is in its Deployment's
  endpoints (Ready, container up, not being deleted: for a worker without a
  readinessProbe that is shortly after its container starts) and has a free slot.
  A pod has ``processes × concurrency`` slots (``concurrency`` is Temporal's
  ``max_concurrent_activities`` of one worker process). The next job goes to the
  eligible pod with the most free slots, ties to the lowest pod index (any idle
  poller gets the next task; the tie-break keeps runs reproducible). Jobs never sit
  in a pod's accept backlog: they start only when a slot is free. A job runs its steps
  like a request, on the pod's processes (processor-shared CPU, memory held while
  running, so jobs can OOMKill a worker).
* **At least once.** Each try of a job is an *attempt* (a fresh :class:`Task`, with
  ``task.attempt``). An attempt ends in one of four ways:

  - it completes: the job is done (status ok);
  - it fails inside a live container (e.g. a datastore error), or its pod is deleted
    and it is still running at the end of the termination grace period (the worker's
    shutdown cancels it and reports the failure; upstream's worker waits up to 30 s
    for in-flight activities, the same as the default grace period): the server learns
    at once;
  - its process is killed (OOMKill, liveness restart): nothing is reported. The
    Temporal server does not detect worker deaths; it learns at the attempt's
    start-to-close deadline, or earlier at the heartbeat timeout if the job class has
    ``heartbeat_timeout``. (``crash_detection="immediate"`` treats a kill like a
    reported failure instead, for what-ifs);
  - it passes ``start_to_close_timeout``: the server times it out. The activity is
    **not** stopped on the worker (an activity that does not heartbeat never hears of
    the timeout): it keeps its slot, CPU and memory until its steps end, and its
    result is then discarded — like a request after the ingress's 504.

  A failed attempt ``n`` is retried after ``initial_interval × backoff_coefficient^(n-1)``
  capped at ``maximum_interval`` (Temporal's RetryPolicy); the retry joins the back of
  the queue. After ``maximum_attempts`` the job fails: its row in ``recorder.jobs``
  carries the last attempt's status (504/``timeout`` for a timeout, else the
  reported failure).

Job states, counted per queue at any time: queued (in the task queue), running (an
attempt started and not yet closed by the server, crashed-but-undetected ones
included), waiting_retry (back-off timer), completed, failed. So at any moment
``enqueued = completed + failed + queued + running + waiting_retry``. Attempts that
timed out but still run on a worker are counted apart (``stale``).
"""

from __future__ import annotations

from collections import deque

from memstack_capacity.components.clock import call_later
from memstack_capacity.components.flows import Task
from memstack_capacity.components.queue_figures import MAX_TASK_QUEUE_SIZE, QueueCounts, jobs_summary, sample_queue
from memstack_capacity.components.recorder import E504, OK, REASON_CODE


QUEUED, RUNNING, WAITING_RETRY, COMPLETED, FAILED = range(5)
_TIMEOUT = REASON_CODE["timeout"]
_CRASH_REASONS = frozenset({REASON_CODE["oom_killed"], REASON_CODE["container_restarted"]})


def retry_delay(retry, attempt: int) -> float:
    """Temporal's back-off before the try after failed attempt ``attempt`` (1-based)."""
    return min(float(retry.initial_interval) * float(retry.backoff_coefficient) ** (attempt - 1),
               float(retry.maximum_interval))


class Job:
    """One job (a Temporal activity execution) across its attempts."""

    __slots__ = ("cls", "t_enqueue", "attempt", "state", "task", "queue", "started_at", "pod_index", "counted")

    def __init__(self, cls: int, t_enqueue: float, queue: "TaskQueue", counted: bool):
        self.cls = cls
        self.t_enqueue = t_enqueue
        self.attempt = 0
        self.state = QUEUED
        self.task = None  # the current attempt
        self.queue = queue
        self.started_at = None
        self.pod_index = -1
        self.counted = counted  # enqueued after the warm-up: counts in the summary


class TaskQueue:
    """One Temporal task queue: attempts waiting for a slot, polled by the pods of ``runtimes``."""

    def __init__(self, name: str, runtimes: list):
        self.name = name
        self.runtimes = runtimes
        self.waiting: deque = deque()
        self.enqueued = self.completed = self.failed = 0
        self.running = self.waiting_retry = self.stale = 0
        self.retries = 0  # whole run
        self.retries_counted = 0  # for jobs enqueued after the warm-up
        self.crashes = 0  # attempts whose process was killed under them
        self.backlog_max = 0  # after the warm-up
        # since the last sample
        self.win_latency: list = []
        self.win_completed = self.win_failed = self.win_retries = 0

    def pollers(self):
        for rt in self.runtimes:
            for pod in rt.endpoints:
                if pod.container_up and not pod.deleting:
                    yield pod

    def slots_busy(self) -> int:
        return sum(p.inflight for rt in self.runtimes for p in rt.pods if p.phase == "Running" and p.container_up)


def free_slots(pod) -> int:
    return pod.spec.processes * pod.concurrency - pod.inflight


class WorkerTier:
    """Every job queue of a run, the ``enqueue`` step handler and the jobs' completions.

    The engine's build wires :meth:`complete` to an attempt's program ending and :meth:`fail`
    to an attempt dying in its pod.
    """

    def __init__(self, env, job_classes: list, programs: list, recorder, warmup: float = 0.0,
                 crash_detection: str = "timeout", max_task_queue_size: int = MAX_TASK_QUEUE_SIZE):
        if crash_detection not in ("timeout", "immediate"):
            raise ValueError(f"crash_detection must be 'timeout' or 'immediate', got {crash_detection!r}")
        self.env = env
        self.classes = list(job_classes)
        self.programs = list(programs)
        self.index = {c.name: i for i, c in enumerate(self.classes)}
        self.log = recorder.jobs
        self.warmup = float(warmup)
        self.crash_detection = crash_detection
        self.max_task_queue_size = max_task_queue_size
        self.queues: list[TaskQueue] = []
        self.queue_of: dict[int, TaskQueue] = {}
        self._dispatching = False
        self._again = False
        self._t_sample = 0.0

    # ---- wiring ------------------------------------------------------------------------------
    def add_queue(self, name: str, runtimes: list, job_names: list[str]) -> TaskQueue:
        """A task queue for `job_names`, polled by the pods of `runtimes`."""
        queue = TaskQueue(name, runtimes)
        self.queues.append(queue)
        for job in job_names:
            self.queue_of[self.index[job]] = queue
        for rt in runtimes:
            previous = rt.endpoints_changed

            def changed(previous=previous):
                if previous is not None:
                    previous()
                self.dispatch()

            rt.endpoints_changed = changed
        return queue

    def queue_length(self, deployment: str) -> int:
        """Jobs waiting in the task queues a deployment polls (a KEDA-style scaling metric)."""
        return sum(len(q.waiting) for q in self.queues if any(rt.name == deployment for rt in q.runtimes))

    # ---- the enqueue step --------------------------------------------------------------------
    def enqueue_step(self, flow, op) -> bool:
        """Step handler for ``(ENQUEUE, job_name)``: start the job, carry on without waiting."""
        self.submit(self.index[op[1]])
        return True

    def submit(self, cls: int) -> Job:
        """Enqueue a new job of class index `cls` now."""
        now = self.env.now
        queue = self.queue_of[cls]
        job = Job(cls, now, queue, now >= self.warmup)
        queue.enqueued += 1
        self._new_attempt(job)
        self.dispatch()
        return job

    def _new_attempt(self, job: Job) -> None:
        job.attempt += 1
        task = Task("job", job.cls, job.t_enqueue, job, self.classes[job.cls].memory, self.programs[job.cls])
        task.attempt = job.attempt
        job.task = task
        job.state = QUEUED
        queue = job.queue
        queue.waiting.append(task)
        n = len(queue.waiting)
        if n > queue.backlog_max and self.env.now >= self.warmup:
            queue.backlog_max = n

    # ---- dispatch ------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Hand queued attempts to free slots. Re-entrant calls (a job ending or a container
        dying while an attempt is being started) are folded into the running loop."""
        if self._dispatching:
            self._again = True
            return
        self._dispatching = True
        try:
            again = True
            while again:
                self._again = False
                for queue in self.queues:
                    self._drain(queue)
                again = self._again
        finally:
            self._dispatching = False

    def _drain(self, queue: TaskQueue) -> None:
        waiting = queue.waiting
        while waiting:
            best, best_free = None, 0
            for pod in queue.pollers():
                free = free_slots(pod)
                if free > best_free or (free == best_free and free > 0 and pod.index < best.index):
                    best, best_free = pod, free
            if best is None:
                return
            self._start(waiting.popleft(), best)

    def _start(self, task: Task, pod) -> None:
        job = task.owner
        now = self.env.now
        job.state = RUNNING
        job.started_at = now
        job.pod_index = pod.index
        job.queue.running += 1
        timeout = float(self.classes[job.cls].start_to_close_timeout)
        call_later(self.env, timeout, lambda _ev: self._close_timed_out(task))
        pod.submit(task)  # a free process exists: the attempt starts now (or OOMKills the pod)

    # ---- the end of an attempt -----------------------------------------------------------------
    def complete(self, task: Task) -> None:
        """An attempt's program ended on its worker."""
        task.pod.release(task)
        task.done = True
        job = task.owner
        queue = job.queue
        if task.client_gone:  # timed out earlier: the server discards the late result
            queue.stale -= 1
        else:
            task.client_gone = True
            queue.running -= 1
            self._finish(job, OK, 0)
        self.dispatch()

    def fail(self, task: Task, status: int, reason: int) -> None:
        """An attempt died in its pod (container killed, pod deleted, a step's error)."""
        task.alive = False
        pod = task.pod
        if pod is not None and task in pod.tasks:  # failed inside a live container: free its slot
            pod.release(task)
        job = task.owner
        queue = job.queue
        if task.client_gone:  # already timed out at the server; it was still running on the worker
            queue.stale -= 1
        elif reason in _CRASH_REASONS and self.crash_detection == "timeout":
            queue.crashes += 1
            heartbeat = getattr(self.classes[job.cls], "heartbeat_timeout", None)
            if heartbeat:
                call_later(self.env, float(heartbeat), lambda _ev: self._close_timed_out(task))
            # else the start-to-close timer already set will notice
        else:
            if reason in _CRASH_REASONS:
                queue.crashes += 1
            task.client_gone = True
            queue.running -= 1
            self._attempt_failed(job, status, reason)
        self.dispatch()

    def _close_timed_out(self, task: Task) -> None:
        """Start-to-close (or heartbeat) deadline of an attempt: the server closes it as timed out."""
        if task.done or task.client_gone:
            return
        task.client_gone = True
        job = task.owner
        queue = job.queue
        queue.running -= 1
        if task.alive:
            queue.stale += 1  # still running on its worker, holding its slot
        self._attempt_failed(job, E504, _TIMEOUT)

    def _attempt_failed(self, job: Job, status: int, reason: int) -> None:
        queue = job.queue
        retry = self.classes[job.cls].retry
        if job.attempt >= retry.maximum_attempts:
            self._finish(job, status, reason)
            return
        queue.retries += 1
        queue.win_retries += 1
        if job.counted:
            queue.retries_counted += 1
        job.state = WAITING_RETRY
        queue.waiting_retry += 1
        call_later(self.env, retry_delay(retry, job.attempt), lambda _ev: self._retry(job))

    def _retry(self, job: Job) -> None:
        job.queue.waiting_retry -= 1
        self._new_attempt(job)
        self.dispatch()

    def _finish(self, job: Job, status: int, reason: int) -> None:
        queue = job.queue
        now = self.env.now
        if status == OK:
            job.state = COMPLETED
            queue.completed += 1
            queue.win_completed += 1
            queue.win_latency.append(now - job.t_enqueue)
        else:
            job.state = FAILED
            queue.failed += 1
            queue.win_failed += 1
        self.log.add(job.cls, job.t_enqueue, now, status, reason, job.pod_index)

    # ---- measurements ----------------------------------------------------------------------------
    def sample(self, now: float, add) -> None:
        """Monitor sampler: per task queue (component = the queue's name, the worker deployment's)."""
        dt = now - self._t_sample
        self._t_sample = now
        for q in self.queues:
            sample_queue(add, now, dt, q.name, queue_counts(q), q.slots_busy(), q.win_latency,
                         self.max_task_queue_size)
            q.win_latency = []
            q.win_completed = q.win_failed = q.win_retries = 0

    def finish(self, now: float) -> dict:
        """Summary figures (summary.json ``jobs``): :func:`jobs_summary` of this tier's queues."""
        return jobs_summary(self.log, self.warmup, self.classes, [queue_counts(q) for q in self.queues])


def queue_counts(q: TaskQueue) -> QueueCounts:
    """A task queue's counters as :func:`.queue_figures.sample_queue` and ``jobs_summary`` read them."""
    return QueueCounts(len(q.waiting), q.running, q.waiting_retry, q.stale, q.win_completed, q.win_failed,
                       q.win_retries, q.enqueued, q.completed, q.failed, q.retries, q.retries_counted, q.crashes,
                       q.backlog_max)
