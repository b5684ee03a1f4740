"""The ingress: sends each request to a ready API pod and answers the client.

A request with no ready endpoint gets 503 at once; one the chosen pod's backlog cannot
hold gets 503; one that has not finished within ``workload.timeout``
(``proxy-read-timeout``) gets 504 then. After a 504 the server keeps working on the
request (uvicorn does not notice the closed connection), so the load it causes stays.

Timeouts cost no event per request: deadlines are in arrival order (one timeout for all
requests), so one timer watches the oldest unfinished request.
"""

from __future__ import annotations

from collections import deque

from memstack_capacity.components.clock import call_later
from memstack_capacity.components.recorder import E503, E504, OK, REASON_CODE, STATUS_LABELS

_NO_ENDPOINTS = REASON_CODE["no_endpoints"]
_BACKLOG_FULL = REASON_CODE["backlog_full"]
_TIMEOUT = REASON_CODE["timeout"]


class Ingress:
    """Routes requests to the API deployment and records the outcome the client sees."""

    def __init__(self, env, runtime, balancer, timeout_s: float, recorder):
        self.env = env
        self.runtime = runtime
        self.balancer = balancer
        self.timeout_s = timeout_s
        self.log = recorder.requests
        self.deadlines: deque = deque()
        self.watching = False
        self.in_flight = 0
        self.arrived = 0
        self.window = []  # latencies of requests answered OK since the last sample
        self.interval_status = [0] * len(STATUS_LABELS)  # answers by status since the last sample
        self.stats = None  # RequestStats, set by the engine

    def send(self, task) -> None:
        self.arrived += 1
        pod = self.balancer.pick(self.env._now)
        if pod is None:
            self._answer(task, E503, _NO_ENDPOINTS, -1)
            return
        if not pod.submit(task):
            self._answer(task, E503, _BACKLOG_FULL, pod.index)
            return
        self.in_flight += 1
        self.deadlines.append(task)
        if not self.watching:
            self._watch()

    def complete(self, task) -> None:
        """The pod finished the request's program."""
        pod = task.pod
        pod.release(task)
        if task.client_gone:
            return
        self.in_flight -= 1
        now = self.env._now
        latency = now - task.t0
        self.window.append(latency)
        if self.balancer.policy == "ewma":
            self.balancer.observe(pod, latency, now)
        self._answer(task, OK, 0, pod.index)

    def fail(self, task, status: int, reason: int) -> None:
        """The request died in its pod (container killed, pod deleted, datastore error)."""
        if task.client_gone:
            return
        self.in_flight -= 1
        self._answer(task, status, reason, task.pod.index if task.pod is not None else -1)

    def _answer(self, task, status: int, reason: int, pod_index: int) -> None:
        task.done = True
        task.client_gone = True
        now = self.env._now
        self.log.add(task.cls, task.t0, now, status, reason, pod_index)
        self.interval_status[status] += 1
        stats = self.stats
        if stats is not None and task.t0 >= stats.warmup:
            stats.add(task.cls, task.t0, now, status, reason)
        owner = task.owner
        if owner is not None:
            owner.answered(task, status == OK)

    def _watch(self) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0].client_gone:
            deadlines.popleft()
        if not deadlines:
            self.watching = False
            return
        self.watching = True
        due = deadlines[0].t0 + self.timeout_s
        call_later(self.env, max(0.0, due - self.env.now), self._expire)

    def _expire(self, _event) -> None:
        now = self.env.now
        deadlines = self.deadlines
        limit = now - self.timeout_s + 1e-9
        while deadlines and (deadlines[0].client_gone or deadlines[0].t0 <= limit):
            task = deadlines.popleft()
            if not task.client_gone:
                self.in_flight -= 1
                self._answer(task, E504, _TIMEOUT, task.pod.index if task.pod is not None else -1)
        self._watch()
