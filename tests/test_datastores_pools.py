"""Connection pools against queueing theory and against SQLAlchemy's QueuePool rules.

References: Erlang B / Erlang C / M/M/c (Kleinrock, Queueing Systems Vol. 1 §3.5;
Gross & Harris §2.3), Little's law (Little 1961), SQLAlchemy ``lib/sqlalchemy/pool/impl.py``
(``QueuePool._do_get``, ``_do_return_conn``, ``_inc_overflow``/``_dec_overflow``) and
``lib/sqlalchemy/pool/base.py`` (``_ConnectionFairy._checkout``: no pre-ping on a fresh
connection), PostgreSQL ``max_connections`` / ``superuser_reserved_connections``.
"""

from __future__ import annotations

import math

import numpy as np
import simpy
from test_datastores_helpers import scenario, series, simulate

from memstack_capacity.theory import queueing as theory
from memstack_capacity.components.datastores.budget import connection_budget
from memstack_capacity.components.datastores.sql import SqlStore
from memstack_capacity.components.flows import CALL, Executor, Task
from memstack_capacity.components.pods import Proc
from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.components.sampling import Sampler
from memstack_capacity.scenario.distributions import Dist
from memstack_capacity.scenario.infrastructure import PostgresSpec
from memstack_capacity.scenario.workload import CallStep


def _reasons(record, after: float):
    log = record.recorder.requests
    ta = np.frombuffer(log.t_arrival)
    return np.frombuffer(log.reason, dtype=np.int8)[ta > after]


def test_pool_without_waiting_room_blocks_as_erlang_b():
    """pool_size c, no overflow, pool_timeout 1 µs: an M/M/c/c loss system, blocking = Erlang B.

    c = 10, a = λ·h = 80/s · 0.1 s = 8 Erlang: B = 0.1217. Three seeds of ~80 000 arrivals each;
    the binomial standard error of one seed is √(B(1−B)/80 000) ≈ 0.0012, pooled ≈ 0.0007
    (arrivals in a busy period are correlated, so allow more): tolerance 0.004.
    """

    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = 80
        d["datastores"]["postgres"]["pool"].update(pool_size=10, pool_timeout="1us")

    code = REASON_CODE["pool_timeout"]
    blocked = []
    for seed in (1, 2, 3):
        _, rec = simulate(scenario(patch, duration="1000s"), seed)
        reasons = _reasons(rec, 50.0)
        blocked.append(float(np.mean(reasons == code)))
        assert set(np.unique(reasons)) <= {0, code}
    expected = theory.erlang_b(10, 8.0)
    assert abs(np.mean(blocked) - expected) < 0.004, (blocked, expected)


def test_pool_with_waiting_matches_erlang_c_and_littles_law():
    """pool_size 5, a long pool_timeout: an M/M/5 queue for connections (λ = 35/s, h = 0.1 s, ρ = 0.7).

    Erlang C: P(wait) = 0.378, Wq = 25.2 ms. Per seed (~33 000 checkouts) the mean wait scatters
    by about 5 % and P(wait) by about 1.5 %; pooled over five seeds: tolerances 8 % and 4 %
    (≥ 3.5 standard errors). Little's law holds on every sample path, so the exact time averages
    of waiting checkouts and of connections in use must equal rate × mean time to within edge
    effects (1 %).
    """

    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = 35

    th = theory.mmc(35.0, 10.0, 5)
    waits, p_wait = [], []
    for seed in (1, 2, 3, 4, 5):
        model, rec = simulate(scenario(patch, duration="1000s"), seed)
        ds = rec.datastores["postgres"]
        store = model.datastores.stores["postgres"]
        span = 1000.0 - 50.0
        waits.append(ds["pool_wait_s"]["mean"])
        p_wait.append(len(store.waits.positive) / store.waits.count)
        rate = ds["checkouts"] / span
        # Little: L_q = λ·W_q (both measured in this run)
        assert math.isclose(ds["pool_waiters_mean"], rate * ds["pool_wait_s"]["mean"], rel_tol=0.01)
        # Little on the connections: L = λ·E[hold] with E[hold] = 0.1 s (no round trips, no connect time)
        assert math.isclose(ds["connections_in_use_mean"], rate * 0.1, rel_tol=0.03)
        assert ds["connections_max"] == 5 and ds["pool_timeouts"] == 0
    assert abs(np.mean(waits) / th.wq_s - 1) < 0.08, (waits, th.wq_s)
    assert abs(np.mean(p_wait) / th.p_wait - 1) < 0.04, (p_wait, th.p_wait)


def test_refusals_exactly_when_server_connections_run_out():
    """PostgreSQL refuses a connection beyond max_connections − superuser_reserved_connections.

    limit = 13 − 3 = 10. Three pods × pool 5 can ask for 15: refusals happen, each one when the
    server already has 10 open, and the server never has more than 10. Two pods × 5 = 10 fit:
    no refusal under the same overload.
    """

    def patch(pods):
        def p(d):
            d["workload"]["arrivals"]["profile"][0]["rps"] = 300 * pods
            d["workload"]["requests"][0]["steps"] = [{"call": "postgres", "time": "20ms"}]
            d["deployments"]["api"]["replicas"] = pods
            d["datastores"]["postgres"].update(max_connections=13, superuser_reserved_connections=3,
                                               connect_time="2ms")
            d["datastores"]["postgres"]["pool"].update(pool_size=1, max_overflow=4, pool_timeout="100ms")
        return p

    for pods, expect_refusals in ((3, True), (2, False)):
        sc = scenario(patch(pods), duration="20s", warmup="0s")
        from memstack_capacity.engine.des.build import build
        from memstack_capacity.engine.des.run import finish, start_model

        model = build(sc, 7)
        store = model.datastores.stores["postgres"]
        seen = []
        connect = store._connect

        def spy(pool, target, work, slot_held=False, _connect=connect):
            seen.append((store.server_open, store.refused))
            _connect(pool, target, work, slot_held)
            assert store.server_open <= 10

        store._connect = spy
        start_model(model)
        model.env.run(until=sc.duration)
        ds = finish(model, 0.0, "des").datastores["postgres"]
        refusals = [open_ for (open_, before), (_, after) in zip(seen, seen[1:] + [(0, store.refused)]) if after > before]
        if expect_refusals:
            assert ds["refused"] > 0 and all(o == 10 for o in refusals)
            assert ds["connections_max"] == 10
            reasons = _reasons(finish(model, 0.0, "des"), 0.0)
            # each refusal fails its request connect_time later: only those still pending at the end are missing
            assert 0 <= ds["refused"] - np.count_nonzero(reasons == REASON_CODE["connection_refused"]) <= 5
        else:
            assert ds["refused"] == 0 and ds["connections_max"] <= 10


# ---- a tiny harness driving the store directly ----------------------------------------------------
class _Harness:
    def __init__(self, **spec):
        self.env = simpy.Environment()
        self.executor = Executor()
        self.done: list = []
        self.failed: list = []
        self.executor.on_task_done = lambda task: self.done.append((self.env.now, task))
        self.spec = PostgresSpec(kind="postgresql", **spec)
        self.store = SqlStore(self.env, "pg", self.spec, self.executor, self._fail)
        self.executor.handlers[CALL] = self.store.handle
        self.proc = Proc()

    def _fail(self, task, code):
        task.alive = False
        self.failed.append((self.env.now, code))

    def start(self, hold: float, n: int = 1, repeat: int = 1):
        step = CallStep(call="pg", time=hold)
        sampler = Sampler(Dist(dist="constant", mean=hold), np.random.default_rng(0))
        prog = ((CALL, "pg", sampler, step, None),) * repeat
        for _ in range(n):
            task = Task("request", 0, self.env.now, None, 0, prog)
            task.proc = self.proc
            self.executor.start(task)


def test_overflow_connections_are_closed_on_check_in():
    """QueuePool._do_return_conn: a check-in when pool_size connections are already idle closes it.

    pool_size 2, max_overflow 3: five concurrent calls open five connections; when they are
    back only two stay open (idle), three are closed at the server. A sixth concurrent call waits
    and gets the first connection checked in.
    """
    h = _Harness(cores=100, connect_time=0.0, round_trip=0.0,
                 pool={"pool_size": 2, "max_overflow": 3, "pool_timeout": 10})
    h.start(hold=1.0, n=6)
    h.env.run(until=0.5)
    pool = h.store.pools[h.proc]
    assert (pool.open, pool.in_use, len(pool.waiters), h.store.server_open) == (5, 5, 1, 5)
    h.env.run(until=1.5)  # five finish at 1.0: the first goes to the waiter, two fill the idle queue, two close
    assert (pool.open, pool.in_use, len(pool.idle), h.store.server_open) == (3, 1, 2, 3)
    assert h.store.overflow_closed == 2
    h.env.run(until=3.0)  # the sixth comes back to a full idle queue: closed too
    assert len(h.done) == 6 and (pool.open, len(pool.idle), h.store.server_open) == (2, 2, 2)
    assert h.store.overflow_closed == 3


def test_pre_ping_connect_time_and_recycle_cost_what_they_should():
    """Timing of one call: connect_time on a new connection, no pre-ping on a fresh one
    (``_ConnectionFairy._checkout``), one round trip of pre-ping on reuse, a reconnect when
    older than pool_recycle."""
    h = _Harness(cores=1, connect_time=0.01, round_trip=0.001,
                 pool={"pool_size": 1, "max_overflow": 0, "pool_pre_ping": True, "pool_recycle": 5})
    h.start(hold=0.1, repeat=3)
    h.env.run(until=1.0)
    t_end = h.done[0][0]
    # 1st: connect 10 ms + 100 ms + rt; 2nd and 3rd: ping rt + 100 ms + rt
    assert math.isclose(t_end, 0.01 + 0.1 + 0.001 + 2 * (0.001 + 0.1 + 0.001), rel_tol=1e-9)
    h.env.run(until=10.0)
    h.start(hold=0.1)
    h.env.run(until=20.0)
    assert h.store.recycled == 1 and h.store.connects == 2
    assert math.isclose(h.done[1][0] - 10.0, 0.01 + 0.1 + 0.001, rel_tol=1e-9)


def test_pool_timeout_fails_after_exactly_pool_timeout():
    h = _Harness(cores=100, connect_time=0.0, round_trip=0.0,
                 pool={"pool_size": 1, "max_overflow": 0, "pool_timeout": 2})
    h.start(hold=5.0, n=3)
    h.env.run(until=10.0)
    assert h.failed == [(2.0, REASON_CODE["pool_timeout"]), (2.0, REASON_CODE["pool_timeout"])]
    assert len(h.done) == 1 and h.store.timeouts == 2


def test_query_execution_is_processor_sharing_over_cores():
    """Four 1-second queries on 2 cores finish together at 2 s (each gets half a core)."""
    h = _Harness(cores=2, connect_time=0.0, round_trip=0.0, pool={"pool_size": 10, "max_overflow": 0})
    h.start(hold=1.0, n=4)
    h.env.run(until=5.0)
    assert [round(t, 9) for t, _ in h.done] == [2.0] * 4
    assert math.isclose(h.store.server.busy_now(), 4.0)


def test_dead_container_closes_its_connections_at_the_server():
    """A container death drops its tasks and its pool: the server's count falls by the pool's connections."""

    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = 200
        d["deployments"]["api"]["replicas"] = 2
        d["datastores"]["postgres"]["pool"].update(pool_size=5, max_overflow=5)

    sc = scenario(patch, duration="30s", warmup="0s")
    from memstack_capacity.engine.des.build import build
    from memstack_capacity.engine.des.run import start_model

    model = build(sc, 3)
    start_model(model)
    model.env.run(until=10.0)
    store = model.datastores.stores["postgres"]
    api = model.runtimes["api"]
    pod = api.pods[0]
    pool = store.pools[pod.procs[0]]
    before, held = store.server_open, pool.open
    assert held > 0
    api.container_died(pod, "container_restarted")
    assert store.server_open == before - held
    assert pool.dead and not pod.tasks
    model.env.run(until=30.0)
    live = sum(p.open for p in store.pools.values())
    assert store.server_open == live  # nothing leaked: the server's count is the live pools' connections


def test_session_mode_holds_one_connection_per_request():
    """session: true — one checkout per request however many calls, held until the request ends."""

    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = 20
        d["workload"]["requests"][0]["steps"] = [
            {"call": "postgres", "repeat": 4, "time": "5ms"},
            {"cpu": "20ms"},
            {"parallel": [{"call": "postgres", "time": "5ms"}, {"call": "postgres", "time": "5ms"}]},
        ]
        d["datastores"]["postgres"]["session"] = True

    model, rec = simulate(scenario(patch, duration="200s"), 5)
    ds = rec.datastores["postgres"]
    completed = int(np.count_nonzero(_reasons(rec, 50.0) == 0))
    assert abs(ds["checkouts"] - completed) <= 5  # one per request (edges of the window aside)
    assert abs(ds["calls"] / ds["checkouts"] - 6) < 0.05
    # the connection is held for the whole request (its first step is the first call), so by
    # Little's law connections in use = request rate × mean request latency
    log = rec.recorder.requests
    ta, te = np.frombuffer(log.t_arrival), np.frombuffer(log.t_end)
    keep = ta > 50.0
    latency = float(np.mean((te - ta)[keep]))
    assert latency > 0.045  # 4·5 ms + 20 ms CPU (slowed by sharing the core) + 5 ms
    assert math.isclose(ds["connections_in_use_mean"], ds["checkouts"] / 150.0 * latency, rel_tol=0.03)
    assert len(model.datastores.stores["postgres"].sessions) <= 3  # only requests still in flight


def test_connection_budget_counts_max_replicas_and_surge():
    """Upstream: pool 20 + overflow 40 per process, API maxReplicas 20 with maxSurge 25 % (rounded up: 5)."""
    from types import SimpleNamespace

    def patch(d):
        d["datastores"]["postgres"]["pool"].update(pool_size=20, max_overflow=40)
        d["datastores"]["postgres"]["max_connections"] = 100

    sc = scenario(patch)
    budget = connection_budget(sc)["postgres"]
    assert budget["limit"] == 97 and budget["deployments"]["api"]["pods_max"] == 1 + 1  # replicas 1, surge ceil(0.25)
    api = sc.deployments["api"].model_copy(update={"hpa": SimpleNamespace(maxReplicas=20)})
    sc2 = sc.model_copy(update={"deployments": {"api": api}})
    b2 = connection_budget(sc2)["postgres"]
    assert b2["deployments"]["api"]["surge"] == 5 and b2["demand"] == 25 * 60 and not b2["fits"]
    api3 = sc.deployments["api"].model_copy(update={"hpa": SimpleNamespace(maxReplicas=3)})
    b3 = connection_budget(sc.model_copy(update={"deployments": {"api": api3}}))["postgres"]
    assert b3["demand"] == 4 * 60
