"""Probes on a pod of the batched data plane: answered at the instant they finish.

A probe is the only job whose completion the control plane waits for. It is put in the
process's heap like a request; the pod schedules a wake-up at the earliest time it can
finish (processor sharing with no further arrival: more arrivals only delay it), plays its
events up to then and either completes it at that instant or schedules the next wake-up.
So a probe is answered at the instant the general engine would answer it. A probe sent
before its container is dropped still finishes on the discarded processes, as in the
general engine, and its prober hears the answer.
"""

from __future__ import annotations

from memstack_capacity.components.clock import call_later_fn
from memstack_capacity.components.pods import Proc


class ProbeWakeups:
    """The probe half of :class:`.hybrid_pods.LazyPod` (it supplies ``plane``, ``procs``,
    ``dues``, ``probe_at``, ``_push`` and ``_complete``)."""

    def cpu_start(self, proc: Proc, flow, work: float) -> None:
        """A probe's CPU work on `proc`; answered exactly when it finishes (see the module docstring)."""
        now = self.env.now
        self.plane.bring(self, now)
        tag = self._push(proc, now, work, flow)
        q = self.procs.index(proc)
        self.probe_at[flow] = (q, tag)
        self._wake_at(q, tag, flow)

    def _wake_at(self, q: int, tag: float, flow) -> None:
        """A wake-up when the probe can first finish: never before the process's next completion."""
        when = max(earliest_end(self.procs[q], tag), self.dues[q])
        now = self.env.now
        call_later_fn(self.env, when - now if when > now else 0.0, self._wake, (flow, self.restarts))

    def _wake(self, arg) -> None:
        flow, incarnation = arg
        where = self.probe_at.get(flow)
        if where is None or incarnation != self.restarts:
            return  # answered already, or dropped with its container
        q, tag = where
        now = self.env.now
        self._waking = True
        self.plane.bring(self, now)
        if flow in self.probe_at and self.dues[q] <= now:
            self._complete(q, now)
        self._waking = False
        if flow in self.probe_at:
            self._wake_at(q, tag, flow)

    def _answer_dropped_probes(self, now: float) -> None:
        """The container is dropped: each probe in flight finishes on the discarded processes (nothing
        arrives there any more, so at its earliest end) and its prober hears the answer."""
        advance = self.runtime.executor.advance
        for flow, (q, tag) in self.probe_at.items():
            when = earliest_end(self.procs[q], tag)
            call_later_fn(self.env, when - now if when > now else 0.0, advance, flow)


def earliest_end(proc: Proc, tag: float) -> float:
    """When the job with finish tag `tag` would finish on `proc` if nothing more arrived.

    Processor sharing: the jobs with smaller tags leave first and the rest share the core, so
    ``t += (next tag − V) × n`` job by job. Arrivals only delay it, so this is a lower bound.
    Only the heap's entries up to `tag` matter; a subtree whose root is above it is skipped.
    """
    heap = proc.heap
    below = []
    stack = [0] if heap else []
    while stack:
        i = stack.pop()
        entry = heap[i]
        if entry[0] <= tag:
            below.append(entry[0])
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    stack.append(child)
    below.sort()
    t, V, n = proc.t_last, proc.V, len(heap)
    for x in below:
        if x > V:
            t += (x - V) * n
            V = x
        n -= 1
    return t
