"""The simulation clock: simpy for the control plane, a plain heap for the data plane.

The control plane (HPA syncs, metrics-server scrapes, pod lifecycles, probes) is written as
ordinary simpy processes. The data plane (arrivals, CPU completions, query completions,
timeouts) schedules plain callbacks with :func:`call_later`: on a :class:`Clock` they go on
the clock's own heap — a tuple push and pop, no simpy ``Event`` object and no trip through
simpy's queue — and :meth:`Clock.run` interleaves the two queues in time order (simpy's
events first at equal times). On a plain ``simpy.Environment`` (component tests),
``call_later`` falls back to a raw simpy event with the callback attached.

:meth:`Clock.later` is the one scheduling step; a component on a hot path keeps
``scheduler(env)`` (the bound method, or the simpy fallback) and calls it directly.
"""

from __future__ import annotations

import gc
import math
from heapq import heappop, heappush

from simpy.core import EmptySchedule, Environment
from simpy.events import NORMAL, Event


#: The cyclic collector's generation-0 threshold while :meth:`Clock.run` runs (CPython's default
#: is 700). The data plane allocates a tuple or two per event and keeps few of them; collecting
#: every 700 allocations costs ~10 % of a run, every 50 000 almost nothing (restored after).
GC_GEN0_THRESHOLD = 50_000


class Clock(Environment):
    """A simpy Environment with a second, callback-only queue for the data plane."""

    def __init__(self, initial_time: float = 0.0):
        super().__init__(initial_time)
        self.dp_heap: list = []
        self.dp_seq = 0
        #: Called as ``before_step(t)`` before each simpy event at time ``t`` (None: nothing). The
        #: batched data plane (engine/hybrid.py) brings its pods up to ``t`` there, so that the
        #: control plane always reads pods as they are at its own instant.
        self.before_step = None

    def later(self, delay: float, fn, arg) -> None:
        """Run ``fn(arg)`` after `delay` simulated seconds: one tuple pushed on the data-plane heap."""
        self.dp_seq += 1
        heappush(self.dp_heap, (self._now + delay, self.dp_seq, fn, arg))

    def run(self, until: float | None = None):  # noqa: D102 - same contract as simpy's, numbers only
        at = math.inf if until is None else float(until)
        if at <= self._now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        gc_thresholds = gc.get_threshold()
        if gc_thresholds[0] < GC_GEN0_THRESHOLD:
            gc.set_threshold(GC_GEN0_THRESHOLD, *gc_thresholds[1:])
        try:
            self._run(at)
        finally:
            gc.set_threshold(*gc_thresholds)

    def _run(self, at: float) -> None:
        heap, queue = self.dp_heap, self._queue
        step = self.step
        inf = math.inf
        hook = self.before_step
        while True:
            t_sp = queue[0][0] if queue else inf
            # data-plane callbacks strictly before simpy's next event (and before `at`); a
            # callback that schedules a simpy event changes the queue's length, so re-check then
            lim = t_sp if t_sp < at else at
            n_sp = len(queue)
            while heap and heap[0][0] < lim:
                self._now, _, fn, arg = heappop(heap)
                fn(arg)
                if len(queue) != n_sp:
                    break
            else:
                if t_sp >= at:
                    break
                if hook is not None:
                    hook(t_sp)
                    if heap and heap[0][0] < t_sp:  # the hook may schedule data-plane work first
                        continue
                step()
        if at != math.inf:
            self._now = at
        elif not heap and not queue:
            raise EmptySchedule()


def call_later(env, delay: float, callback) -> None:
    """Run ``callback(None)`` after `delay` simulated seconds (data-plane scheduling)."""
    call_later_fn(env, delay, callback, None)


def call_later_fn(env, delay: float, fn, arg) -> None:
    """Run ``fn(arg)`` after `delay` simulated seconds: :func:`call_later` without a closure."""
    if isinstance(env, Clock):
        env.later(delay, fn, arg)
    else:
        _simpy_later(env, delay, fn, arg)


def scheduler(env):
    """`env`'s scheduling step as one callable ``later(delay, fn, arg)``, for components that
    schedule on every event: :meth:`Clock.later` on a Clock, a raw simpy event otherwise."""
    if isinstance(env, Clock):
        return env.later
    return lambda delay, fn, arg: _simpy_later(env, delay, fn, arg)


def _simpy_later(env, delay: float, fn, arg) -> None:
    """``fn(arg)`` after `delay` on a plain simpy Environment: an event with the callback attached."""
    event = Event(env)
    event._ok = True
    event._value = None
    event.callbacks.append(lambda _e: fn(arg))
    env.schedule(event, NORMAL, delay)
