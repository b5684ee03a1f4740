"""A pod whose requests are advanced in batches: the batched data plane's pod.

:class:`LazyPod` is a :class:`memstack_capacity.components.pods.Pod` to everything that
looks at it (the deployment's lifecycle, probes, metrics-server, the monitor), but its
requests cost no event each. The data plane (:mod:`.hybrid`) appends the arrivals routed to
it, in time order; :meth:`LazyPod.advance` then plays the pod's own events — arrivals,
admissions, processor-sharing completions, backlog releases, client timeouts — in time
order up to an instant, with exactly the arithmetic of the independent-process mode of
``Pod`` (``limits.cpu >= processes``): virtual time and finish tags per process, the same
completion tolerance, admission to the process with the fewest in flight, a FIFO backlog,
503 beyond it, 504 at the client's deadline while the server keeps working.

A probe is the only job whose completion the control plane waits for: its wake-ups are in
:mod:`.hybrid_probes`.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush

from memstack_capacity.components.flows import Task
from memstack_capacity.components.podcpu import _EPS_ABS, _EPS_REL, _TIME_ULPS, Proc
from memstack_capacity.components.pods import Pod
from memstack_capacity.components.recorder import E503, E504, REASON_CODE
from memstack_capacity.engine.hybrid.probes import ProbeWakeups

_BACKLOG_FULL = REASON_CODE["backlog_full"]
_TIMEOUT = REASON_CODE["timeout"]

INF = math.inf

# A request's record: [t0, class, memory, state]; state 0 while the client waits, 1 once answered.
_T0, _CLS, _MEM, _STATE = 0, 1, 2, 3


class LazyPod(ProbeWakeups, Pod):
    """A pod of the batched data plane (see the module docstring)."""

    #: Its processes are played alone, so it cannot share a node's cores with others (the
    #: capability table keeps scenarios whose nodes could fill off this plane).
    shares_node_cores = False

    def __init__(self, env, runtime, index: int, name: str, spec, plane):
        self.plane = plane
        self.pend_t: list = []  # arrivals routed here and not yet played: times and classes
        self.pend_c: list = []
        self.pend_i = 0
        self._waking = False
        super().__init__(env, runtime, index, name, spec)

    # ---- state of one container incarnation ---------------------------------------------------
    def _reset_container(self) -> None:
        if hasattr(self, "procs"):
            self._cpu_dead += sum(p.cpu_used for p in self.procs)
        now = self.env.now
        self.procs = [Proc(now) for _ in range(self.spec.processes)]
        self.independent = self.own_clocks = True  # the data plane takes only pods whose CPU limit cannot bind
        self.bandwidth = None
        self.dues = [INF] * len(self.procs)
        self.backlog: deque = deque()
        self.open: deque = deque()  # request records admitted or waiting, in arrival order
        self.probe_at: dict = {}  # probe flow -> (process index, finish tag) while it runs
        self.inflight = 0
        self.mem = self.spec.memory_base
        self.nbusy = 0
        self.speed = 1.0
        self.t_last = now
        self.token = getattr(self, "token", 0) + 1
        self.due_at = INF
        self.seq = 0

    @property
    def tasks(self) -> int:
        """Requests held (the deployment drains a deleted pod while this is non-zero).

        As ``Pod.tasks``: admitted and backlogged requests; a probe in flight does not hold the drain.
        """
        return self.inflight + len(self.backlog)

    # ---- playing the pod's events -------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Play every event of this pod strictly before `t` (arrivals routed here must reach `t`)."""
        pend_t = self.pend_t
        n_pend = len(pend_t)
        i = self.pend_i
        dues = self.dues
        single = len(dues) == 1
        if i == n_pend and (dues[0] if single else min(dues)) >= t:
            if self.open and self.open[0][_T0] + self.plane.timeout < t:
                self._expire(t)
            return
        if single:
            self._advance_one(t)
            return
        # several processes: the same events, process by process through _complete and _admit_rec
        pend_c = self.pend_c
        plane = self.plane
        timeout = plane.timeout
        samplers = plane.samplers
        memory = plane.memory
        cap = self.backlog_cap
        backlog = self.backlog
        opened = self.open
        while True:
            a = pend_t[i] if i < n_pend else INF
            d = min(dues)
            q = dues.index(d)
            if d <= a:
                if d >= t:
                    break
                # ---- completions on process q at d (Pod._proc_due) ----
                self._complete(q, d)
                continue
            if a >= t:
                break
            # ---- arrival i at a (Pod.submit) ----
            c = pend_c[i]
            i += 1
            free = self._free_proc()
            if free is not None:
                rec = [a, c, memory[c], 0]
                opened.append(rec)
                self._admit_rec(rec, free, a, samplers)
            elif len(backlog) < cap:
                rec = [a, c, memory[c], 0]
                opened.append(rec)
                backlog.append(rec)
            else:
                plane.error(c, a, a, E503, _BACKLOG_FULL, self.index)
                continue
            plane.accepted += 1
        if i == n_pend:
            pend_t.clear()
            pend_c.clear()
            i = 0
        self.pend_i = i
        if opened and opened[0][_T0] + timeout < t:
            self._expire(t)

    def _advance_one(self, t: float) -> None:
        """:meth:`advance` for a pod with one process (uvicorn's default), its state in locals.

        The same events and arithmetic as the general path (:meth:`_complete`, :meth:`_admit_rec`).
        """
        proc = self.procs[0]
        heap = proc.heap
        V, tl, used = proc.V, proc.t_last, proc.cpu_used
        d = self.dues[0]
        pend_t, pend_c = self.pend_t, self.pend_c
        n_pend = len(pend_t)
        i = self.pend_i
        plane = self.plane
        timeout = plane.timeout
        samplers = plane.samplers
        memory = plane.memory
        k = self.concurrency
        cap = self.backlog_cap
        backlog = self.backlog
        opened = self.open
        ok_cls, ok_t0, ok_end, ok_pod = plane.ok_cls.append, plane.ok_t0.append, plane.ok_end.append, plane.ok_pod.append
        index = self.index
        inflight, mem, mem_peak, seq = self.inflight, self.mem, self.mem_peak, self.seq
        accepted = 0
        ulp = math.ulp
        while True:
            a = pend_t[i] if i < n_pend else INF
            if d <= a:
                if d >= t:
                    break
                # ---- completions at d ----
                n = len(heap)
                dt = d - tl
                V += dt / n
                used += dt
                tl = d
                limit = V + _EPS_ABS + _EPS_REL * abs(V) + _TIME_ULPS * ulp(d) / n
                finished = [heappop(heap)[2]]
                while heap and heap[0][0] <= limit:
                    finished.append(heappop(heap)[2])
                for rec in finished:
                    if rec.__class__ is not list:  # a probe: only its own wake-up can answer it on time
                        del self.probe_at[rec]
                        if not self._waking:
                            plane.late_probes += 1
                        self.runtime.executor.advance(rec)
                        continue
                    inflight -= 1
                    mem -= rec[2]
                    if rec[3] == 0:
                        rec[3] = 1
                        t0 = rec[0]
                        if d < t0 + timeout:
                            ok_cls(rec[1])
                            ok_t0(t0)
                            ok_end(d)
                            ok_pod(index)
                        else:
                            plane.error(rec[1], t0, t0 + timeout, E504, _TIMEOUT, index)
                    if backlog and inflight < k:  # the freed slot goes to the backlog's head
                        nxt = backlog.popleft()
                        inflight += 1
                        mem += nxt[2]
                        if mem > mem_peak:
                            mem_peak = mem
                        s = samplers[nxt[1]]
                        j = s._i
                        if j != s._n:
                            s._i = j + 1
                            work = s._buf[j]
                        else:
                            work = s()
                        if not heap:
                            V = 0.0
                        seq += 1
                        heappush(heap, (V + work, seq, nxt))
                if heap:
                    dt = (heap[0][0] - V) * len(heap)
                    d = tl + (dt if dt > 0.0 else 0.0)
                else:
                    d = INF
                continue
            if a >= t:
                break
            # ---- arrival i at a ----
            c = pend_c[i]
            i += 1
            if inflight < k:
                rec = [a, c, memory[c], 0]
                opened.append(rec)
                inflight += 1
                mem += rec[2]
                if mem > mem_peak:
                    mem_peak = mem
                s = samplers[c]
                j = s._i
                if j != s._n:
                    s._i = j + 1
                    work = s._buf[j]
                else:
                    work = s()
                if heap:
                    dt = a - tl
                    V += dt / len(heap)
                    used += dt
                else:
                    V = 0.0
                tl = a
                seq += 1
                heappush(heap, (V + work, seq, rec))
                dt = (heap[0][0] - V) * len(heap)
                d = a + (dt if dt > 0.0 else 0.0)
            elif len(backlog) < cap:
                rec = [a, c, memory[c], 0]
                opened.append(rec)
                backlog.append(rec)
            else:
                plane.error(c, a, a, E503, _BACKLOG_FULL, index)
                continue
            accepted += 1
        proc.V, proc.t_last, proc.cpu_used = V, tl, used
        proc.inflight = inflight
        self.dues[0] = d
        self.inflight, self.mem, self.mem_peak, self.seq = inflight, mem, mem_peak, seq
        plane.accepted += accepted
        if i == n_pend:
            pend_t.clear()
            pend_c.clear()
            i = 0
        self.pend_i = i
        if opened and opened[0][0] + timeout < t:
            self._expire(t)

    def _admit_rec(self, rec: list, proc: Proc, now: float, samplers) -> None:
        """Admit a request record to `proc` at `now`: its memory, its CPU draw, its finish tag."""
        proc.inflight += 1
        self.inflight += 1
        self.mem += rec[_MEM]
        if self.mem > self.mem_peak:
            self.mem_peak = self.mem
        self._push(proc, now, samplers[rec[_CLS]](), rec)

    def _push(self, proc: Proc, now: float, work: float, item) -> float:
        """Put `item` (a request record or a probe's flow) in `proc`'s processor sharing at `now`,
        with the general engine's arithmetic; returns its finish tag."""
        self.dues[self.procs.index(proc)] = self._proc_push(proc, now, work, item)
        return proc.V + work  # the tag it was pushed with (V is the process's clock at now)

    def _expire(self, t: float) -> None:
        """504 for every client whose deadline passed before `t` (the server keeps working)."""
        opened = self.open
        timeout = self.plane.timeout
        error = self.plane.error
        while opened:
            rec = opened[0]
            if rec[_STATE]:
                opened.popleft()
                continue
            deadline = rec[_T0] + timeout
            if deadline >= t:
                break
            opened.popleft()
            rec[_STATE] = 1
            error(rec[_CLS], rec[_T0], deadline, E504, _TIMEOUT, self.index)
        # records still held by the pod stay reachable through its heaps and backlog

    # ---- what the control plane calls -----------------------------------------------------------
    def usage_now(self) -> float:
        self.plane.bring(self, self.env.now)
        return super().usage_now()

    def _complete(self, q: int, now: float) -> None:
        """Process q's completions due at `now` (Pod._proc_due), then the backlog's admissions."""
        plane = self.plane
        proc = self.procs[q]
        heap = proc.heap
        n = len(heap)
        dt = now - proc.t_last
        V = proc.V + dt / n
        proc.V = V
        proc.cpu_used += dt
        proc.t_last = now
        limit = V + _EPS_ABS + _EPS_REL * abs(V) + _TIME_ULPS * math.ulp(now) / n
        finished = [heappop(heap)[2]]
        while heap and heap[0][0] <= limit:
            finished.append(heappop(heap)[2])
        backlog = self.backlog
        for rec in finished:
            if rec.__class__ is not list:  # a probe: only its own wake-up can answer it on time
                del self.probe_at[rec]
                if not self._waking:
                    plane.late_probes += 1
                self.runtime.executor.advance(rec)
                continue
            proc.inflight -= 1
            self.inflight -= 1
            self.mem -= rec[_MEM]
            if rec[_STATE] == 0:
                rec[_STATE] = 1
                t0 = rec[_T0]
                if now < t0 + plane.timeout:
                    plane.ok_cls.append(rec[_CLS])
                    plane.ok_t0.append(t0)
                    plane.ok_end.append(now)
                    plane.ok_pod.append(self.index)
                else:
                    plane.error(rec[_CLS], t0, t0 + plane.timeout, E504, _TIMEOUT, self.index)
            while backlog:  # the freed slot goes to the backlog's head (Pod.release)
                free = self._free_proc()
                if free is None:
                    break
                self._admit_rec(backlog.popleft(), free, now, plane.samplers)
        dues = self.dues
        for j, p in enumerate(self.procs):
            h = p.heap
            if h:
                dt = (h[0][0] - p.V) * len(h)
                dues[j] = p.t_last + (dt if dt > 0.0 else 0.0)
            else:
                dues[j] = INF

    def drop_all(self, reason: str = "") -> list:
        """The container died or the pod is gone: what it held, as tasks the deployment fails."""
        now = self.env.now
        self.plane.bring(self, now)
        self.plane.flush()  # the answers given before now go to the log before these failures
        tasks = []
        for rec in self.open:
            if rec[_STATE] == 0:
                rec[_STATE] = 1
                task = Task("request", rec[_CLS], rec[_T0], None, rec[_MEM], ())
                task.pod = self
                tasks.append(task)
        self._sync(now)
        self._answer_dropped_probes(now)
        self._reset_container()
        return tasks

