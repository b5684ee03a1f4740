"""Connection pools and the servers behind them, on raw simpy events (no process per operation).

:class:`ConnPool` is one process's client-side pool with SQLAlchemy ``QueuePool``
semantics (``sqlalchemy/pool/impl.py``, ``QueuePool._do_get`` / ``_do_return_conn``):

* ``pool_size`` connections may sit idle; up to ``max_overflow`` more may be open.
  ``_overflow`` starts at ``-pool_size`` and counts opens minus closes, so "overflow
  reached" is "open connections >= pool_size + max_overflow". ``max_overflow = -1``
  (or ``pool_size = 0``, which SQLAlchemy turns into ``-1``) means no limit.
* A checkout takes an idle connection if there is one; else, below the limit, it
  opens a new one (the slot is taken before connecting and given back if the connect
  fails, ``_inc_overflow`` / ``_dec_overflow``); else it waits on the queue, FIFO, up
  to ``pool_timeout``, then raises ``TimeoutError`` — unless a slot freed meanwhile
  (SQLAlchemy re-checks the overflow after the wait), in which case it connects.
* A check-in hands the connection to the oldest waiter; with no waiter it goes back
  to the idle queue, or is closed when ``pool_size`` are already idle (``Full``:
  this is how overflow connections are closed).

The Neo4j driver pool (``max_connection_pool_size``, ``connection_acquisition_timeout``)
is the same structure with ``pool_size = max_connection_pool_size`` and no overflow:
connections are opened on demand up to the maximum and all of them stay idle.

:class:`PSServer` is a database server's CPU: ``cores`` servers shared by processor
sharing, each query using at most one core (rate ``min(1, cores/n)`` each, times a
``speed`` factor for slowdown events). Virtual time and finish tags in a heap, one
pending timer — as ``pods.py`` does for a pod's processes.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush

from memstack_capacity.components.clock import scheduler

_EPS_ABS = 1e-12
_EPS_REL = 1e-10
#: A job is also due when its remaining time is below a few ulps of the clock: late in a long
#: run (t ≈ 16 384 s has an ulp of 3.6e-12 s) ``now + remaining`` would round back to ``now``
#: and the completion timer would fire at the same instant forever.
_TIME_ULPS = 4.0
_INF = math.inf


class Conn:
    """One open connection: when it was opened and whether it is still unused (no pre-ping then)."""

    __slots__ = ("born", "fresh")

    def __init__(self, born: float):
        self.born = born
        self.fresh = True


class ConnPool:
    """One process's pool: idle connections, counts, FIFO waiters with deadlines."""

    __slots__ = ("size", "limit", "timeout", "idle", "open", "in_use", "waiters", "watching", "dead", "proc")

    def __init__(self, pool_size: int, max_overflow: int, timeout: float, proc=None):
        unlimited = max_overflow == -1 or pool_size == 0
        self.size = pool_size if pool_size > 0 else math.inf  # idle connections kept
        self.limit = math.inf if unlimited else pool_size + max_overflow  # connections open at most
        self.timeout = timeout
        self.idle: deque = deque()
        self.open = 0  # connections open or being opened (SQLAlchemy: _overflow + pool_size)
        self.in_use = 0  # checked out
        self.waiters: deque = deque()  # [deadline, flow, work, t_enqueued], in deadline order
        self.watching = False
        self.dead = False
        self.proc = proc


class PSServer:
    """``cores`` processors shared by the jobs in service; each job gets at most one core."""

    __slots__ = ("env", "cores", "speed", "V", "heap", "t_last", "token", "due_at", "seq", "busy", "completed",
                 "_later", "_due_cb")

    def __init__(self, env, cores: int):
        self.env = env
        self.cores = float(cores)
        self.speed = 1.0
        self.V = 0.0
        self.heap: list = []
        self.t_last = env.now
        self.token = 0
        self.due_at = math.inf  # when the pending timer fires
        self.seq = 0
        self.busy = 0.0  # core-seconds of work done (for utilisation)
        self.completed = 0
        self._later = scheduler(env)
        self._due_cb = self._due

    def _sync(self, now: float) -> None:
        n = len(self.heap)
        if n:
            dt = now - self.t_last
            if dt > 0.0:
                cores, speed = self.cores, self.speed
                if n <= cores:
                    self.V += dt * speed
                    self.busy += dt * speed * n
                else:
                    self.V += dt * speed * cores / n
                    self.busy += dt * speed * cores
        self.t_last = now

    def submit(self, work: float, fn, arg, reply: float = 0.0) -> None:
        """Serve `work` seconds of one core; then call ``fn(arg)``, `reply` seconds later if > 0."""
        # hot path: _sync and _reschedule inlined (same arithmetic, same order)
        env = self.env
        now = env._now
        heap = self.heap
        speed, cores = self.speed, self.cores
        n = len(heap)
        if n:
            V = self.V
            dt = now - self.t_last
            if dt > 0.0:
                if n <= cores:
                    V += dt * speed
                    self.busy += dt * speed * n
                else:
                    V += dt * speed * cores / n
                    self.busy += dt * speed * cores
                self.V = V
        else:
            self.V = V = 0.0
        self.t_last = now
        self.seq = seq = self.seq + 1
        heappush(heap, (V + work, seq, fn, arg, reply))
        n += 1
        rate = speed if n <= cores else speed * cores / n
        dt = (heap[0][0] - V) / rate
        due = now + dt if dt > 0.0 else now
        if due < self.due_at:
            self.due_at = due
            self.token = token = self.token + 1
            self._later(due - now, self._due_cb, token)

    def set_speed(self, speed: float) -> None:
        self._sync(self.env.now)
        self.speed = speed
        self._reschedule()

    def _reschedule(self) -> None:
        # Lazy timer: a new event only when the next completion moves earlier than the pending
        # one; a completion that moved later is found when the pending timer fires early.
        heap = self.heap
        if not heap:
            return
        n = len(heap)
        rate = self.speed if n <= self.cores else self.speed * self.cores / n
        now = self.env._now
        dt = (heap[0][0] - self.V) / rate
        due = now + dt if dt > 0.0 else now
        if due < self.due_at:
            self.due_at = due
            self.token += 1
            self._later(due - now, self._due_cb, self.token)

    def _due(self, token: int) -> None:
        if token != self.token:
            return
        # hot path: _sync and _reschedule inlined (same arithmetic, same order)
        env = self.env
        now = env._now
        heap = self.heap
        speed, cores = self.speed, self.cores
        V = self.V
        n = len(heap)
        if n:
            dt = now - self.t_last
            if dt > 0.0:
                if n <= cores:
                    V += dt * speed
                    self.busy += dt * speed * n
                else:
                    V += dt * speed * cores / n
                    self.busy += dt * speed * cores
                self.V = V
        self.t_last = now
        limit = V + _EPS_ABS + _EPS_REL * abs(V)
        if n:
            limit += _TIME_ULPS * math.ulp(now) * speed * (1.0 if n <= cores else cores / n)
        first = finished = None
        if heap and heap[0][0] <= limit:
            first = heappop(heap)
            if heap and heap[0][0] <= limit:
                finished = [first]
                while heap and heap[0][0] <= limit:
                    finished.append(heappop(heap))
        later = self._later
        self.due_at = _INF
        if heap:
            n = len(heap)
            rate = speed if n <= cores else speed * cores / n
            dt = (heap[0][0] - V) / rate
            due = now + dt if dt > 0.0 else now
            if due < _INF:
                self.due_at = due
                self.token = token = self.token + 1
                later(due - now, self._due_cb, token)
        if finished is None:
            if first is None:
                return
            finished = (first,)
        self.completed += len(finished)
        for _tag, _seq, fn, arg, reply in finished:
            if reply > 0.0:  # the reply's way back: fn(arg) one more event later
                later(reply, fn, arg)
            else:
                fn(arg)

    def busy_now(self) -> float:
        self._sync(self.env.now)
        return self.busy

    def in_service(self) -> int:
        return len(self.heap)


class FifoServer:
    """One thread serving commands in arrival order (Redis): a busy-until clock, no queue object."""

    def __init__(self, env):
        self.env = env
        self.busy_until = 0.0
        self.busy = 0.0  # seconds of service scheduled so far
        self.speed = 1.0
        self.ops = 0

    def schedule(self, service: float) -> float:
        """Queue one command; returns the time its reply leaves the server."""
        now = self.env.now
        start = self.busy_until if self.busy_until > now else now
        service /= self.speed
        self.busy_until = start + service
        self.busy += service
        self.ops += 1
        return self.busy_until

    def busy_now(self) -> float:
        """Service done up to now (scheduled service minus what is still ahead)."""
        ahead = self.busy_until - self.env.now
        return self.busy - ahead if ahead > 0.0 else self.busy
