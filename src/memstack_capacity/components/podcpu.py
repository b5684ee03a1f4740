"""A pod's CPU: processor sharing per process, the CFS quota, and the node's share of its cores.

Each process is one core for Python work (the GIL); the requests of a process that are in a
``cpu`` step share that core by processor sharing, with virtual time per process (finish tags
in a heap), so a change costs O(log n), not a rescan of every request. When the CPU limit
cannot bind (at least a core per process and the background), every process keeps its own
clock and timer. Otherwise the busy processes together are held to ``limits.cpu`` by CFS
bandwidth control (:mod:`.cfs`) on one clock: they run until the period's quota is spent, then
wait for the next period, and the pod keeps one pending timer, for its earliest completion.
On a node whose pods want more cores than it has (:mod:`.nodecpu`), every runnable thread runs
at the node's share. :class:`PodCpu` is the CPU half of :class:`.pods.Pod`.
"""

from __future__ import annotations

import heapq
import math
from heapq import heappop, heappush

_EPS_ABS = 1e-12
_EPS_REL = 1e-10
#: A job is also due when its remaining time is below a few ulps of the clock: late in a long
#: run (t ≈ 16 384 s has an ulp of 3.6e-12 s) ``now + remaining`` would round back to ``now``
#: and the completion timer would fire at the same instant forever.
_TIME_ULPS = 4.0

class Proc:
    """One server process: in-flight count and its PS state (virtual time, finish-tag heap)."""

    __slots__ = ("inflight", "V", "heap", "t_last", "token", "cpu_used", "due_at")

    def __init__(self, now: float = 0.0):
        self.inflight = 0
        self.V = 0.0
        self.heap: list = []
        self.t_last = now
        self.token = 0
        self.cpu_used = 0.0
        self.due_at = math.inf

class PodCpu:
    """The CPU of a pod: its processes (:class:`Proc`), their processor sharing, the container's CFS
    runtime and the node's share. The pod (:class:`.pods.Pod`) sets the state and owns the rest."""

    # ---- CPU by processor sharing -----------------------------------------------------------
    # ---- independent processes: one clock and one timer per process ---------------------------
    def _proc_sync(self, proc: Proc, now: float) -> None:
        heap = proc.heap
        if heap:
            dt = now - proc.t_last
            proc.V += dt / len(heap)
            proc.cpu_used += dt
        proc.t_last = now

    def _proc_start(self, proc: Proc, flow, work: float) -> None:
        # The timer is rescheduled only when the next completion moves earlier than the pending
        # one; one that moved later is found when the pending timer fires early.
        now = self.env._now
        due = self._proc_push(proc, now, work, flow)
        if due < proc.due_at:
            self._arm_proc_timer(proc, now, due)

    def _proc_push(self, proc: Proc, now: float, work: float, item) -> float:
        """Put `item` in `proc`'s processor sharing at `now` (its clock brought up to now first);
        returns when the process's next job is due."""
        heap = proc.heap
        if heap:
            dt = now - proc.t_last
            proc.V += dt / len(heap)
            proc.cpu_used += dt
        else:
            proc.V = 0.0
        proc.t_last = now
        self.seq += 1
        V = proc.V
        heappush(heap, (V + work, self.seq, item))
        dt = (heap[0][0] - V) * len(heap)
        return now + (dt if dt > 0.0 else 0.0)

    def _arm_proc_timer(self, proc: Proc, now: float, due: float) -> None:
        """Schedule the process's completion timer for `due`, invalidating any earlier one."""
        proc.due_at = due
        proc.token += 1
        self._later(due - now, self._proc_due_cb, (proc, proc.token))

    def _proc_due(self, arg) -> None:
        proc, token = arg
        if token != proc.token:
            return
        # hot path: _proc_sync and the lazy timer inlined (as in _proc_start)
        proc.due_at = math.inf
        env = self.env
        now = env._now
        heap = proc.heap
        if heap:
            dt = now - proc.t_last
            proc.V += dt / len(heap)
            proc.cpu_used += dt
        proc.t_last = now
        V = proc.V
        limit = V + _EPS_ABS + _EPS_REL * abs(V)
        if heap:
            limit += _TIME_ULPS * math.ulp(now) / len(heap)
        first = finished = None
        if heap and heap[0][0] <= limit:
            first = heappop(heap)[2]
            if heap and heap[0][0] <= limit:
                finished = [first]
                while heap and heap[0][0] <= limit:
                    finished.append(heappop(heap)[2])
        if heap:
            dt = (heap[0][0] - V) * len(heap)
            due = now + (dt if dt > 0.0 else 0.0)
            if due < proc.due_at:
                self._arm_proc_timer(proc, now, due)
        elif self.node_cpu is not None:
            self.node_cpu.changed(self, now)
        if finished is not None:
            advance = self.runtime.executor.advance
            for flow in finished:
                advance(flow)
        elif first is not None:
            self.runtime.executor.advance(first)

    # ---- coupled processes: the CFS limit binds, all slow down together ----------------------
    def _sync(self, now: float) -> None:
        if self.independent:
            used = 0.0
            for p in self.procs:
                self._proc_sync(p, now)
                used += p.cpu_used
            self.cpu_used = self._cpu_dead + used
            return
        dt = now - self.t_last
        extra = self._background_in_quota()
        if dt > 0.0 and (self.nbusy or extra):
            if self.bandwidth is None:
                served, throttled = dt * self.speed, 0.0
            else:
                served, throttled = self.bandwidth.run(self.t_last, now, self.nbusy, self.speed, extra)
            if self.nbusy:
                for p in self.procs:
                    n = len(p.heap)
                    if n:
                        p.V += served / n
                self.cpu_used += served * self.nbusy
                self.busy_s += dt
            self._background_used += (dt - throttled) * extra
            self.throttled_s += throttled
        elif dt > 0.0 and self.bandwidth is not None:
            self.bandwidth.idle(now)
        self.t_last = now

    def _background_in_quota(self) -> float:
        """The background cores that spend the container's CFS runtime (0 without a binding quota,
        where the background is counted on its own, or while the container is down)."""
        if self.bandwidth is None or not self.container_up:
            return 0.0
        return self.background_cpu

    def _set_busy(self) -> None:
        nbusy = 0
        for p in self.procs:
            if p.heap:
                nbusy += 1
        self.nbusy = nbusy

    def cpu_start(self, proc: Proc, flow, work: float) -> None:
        if self.independent:
            if self.node_cpu is not None and not proc.heap:
                self._proc_start(proc, flow, work)
                self.node_cpu.changed(self, self.env._now)
                return
            self._proc_start(proc, flow, work)
            return
        self._sync(self.env.now)
        heap = proc.heap
        if not heap:
            proc.V = 0.0
        self.seq += 1
        heapq.heappush(heap, (proc.V + work, self.seq, flow))
        if len(heap) == 1:
            self._set_busy()
            if self.node_cpu is not None:
                self.node_cpu.changed(self, self.env.now)
        self._reschedule()

    def _reschedule(self) -> None:
        if not self.nbusy:
            return
        work = math.inf  # CPU-seconds each busy process still needs for the earliest completion
        for p in self.procs:
            heap = p.heap
            if heap:
                w = (heap[0][0] - p.V) * len(heap)
                if w < work:
                    work = w
        now = self.env.now
        due = self._due(now, work)
        if due < self.due_at:
            self.due_at = due
            self.token += 1
            token = self.token
            self._later(due - now, self._cpu_due, token)

    def _due(self, now: float, work: float) -> float:
        """When each busy process will have had ``work`` more CPU-seconds, or, on a contended node,
        when the container's throttling changes first (the node then re-shares its cores)."""
        bw = self.bandwidth
        if bw is None:
            return now + work / self.speed if work > 0.0 else now
        extra = self._background_in_quota()
        due = bw.due(now, work, self.nbusy, self.speed, extra) if work > 0.0 else now
        if self.node_cpu is not None and self.node_cpu.contended:
            change = bw.next_change(now, self.nbusy, self.speed, extra)
            if change < due:
                return change
        return due

    def _cpu_due(self, token: int) -> None:
        if token != self.token:
            return
        self.due_at = math.inf
        now = self.env.now
        self._sync(now)
        finished = []
        ulps = _TIME_ULPS * math.ulp(now)
        for p in self.procs:
            heap = p.heap
            limit = p.V + _EPS_ABS + _EPS_REL * abs(p.V)
            if heap:
                limit += ulps / len(heap)
            while heap and heap[0][0] <= limit:
                finished.append(heapq.heappop(heap)[2])
        self._set_busy()
        self._reschedule()
        if self.node_cpu is not None:
            self.node_cpu.changed(self, now)
        advance = self.runtime.executor.advance
        for flow in finished:
            advance(flow)

    # ---- the node's shared cores (:mod:`.nodecpu`) ----------------------------------------------
    def busy_threads(self) -> int:
        """Processes with a request in a cpu step: the container's runnable threads."""
        return sum(1 for p in self.procs if p.heap)

    def runnable_threads(self, now: float) -> int:
        """Threads that want a core just after ``now``: none while the container is throttled."""
        busy = self.busy_threads()
        if busy and self.bandwidth is not None and self.bandwidth.throttled_from(now):
            return 0
        return busy

    def couple(self, now: float) -> None:
        """Bring the CPU up to ``now`` and run the processes on one clock (the node shares its cores)."""
        if not self.independent:
            self._sync(now)
            return
        used = 0.0
        for p in self.procs:
            self._proc_sync(p, now)
            used += p.cpu_used
            p.cpu_used = 0.0
            p.token += 1
            p.due_at = math.inf
        self.cpu_used = self._cpu_dead + used
        self.independent = False
        self.t_last = now
        self._set_busy()

    def set_speed(self, now: float, speed: float) -> None:
        """The node gave each runnable thread ``speed`` cores from ``now`` (the CPU is up to now)."""
        self.speed = speed
        self.due_at = math.inf
        self.token += 1
        self._reschedule()

    def run_free(self, now: float) -> None:
        """The node has a core for every thread again: full speed, and each process on its own clock
        when the CPU limit cannot bind."""
        self.couple(now)
        self.speed = 1.0
        self.due_at = math.inf
        self.token += 1
        if not self.own_clocks:
            self._reschedule()
            return
        self._cpu_dead = self.cpu_used
        self.independent = True
        for p in self.procs:
            p.t_last = now
            heap = p.heap
            if heap:
                dt = (heap[0][0] - p.V) * len(heap)
                self._arm_proc_timer(p, now, now + (dt if dt > 0.0 else 0.0))

    def release_node(self, now: float) -> None:
        """The pod left its node: nothing shares its cores any more."""
        if self.speed != 1.0 or self.independent != self.own_clocks:
            self.run_free(now)

    def set_container_up(self, up: bool) -> None:
        """The container started (True) or stopped (False); its background CPU runs only while it is up."""
        if self.bandwidth is not None and self.background_cpu:
            self._sync(self.env.now)  # the background so far, under the quota
        else:
            self._accrue_background(self.env.now)
        self.container_up = up

    def _accrue_background(self, now: float) -> None:
        if self.container_up and self.background_cpu:
            self._background_used += self.background_cpu * (now - self._background_since)
        self._background_since = now

    def cfs_counts(self) -> tuple[int, int]:
        """CFS periods with a runnable thread, and those throttled, over the pod's life (cpu.stat's
        nr_periods and nr_throttled, summed over its containers)."""
        bw = self.bandwidth
        if bw is None:
            return self.nr_periods, self.nr_throttled
        return self.nr_periods + bw.nr_periods, self.nr_throttled + bw.nr_throttled

    def cpu_active(self) -> int:  # noqa: D102
        """Tasks currently in a cpu step."""
        return sum(len(p.heap) for p in self.procs)

    def usage_now(self) -> float:
        """Cumulative core-seconds up to now, serving and background (what cAdvisor counts)."""
        now = self.env.now
        self._sync(now)
        if self.background_cpu:
            if self.bandwidth is None:
                self._accrue_background(now)
            return self.cpu_used + self._background_used
        return self.cpu_used
