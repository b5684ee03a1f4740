"""PostgreSQL and Neo4j: per-process connection pools in front of a processor-sharing server.

A ``call`` step checks a connection out of the pool of the process the task runs in
(:mod:`memstack_capacity.components.datastores.pools` has the pool rules, SQLAlchemy's
``QueuePool``), runs the query on the server's cores (processor sharing, so queries
slow down as load grows), and checks the connection back in when the reply is back.

Timing of one call: [pool wait] + [connect_time if a new connection is opened] +
[one round trip for ``pool_pre_ping`` on a reused connection] + execution (the step's
sampled ``time``, stretched by processor sharing) + one round trip for the query.

Connection scope — two modes:

* default, one checkout per call: a ``repeat: 4`` step is four checkouts. This is
  the pool's lightest use (a connection is held only while a statement runs).
* ``session: true`` on the PostgreSQL datastore: like the app's ``get_db``, which
  opens one ``AsyncSession`` per request; the session checks a connection out at its
  first statement and holds it until the request (or job) ends, including its CPU
  steps and external calls in between. This is upstream's behaviour and the heavier
  one: the pool then limits in-flight *requests* that touched the database.

The server counts connections: a PostgreSQL connect beyond ``max_connections −
superuser_reserved_connections`` is refused ("sorry, too many clients already") and
the checkout fails, so the request fails with 500 ``connection_refused``. A pool
wait beyond ``pool_timeout`` fails it with 500 ``pool_timeout`` (Neo4j:
``acquisition_timeout``). When a container dies, its pools die with it: their
connections are closed at the server at once (a query still executing finishes its
work on the server, as PostgreSQL notices a dead client only when it writes).
"""

from __future__ import annotations

import math

from memstack_capacity.components.clock import call_later, scheduler
from memstack_capacity.components.datastores.failure import refuse_while_down
from memstack_capacity.components.datastores.stats import WaitStats
from memstack_capacity.components.datastores.pools import Conn, ConnPool, PSServer
from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.scenario.kinds import KINDS


class Session:
    """A task's connection to one store from its first call to its end (``session: true``)."""

    __slots__ = ("task", "pool", "conn", "pending", "active")

    def __init__(self, task, pool):
        self.task = task
        self.pool = pool
        self.conn = None
        self.pending: list = []  # (flow, work) waiting for the session's checkout
        self.active = 0  # calls running on the connection


class SqlStore:
    """One PostgreSQL or Neo4j datastore: its server and every process's pool."""

    def slowdown(self, factor: float) -> None:
        """Its server's cores run at ``1 / factor`` from now on (``datastore_slowdown``; 1 ends it)."""
        self.server.set_speed(1.0 / factor)

    def __init__(self, env, name: str, spec, executor, fail_task):
        self.env = env
        self.name = name
        self.kind = spec.kind
        self.executor = executor
        self.fail_task = fail_task  # (task, reason_code) -> None
        self.down = None  # (end, mode) during an outage
        if KINDS[spec.kind].queue_pool:
            p = spec.pool
            self.pool_args = (p.pool_size, p.max_overflow, float(p.pool_timeout))
            self.pre_ping = p.pool_pre_ping
            self.recycle = float(p.pool_recycle) if p.pool_recycle else math.inf
            self.server_limit = max(0, spec.max_connections - spec.superuser_reserved_connections)
            self.timeout_code = REASON_CODE["pool_timeout"]
            self.session = spec.session
        else:  # neo4j: the driver pool opens up to the maximum on demand and keeps every one idle
            p = spec.pool
            self.pool_args = (p.max_connection_pool_size, 0, float(p.connection_acquisition_timeout))
            self.pre_ping = False
            self.recycle = math.inf
            self.server_limit = math.inf
            self.timeout_code = REASON_CODE["acquisition_timeout"]
            self.session = False
        self.refused_code = REASON_CODE["connection_refused"]
        self.round_trip = float(spec.round_trip)
        self.connect_time = float(spec.connect_time)
        self.server = PSServer(env, spec.cores)
        self.pools: dict = {}  # Proc -> ConnPool
        self.sessions: dict = {}  # Task -> Session
        self.server_open = 0
        self.peak = 0  # most connections open at the server since the warm-up
        self.waits = WaitStats()
        self.calls = self.timeouts = self.refused = self.connects = self.overflow_closed = self.recycled = 0
        # exact time integrals of connections in use and of waiting checkouts (Little's law, means)
        self.n_use = self.n_wait = 0
        self.area_use = self.area_wait = 0.0
        self.t_area = env.now
        # hot-path references: the clock's scheduling step, bound methods
        self._schedule = scheduler(env)
        self._finish_cb = self._finish

    def _area(self) -> None:
        now = self.env._now
        dt = now - self.t_area
        if dt > 0.0:
            self.area_use += self.n_use * dt
            self.area_wait += self.n_wait * dt
            self.t_area = now

    def areas(self) -> tuple[float, float]:
        self._area()
        return self.area_use, self.area_wait

    # ---- the step handler ------------------------------------------------------------------
    def handle(self, flow, op) -> bool:
        if self.down is not None:
            return refuse_while_down(self, flow)
        task = flow.task
        sampler = op[2]
        if sampler is None:
            work = 0.0
        else:  # Sampler.__call__ inlined while its block lasts (a constant never fills one)
            i = sampler._i
            if i != sampler._n:
                sampler._i = i + 1
                work = sampler._buf[i]
            else:
                work = sampler()
        self.calls += 1
        proc = task.proc
        pool = self.pools.get(proc)
        if pool is None:
            pool = self.pools[proc] = ConnPool(*self.pool_args, proc=proc)
        if self.session:
            s = self.sessions.get(task)
            if s is not None:
                if s.conn is None:
                    s.pending.append((flow, work))
                else:
                    s.active += 1
                    self._execute(s.pool, s.conn, flow, work, 0.0)
                return False
            s = self.sessions[task] = Session(task, pool)
            s.pending.append((flow, work))
            self._checkout(pool, s, work)
            return False
        idle = pool.idle
        if not idle:
            self._checkout(pool, flow, work)
            return False
        # hot path: _checkout (idle connection), _area, waits.add(0.0), _got and _execute inlined
        conn = idle.popleft()
        pool.in_use += 1
        now = self.env._now
        dt = now - self.t_area
        if dt > 0.0:
            self.area_use += self.n_use * dt
            self.area_wait += self.n_wait * dt
            self.t_area = now
        self.n_use += 1
        waits = self.waits
        waits.w_zeros += 1
        if waits.measuring:
            waits.zeros += 1
            waits.count += 1
        if not task.alive or now - conn.born > self.recycle:
            self._got(pool, conn, flow, work)
            return False
        pre = self.round_trip if (self.pre_ping and not conn.fresh) else 0.0  # no ping on a fresh connection
        conn.fresh = False
        arg = (pool, conn, flow, pre + self.round_trip)
        if work > 0.0:
            self.server.submit(work, self._finish_cb, arg, arg[3])
        else:
            self._later(arg[3], arg)
        return False

    def _later(self, delay: float, arg) -> None:
        """``_finish(arg)`` after `delay`."""
        self._schedule(delay, self._finish_cb, arg)

    # ---- pool: checkout ------------------------------------------------------------------------
    def _checkout(self, pool: ConnPool, target, work: float) -> None:
        """`target` is the Flow to resume (per-call) or the task's Session."""
        if pool.idle:
            conn = pool.idle.popleft()
            pool.in_use += 1
            self._area()
            self.n_use += 1
            self.waits.add(0.0)
            self._got(pool, conn, target, work)
        elif pool.open < pool.limit:
            self.waits.add(0.0)
            self._connect(pool, target, work)
        else:
            now = self.env.now
            pool.waiters.append([now + pool.timeout, target, work, now])
            self._area()
            self.n_wait += 1
            if not pool.watching:
                self._watch(pool)

    def _connect(self, pool: ConnPool, target, work: float, slot_held: bool = False) -> None:
        if not slot_held:
            pool.open += 1  # QueuePool._inc_overflow before _create_connection
        if self.server_open >= self.server_limit:
            self.refused += 1
            call_later(self.env, self.connect_time, lambda _e: self._refused(pool, target))
            return
        self.server_open += 1
        if self.server_open > self.peak:
            self.peak = self.server_open
        self.connects += 1
        call_later(self.env, self.connect_time, lambda _e: self._connected(pool, target, work))

    def _connected(self, pool: ConnPool, target, work: float) -> None:
        if pool.dead:
            return
        pool.in_use += 1
        self._area()
        self.n_use += 1
        self._got(pool, Conn(self.env.now), target, work)

    def _refused(self, pool: ConnPool, target) -> None:
        pool.open -= 1  # QueuePool._dec_overflow on a failed connect
        if pool.dead:
            return
        self._fail(target, self.refused_code)

    def _got(self, pool: ConnPool, conn: Conn, target, work: float) -> None:
        task = target.task
        if not task.alive:
            self._checkin(pool, conn)
            return
        if self.env.now - conn.born > self.recycle:
            # pool_recycle: the record closes the old connection and connects again at checkout
            self.recycled += 1
            pool.in_use -= 1
            self._area()
            self.n_use -= 1
            self.server_open -= 1
            self._connect(pool, target, work, slot_held=True)
            return
        pre = self.round_trip if (self.pre_ping and not conn.fresh) else 0.0  # no ping on a fresh connection
        conn.fresh = False
        if target.__class__ is Session:
            target.conn = conn
            pending, target.pending = target.pending, []
            for flow, w in pending:
                target.active += 1
                self._execute(pool, conn, flow, w, pre)
                pre = 0.0
        else:
            self._execute(pool, conn, target, work, pre)

    # ---- the query ---------------------------------------------------------------------------------
    def _execute(self, pool: ConnPool, conn: Conn, flow, work: float, pre: float) -> None:
        arg = (pool, conn, flow, pre + self.round_trip)
        if work > 0.0:
            self.server.submit(work, self._finish_cb, arg, arg[3])
        else:
            self._later(arg[3], arg)

    def _finish(self, arg) -> None:
        pool, conn, flow, _ = arg
        if self.session:
            task = flow.task
            s = self.sessions.get(task)
            if s is not None:
                s.active -= 1
                if not task.alive and s.active == 0:
                    del self.sessions[task]
                    self._checkin(pool, conn)
        elif pool.waiters or pool.dead:
            self._checkin(pool, conn)
        else:
            # hot path: _checkin with no waiter, _area inlined
            pool.in_use -= 1
            now = self.env._now
            dt = now - self.t_area
            if dt > 0.0:
                self.area_use += self.n_use * dt
                self.area_wait += self.n_wait * dt
                self.t_area = now
            self.n_use -= 1
            if len(pool.idle) < pool.size:
                pool.idle.append(conn)
            else:  # QueuePool._do_return_conn: the queue is full, so the (overflow) connection is closed
                pool.open -= 1
                self.server_open -= 1
                self.overflow_closed += 1
        self.executor.advance(flow)

    # ---- pool: check-in, waiting, failures --------------------------------------------------------
    def _checkin(self, pool: ConnPool, conn: Conn) -> None:
        if pool.dead:  # its process died: the connection was closed then
            return
        pool.in_use -= 1
        self._area()
        self.n_use -= 1
        waiters = pool.waiters
        while waiters:
            w = waiters.popleft()
            self.n_wait -= 1
            target = w[1]
            if target.task.alive:
                self.n_use += 1
                pool.in_use += 1
                self.waits.add(self.env.now - w[3])
                self._got(pool, conn, target, w[2])
                return
        if len(pool.idle) < pool.size:
            pool.idle.append(conn)
        else:  # QueuePool._do_return_conn: the queue is full, so the (overflow) connection is closed
            pool.open -= 1
            self.server_open -= 1
            self.overflow_closed += 1

    def _watch(self, pool: ConnPool) -> None:
        waiters = pool.waiters
        while waiters and not waiters[0][1].task.alive:
            waiters.popleft()
            self._area()
            self.n_wait -= 1
        if not waiters:
            pool.watching = False
            return
        pool.watching = True
        delay = waiters[0][0] - self.env.now
        call_later(self.env, delay if delay > 0.0 else 0.0, lambda _e: self._expire(pool))

    def _expire(self, pool: ConnPool) -> None:
        if pool.dead:
            return
        now = self.env.now
        limit = now + 1e-9
        waiters = pool.waiters
        while waiters and (not waiters[0][1].task.alive or waiters[0][0] <= limit):
            _deadline, target, work, t0 = waiters.popleft()
            self._area()
            self.n_wait -= 1
            if not target.task.alive:
                continue
            self.waits.add(now - t0)
            if pool.open < pool.limit:  # a slot freed while waiting: QueuePool re-checks and connects
                self._connect(pool, target, work)
            else:
                self.timeouts += 1
                self._fail(target, self.timeout_code)
        self._watch(pool)

    def _fail(self, target, code: int) -> None:
        task = target.task
        if target.__class__ is Session:
            if self.sessions.get(task) is target:
                del self.sessions[task]
        self.fail_task(task, code)

    # ---- lifecycle hooks ---------------------------------------------------------------------------
    def task_gone(self, task) -> None:
        """The task failed: give back its session connection once no call runs on it."""
        s = self.sessions.get(task)
        if s is None:
            return
        if s.conn is None:
            del self.sessions[task]  # its checkout, when it completes, sees a dead task and checks in
        elif s.active == 0:
            del self.sessions[task]
            self._checkin(s.pool, s.conn)

    def task_done(self, task) -> None:
        """The task's program ended: close its session (check the connection in)."""
        s = self.sessions.pop(task, None)
        if s is not None and s.conn is not None:
            self._checkin(s.pool, s.conn)

    def sweep_sessions(self) -> None:
        """Sessions of tasks that died by a path no hook saw (backstop; bounded by the sample interval)."""
        for task, s in list(self.sessions.items()):
            if not task.alive and s.active == 0:
                self.task_gone(task)

    def proc_gone(self, proc) -> None:
        """The process died (container killed or pod deleted): close its pool at the server."""
        pool = self.pools.pop(proc, None)
        if pool is None:
            return
        pool.dead = True
        self._area()
        self.n_wait -= len(pool.waiters)
        self.n_use -= pool.in_use
        pool.in_use = 0
        self.server_open -= pool.open
        pool.open = 0
        pool.idle.clear()
        pool.waiters.clear()

    # ---- measurements -----------------------------------------------------------------------------
    def in_use(self) -> int:
        return sum(p.in_use for p in self.pools.values())

    def waiting(self) -> int:
        return sum(len(p.waiters) for p in self.pools.values())
