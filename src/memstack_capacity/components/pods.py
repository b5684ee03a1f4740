"""A pod under load: its processes' CPU by processor sharing, its accept backlog, its memory.

CPU (:mod:`.podcpu`). Each process is one core for Python work (the GIL); the requests of a
process that are in a ``cpu`` step share that core by processor sharing, held to
``limits.cpu`` by CFS bandwidth control and, on a node out of cores, to the node's share.

Admission. One FIFO accept backlog per pod, bounded (503 beyond it). A request
leaves it for the process with the fewest in flight, if that one has fewer than
``concurrency``. So ``processes: c, concurrency: 1`` is an M/M/c queue and
``processes: 1, concurrency: k`` is one core shared by up to k requests.

Memory. ``memory_base`` plus what each in-flight task holds; above ``limits.memory``
the container is OOMKilled and everything in it fails.
"""

from __future__ import annotations

import math
from collections import deque

from memstack_capacity.components.clock import scheduler
from memstack_capacity.components.podcpu import PodCpu, Proc

__all__ = ["Pod", "Proc"]
def _arrival(task) -> float:
    return task.t0

class Pod(PodCpu):
    """One pod's data plane. Lifecycle (scheduling, probes, termination) is the deployment's."""

    shares_node_cores = True  # its CPU follows the node's shares when the node is contended

    def __init__(self, env, runtime, index: int, name: str, spec):
        self.env = env
        self.runtime = runtime  # the DeploymentRuntime that owns the pod
        self.index = index
        self.name = name
        self.spec = spec
        self.phase = "Pending"  # Pending | Running | Terminating | Gone
        self.node = None
        self.ready = False
        self.serving = False  # in the load balancer's endpoints
        self.deleting = False
        self.created_at = env.now
        self.started_at: float | None = None
        self.scheduled_at: float | None = None  # status.startTime: the kubelet has the pod
        self.ready_changed_at = env.now
        self.container_up = False
        self.background_cpu = spec.background_cpu or 0.0  # cores the container burns without serving
        self._background_used = 0.0
        self._background_since = env.now
        self.restarts = 0
        self.oom_kills = 0
        self.crash_streak = 0
        limits = spec.resources.limits
        self.cfs = runtime.cluster.cfs
        self.cpu_limit = self.cfs.limit(limits.cpu)
        self.mem_limit = limits.memory if limits.memory is not None else math.inf
        self.cpu_request = spec.resources.requests.cpu
        self.mem_request = spec.resources.requests.memory
        self.concurrency = spec.concurrency
        self.backlog_cap = spec.backlog
        self._reset_container()
        self.cpu_used = 0.0  # core-seconds, cumulative over the pod's life (what cAdvisor counts)
        self._cpu_dead = 0.0  # core-seconds of earlier container incarnations (independent mode)
        self.throttled_s = 0.0
        self.busy_s = 0.0
        self.nr_periods = 0  # CFS periods with a runnable thread, and those throttled (cpu.stat), over the pod's life
        self.nr_throttled = 0
        self.mem_peak = 0
        self._later = scheduler(env)
        self._proc_due_cb = self._proc_due
        #: The node's shared cores (:mod:`.nodecpu`) while the node could run out of them, and the
        #: runnable threads it counts for this pod.
        self.node_cpu = None
        self.node_busy = 0
        #: While the pod's node is lost: what answers each task still sent to it (set by the owner).
        self.refuse = None

    def _reset_container(self) -> None:
        if hasattr(self, "procs"):
            self._cpu_dead = self.cpu_used  # brought up to now by the caller
        if getattr(self, "bandwidth", None) is not None:
            self.nr_periods += self.bandwidth.nr_periods
            self.nr_throttled += self.bandwidth.nr_throttled
        self.procs = [Proc(self.env.now) for _ in range(self.spec.processes)]
        # When the CPU limit cannot bind (limit >= processes) every process runs at full speed
        # whatever the others do, so each keeps its own clock and timer: O(log n) per event.
        self.bandwidth = self.cfs.bandwidth(self.cpu_limit, len(self.procs), self.env.now, self.background_cpu)
        self.own_clocks = self.bandwidth is None
        self.independent = self.own_clocks
        self.speed = 1.0  # cores per runnable thread while not throttled: below 1 only on a contended node
        self.backlog: deque = deque()
        self.tasks: set = set()
        self.inflight = 0
        self.mem = self.spec.memory_base
        self.nbusy = 0
        self.t_last = self.env.now
        self.token = getattr(self, "token", 0) + 1  # monotonic: a stale timer never matches again
        self.due_at = math.inf
        self.seq = 0
        node_cpu = getattr(self, "node_cpu", None)
        if node_cpu is not None:
            node_cpu.changed(self, self.env.now)

    # ---- admission -------------------------------------------------------------------------
    def submit(self, task) -> bool:
        """Accept a task into a process or the backlog; False when the backlog is full."""
        if self.refuse is not None:
            return self.refuse(task)
        proc = self._free_proc()
        if proc is not None:
            self._admit(task, proc)
            return True
        if len(self.backlog) >= self.backlog_cap:
            return False
        task.pod = self
        self.backlog.append(task)
        self.tasks.add(task)
        return True

    def _free_proc(self):
        best = None
        for p in self.procs:
            if p.inflight < self.concurrency and (best is None or p.inflight < best.inflight):
                best = p
        return best

    def _admit(self, task, proc: Proc) -> None:
        task.pod = self
        task.proc = proc
        proc.inflight += 1
        self.inflight += 1
        self.tasks.add(task)
        self.mem += task.mem
        if self.mem > self.mem_peak:
            self.mem_peak = self.mem
        if self.mem > self.mem_limit:
            self.runtime.container_died(self, "oom_killed")
            return
        self.runtime.executor.start(task)

    def release(self, task) -> None:
        """A task's program ended: free its slot and memory, admit from the backlog."""
        proc = task.proc
        proc.inflight -= 1
        self.inflight -= 1
        self.mem -= task.mem
        self.tasks.discard(task)
        while self.backlog:
            nxt = self.backlog[0]
            if not nxt.alive:
                self.backlog.popleft()
                self.tasks.discard(nxt)
                continue
            free = self._free_proc()
            if free is None:
                break
            self.backlog.popleft()
            self._admit(nxt, free)
            if not self.container_up:
                break

    def drop_all(self, reason: str = "") -> list:
        """Remove every task (container died or pod deleted, for `reason`); returns them, still alive,
        oldest first."""
        tasks = sorted(self.tasks, key=_arrival)
        self._sync(self.env.now)
        self._reset_container()
        return tasks
