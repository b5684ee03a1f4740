"""The compiled data plane's state: a scenario laid out as arrays.

:func:`lay_out` turns a scenario into a :class:`State` (one namedtuple of numpy arrays, what
``loop.advance`` reads and writes): step programs as flat operation tables, one random-number
row per sampler (the general engine's stream names, drawn in its blocks), the pods and their
processes, each pooled datastore's server and per-process pools, each external API's
per-process semaphores, the users, and the tables of flows, tasks and connections with their
free lists (their upkeep between the loop's calls is in :mod:`.tables`).
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.components.sampling import BLOCK, _block_drawer
from memstack_capacity.components.workload import user_changes
from memstack_capacity.engine.fast import loop, tables
from memstack_capacity.engine.rng import stream
from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.workload import CallStep, CpuStep, EnqueueStep, ExternalStep, ParallelStep, RepeatStep


State = namedtuple("State", [name for name, _ in loop.STATE_FIELDS])

UNLIMITED = 1 << 40  # a pool or server limit that never binds, as an integer


@dataclass
class Stores:
    """The scenario's datastores as the loop indexes them."""

    pooled: list  # names, in scenario order: index s of the sv_/st_ arrays
    external: list  # names: index x of the ex_ arrays
    specs: dict


class Rows:
    """Random-number rows: each a named stream of the general engine, drawn in its blocks."""

    def __init__(self, seed: int):
        self.seed = seed
        self.fills: list = []
        self.by_name: dict = {}

    def row(self, name: str, dist=None) -> int:
        """The row of stream `name` (one per name: repeated steps share their sampler)."""
        if name in self.by_name:
            return self.by_name[name]
        rng = stream(self.seed, name)
        if dist is None:
            fill = lambda rng=rng: rng.random(BLOCK)  # noqa: E731 - components.sampling.Uniforms' draws
        else:
            fill = _block_drawer(dist, rng)
        self.fills.append(fill)
        self.by_name[name] = len(self.fills) - 1
        return self.by_name[name]


class Programs:
    """Step programs as flat tables: a program is a range of operations; ``parallel`` names a
    range of the branch table, each branch a program of its own."""

    def __init__(self, rows: Rows, stores: Stores, jobs: list):
        self.rows, self.stores, self.jobs = rows, stores, jobs
        self.kind: list = []
        self.a: list = []
        self.b: list = []
        self.samp: list = []
        self.br_start: list = []
        self.br_end: list = []
        self.widest = 1  # the most flows one task can have at once

    def emit(self, steps: list, path: str) -> tuple[int, int]:
        """Lay out `steps` (named as components.flows.compile_steps names their streams)."""
        local = self._ops(steps, path)
        start = len(self.kind)
        for kind, a, b, samp, _ in local:
            self.kind.append(kind)
            self.a.append(a)
            self.b.append(b)
            self.samp.append(samp)
        end = len(self.kind)
        for i, (kind, _, _, _, branches) in enumerate(local):
            if kind == loop.OP_PARALLEL:
                first = len(self.br_start)
                self.a[start + i] = first
                self.br_start.extend([0] * len(branches))
                self.br_end.extend([0] * len(branches))
                for j, (bsteps, bpath) in enumerate(branches):
                    self.br_start[first + j], self.br_end[first + j] = self.emit(bsteps, bpath)
        return start, end

    def _ops(self, steps: list, path: str) -> list:
        ops: list = []
        for i, step in enumerate(steps):
            where = f"{path}/{i}"
            if isinstance(step, RepeatStep):
                ops.extend(self._ops(step.steps, where) * step.repeat)
                continue
            if isinstance(step, CpuStep):
                op = (loop.OP_CPU, 0, 0, self.rows.row(where, step.cpu), None)
            elif isinstance(step, CallStep):
                samp = self.rows.row(where, step.time) if step.time is not None else -1
                op = (loop.OP_CALL, self.stores.pooled.index(step.call), 0, samp, None)
            elif isinstance(step, ExternalStep):
                op = (loop.OP_EXTERNAL, self.stores.external.index(step.external), 0, -1, None)
            elif isinstance(step, EnqueueStep):
                op = (loop.OP_ENQUEUE, self.jobs.index(step.enqueue), 0, -1, None)
            elif isinstance(step, ParallelStep):
                branches = [([s], f"{where}/{j}") for j, s in enumerate(step.parallel)]
                self.widest = max(self.widest, len(branches) * self._width(step.parallel))
                op = (loop.OP_PARALLEL, 0, len(branches), -1, branches)
            else:  # pragma: no cover - the capability table admits no other step here
                raise TypeError(f"the compiled data plane has no step {step!r}")
            ops.extend([op] * step.repeat)
        return ops

    def _width(self, steps: list) -> int:
        widest = 1
        for step in steps:
            if isinstance(step, ParallelStep):
                widest = max(widest, len(step.parallel) * self._width(step.parallel))
            elif isinstance(step, RepeatStep):
                widest = max(widest, self._width(step.steps))
        return widest


def _i(n, value=0):
    return np.full(n, value, dtype=np.int64)


def _f(n, value=0.0):
    return np.full(n, value, dtype=np.float64)


@dataclass
class Start:
    """What ``loop.start`` schedules: the users present at t = 0 and the population's changes."""

    initial: int
    change_t: np.ndarray
    change_d: np.ndarray


def lay_out(scenario, seed: int, slots: int, arrivals: np.ndarray | None, users: list | None):
    """The state of a run of `scenario` with `seed` at t = 0 (a :class:`State`), its datastores'
    indices, its random-number rows and what it starts with: room for `slots` API containers (a
    pod's container incarnation is a slot; Python adds them, :func:`grow_slots` makes room), open
    `arrivals` (times) or closed users following `users` ((t, users) points)."""
    api = scenario.api
    wl = scenario.workload
    ds = scenario.datastores
    stores = Stores([n for n, s in ds.items() if KINDS[s.kind].pooled],
                    [n for n, s in ds.items() if not KINDS[s.kind].pooled and not KINDS[s.kind].is_cache], ds)
    rows = Rows(seed)
    closed = wl.users is not None
    # fixed rows first (their indices are parameters), then every step's sampler
    think = rows.row("workload/users/think", wl.users.think_time) if closed else rows.row("workload/users/think")
    users_u = rows.row("workload/users/uniform")
    mix = rows.row("workload/mix")
    balancer = rows.row("balancer/api")
    ext_rows = [rows.row(f"datastores/{n}/latency", ds[n].latency) for n in stores.external]
    programs = Programs(rows, stores, [j.name for j in wl.jobs])
    cls_range = [programs.emit(c.steps, f"requests/{c.name}") for c in wl.requests]
    cls_range += [programs.emit(j.steps, f"jobs/{j.name}") for j in wl.jobs]

    deps = list(scenario.deployments.values())
    n_pods = slots
    n_procs = slots * max(d.processes for d in deps)
    width = programs.widest
    per_proc = max(d.concurrency for d in deps) * width
    backlog = max(1, max(d.backlog for d in deps))
    # tables start at what the initial pods can hold (the loop asks for more when one is half full)
    initial = sum(d.replicas * d.processes * d.concurrency for d in deps) * width
    flows = max(1 << 14, min(_capacity(4 * initial), 1 << 18))
    tasks = flows
    jobs = 1 << 12 if wl.jobs else 1

    P = _i(loop.P_SIZE)
    P[loop.P_RANDOM] = api.load_balancing == "random"
    P[loop.P_CLOSED] = closed
    retry = wl.users.retry if closed else None
    P[loop.P_RETRY_ATTEMPTS] = retry.attempts if retry is not None else 0
    P[loop.P_NARRIVALS] = 0 if arrivals is None else len(arrivals)
    P[loop.P_NCLASSES] = len(wl.requests)
    P[loop.P_S_THINK], P[loop.P_S_USERS_U], P[loop.P_S_MIX], P[loop.P_S_BALANCER] = think, users_u, mix, balancer
    PF = _f(loop.PF_SIZE)
    PF[loop.PF_TIMEOUT] = float(wl.timeout)
    PF[loop.PF_WARMUP] = float(scenario.warmup)
    if retry is not None:
        PF[loop.PF_RETRY_BACKOFF], PF[loop.PF_RETRY_MULT] = float(retry.backoff), float(retry.multiplier)
        PF[loop.PF_RETRY_JITTER] = float(retry.jitter or 0.0)

    total = sum(c.weight for c in wl.requests)
    cum, acc = [], 0.0
    for c in wl.requests:
        acc += c.weight / total
        cum.append(acc)
    cum[-1] = 1.0

    changes = user_changes(users, float(scenario.duration)) if closed else []
    initial = _initial_users(users) if closed else 0
    n_users = max(1, initial + sum(1 for _, d in changes if d > 0))

    ext = [ds[n] for n in stores.external]
    n_ext = max(1, len(ext))
    P[loop.P_NEXT] = n_ext
    pooled = [ds[n] for n in stores.pooled]
    n_pooled = max(1, len(pooled))
    P[loop.P_NPOOLED] = n_pooled
    settings = [_pool_settings(s) for s in pooled]
    conn_per_pool = max([min(lim, per_proc + 16) if lim < UNLIMITED else per_proc + 16 for _, lim, *_ in settings],
                        default=1)
    conns = _capacity(64 + 2 * n_pooled * n_procs * conn_per_pool)

    n_rows = len(rows.fills)
    st = State(
        G=_i(loop.G_SIZE), P=P, PF=PF,
        draws=_f((n_rows, tables.ROW)), draw_i=_i(n_rows), draw_n=_i(n_rows),
        ev_t=_f(1 << 12), ev_s=_i(1 << 12), ev_k=_i(1 << 12), ev_a=_i(1 << 12), ev_b=_i(1 << 12),
        op_kind=np.asarray(programs.kind, dtype=np.int64), op_a=np.asarray(programs.a, dtype=np.int64),
        op_b=np.asarray(programs.b, dtype=np.int64), op_samp=np.asarray(programs.samp, dtype=np.int64),
        br_start=np.asarray(programs.br_start or [0], dtype=np.int64),
        br_end=np.asarray(programs.br_end or [0], dtype=np.int64),
        cls_start=np.asarray([a for a, _ in cls_range], dtype=np.int64),
        cls_end=np.asarray([b for _, b in cls_range], dtype=np.int64),
        cls_mem=np.asarray([int(c.memory) for c in wl.requests] + [int(j.memory) for j in wl.jobs], dtype=np.int64),
        cls_cum=np.asarray(cum, dtype=np.float64),
        arrivals=np.asarray(arrivals if arrivals is not None else [0.0], dtype=np.float64),
        u_retiring=_i(n_users), u_attempt=_i(n_users, 1), u_cls=_i(n_users, -1), active=_i(n_users),
        f_task=_i(flows), f_pc=_i(flows), f_end=_i(flows), f_parent=_i(flows), f_pending=_i(flows),
        f_pool=_i(flows), f_conn=_i(flows), f_work=_f(flows), f_deadline=_f(flows), f_tenq=_f(flows),
        f_reply=_f(flows), flow_free=np.arange(flows - 1, -1, -1, dtype=np.int64), stack=_i(flows),
        t_cls=_i(tasks), t_t0=_f(tasks), t_user=_i(tasks), t_pod=_i(tasks), t_proc=_i(tasks), t_alive=_i(tasks),
        t_gone=_i(tasks), t_nflows=_i(tasks), t_inback=_i(tasks), t_indq=_i(tasks), t_inpod=_i(tasks),
        t_free=_i(tasks, 1), task_free=np.arange(tasks - 1, -1, -1, dtype=np.int64),
        dq=_i((1, tasks)), dq_head=_i(1), dq_len=_i(1),
        a_cls=_i(1 << 16), a_t0=_f(1 << 16), a_end=_f(1 << 16), a_status=_i(1 << 16), a_reason=_i(1 << 16),
        a_pod=_i(1 << 16),
        endpoints=_i(n_pods), pod_killed=_i(n_pods, 1), pod_refuse=_i(n_pods), pod_mem_limit=_i(n_pods), pod_index=_i(n_pods),
        pl_dead=_i(n_pooled * n_procs), note_kind=_i(256), note_value=_i(256), note_time=_f(256),
        sl_first=_i(n_pods), sl_nprocs=_i(n_pods), sl_conc=_i(n_pods), sl_backlog=_i(n_pods), t_job=_i(tasks, -1),
        j_cls=_i(jobs), j_t0=_f(jobs), j_attempt=_i(jobs), j_task=_i(jobs), j_counted=_i(jobs), j_pod=_i(jobs),
        j_open=_i(jobs),
        jc_attempts=np.asarray([j.retry.maximum_attempts for j in wl.jobs] or [1], dtype=np.int64),
        jc_initial=np.asarray([float(j.retry.initial_interval) for j in wl.jobs] or [0.0]),
        jc_coeff=np.asarray([float(j.retry.backoff_coefficient) for j in wl.jobs] or [1.0]),
        jc_max_interval=np.asarray([float(j.retry.maximum_interval) for j in wl.jobs] or [0.0]),
        jc_timeout=np.asarray([float(j.start_to_close_timeout) for j in wl.jobs] or [0.0]),
        jc_heartbeat=np.asarray([float(getattr(j, "heartbeat_timeout", None) or 0.0) for j in wl.jobs] or [0.0]),
        jq=_i((1, 1 << 12)), jq_head=_i(1), jq_len=_i(1), jstat=_i(loop.JS_SIZE), pollers=_i(n_pods),
        jl_cls=_i(1 << 14), jl_t0=_f(1 << 14), jl_end=_f(1 << 14), jl_status=_i(1 << 14), jl_reason=_i(1 << 14),
        jl_pod=_i(1 << 14),
        pod_inflight=_i(n_pods),
        pod_mem=_i(n_pods, int(api.memory_base)), pod_mem_peak=_i(n_pods, int(api.memory_base)),
        pod_backlog=_i((n_pods, backlog)), pod_bhead=_i(n_pods), pod_blen=_i(n_pods),
        pr_pod=_i(n_procs), pr_inflight=_i(n_procs), pr_n=_i(n_procs),
        pr_token=_i(n_procs), pr_seq=_i(n_procs), pr_V=_f(n_procs), pr_tlast=_f(n_procs), pr_used=_f(n_procs),
        pr_due=_f(n_procs, math.inf),
        pr_hkey=_f((n_procs, 2 * per_proc + 64)), pr_hseq=_i((n_procs, 2 * per_proc + 64)),
        pr_hitem=_i((n_procs, 2 * per_proc + 64)),
        sv_n=_i(len(pooled)), sv_token=_i(n_pooled), sv_seq=_i(n_pooled), sv_completed=_i(n_pooled),
        sv_V=_f(n_pooled), sv_tlast=_f(n_pooled), sv_due=_f(n_pooled, math.inf), sv_busy=_f(n_pooled),
        sv_cores=np.asarray([float(s.cores) for s in pooled] or [1.0]), sv_speed=_f(n_pooled, 1.0),
        st_down=_i(n_pooled), st_down_end=_f(n_pooled), ex_down=_i(n_ext), ex_down_end=_f(n_ext),
        ex_factor=_f(n_ext, 1.0),
        sv_hkey=_f((n_pooled, 2 * n_procs * conn_per_pool + 64)), sv_hseq=_i((n_pooled, 2 * n_procs * conn_per_pool + 64)),
        sv_hitem=_i((n_pooled, 2 * n_procs * conn_per_pool + 64)),
        st_pool_size=np.asarray([s[0] for s in settings] or [0], dtype=np.int64),
        st_pool_limit=np.asarray([s[1] for s in settings] or [0], dtype=np.int64),
        st_pool_timeout=np.asarray([s[2] for s in settings] or [0.0], dtype=np.float64),
        st_pre_ping=np.asarray([s[3] for s in settings] or [0], dtype=np.int64),
        st_recycle=np.asarray([s[4] for s in settings] or [0.0], dtype=np.float64),
        st_server_limit=np.asarray([s[5] for s in settings] or [0], dtype=np.int64),
        st_round_trip=np.asarray([float(s.round_trip) for s in pooled] or [0.0]),
        st_connect_time=np.asarray([float(s.connect_time) for s in pooled] or [0.0]),
        st_timeout_code=np.asarray([s[6] for s in settings] or [0], dtype=np.int64),
        st_refused_code=_i(n_pooled, REASON_CODE["connection_refused"]),
        st_calls=_i(n_pooled), st_timeouts=_i(n_pooled), st_refused=_i(n_pooled), st_connects=_i(n_pooled),
        st_overflow_closed=_i(n_pooled), st_recycled=_i(n_pooled), st_server_open=_i(n_pooled), st_peak=_i(n_pooled),
        st_nuse=_i(n_pooled), st_nwait=_i(n_pooled), st_area_use=_f(n_pooled), st_area_wait=_f(n_pooled),
        st_tarea=_f(n_pooled), st_wzeros=_i(n_pooled),
        pl_open=_i(n_pooled * n_procs), pl_inuse=_i(n_pooled * n_procs), pl_watching=_i(n_pooled * n_procs),
        pl_idle=_i((n_pooled * n_procs, conn_per_pool)), pl_idle_head=_i(n_pooled * n_procs),
        pl_idle_len=_i(n_pooled * n_procs),
        pl_wait=_i((n_pooled * n_procs, 2 * per_proc + 64)), pl_wait_head=_i(n_pooled * n_procs),
        pl_wait_len=_i(n_pooled * n_procs),
        cn_born=_f(conns), cn_fresh=_i(conns), conn_free=np.arange(conns - 1, -1, -1, dtype=np.int64),
        w_store=_i(1 << 16), w_val=_f(1 << 16),
        ex_conc=np.asarray([s.concurrency for s in ext] or [1], dtype=np.int64),
        ex_retries=np.asarray([s.retries for s in ext] or [0], dtype=np.int64),
        ex_backoff=np.asarray([float(s.retry_backoff) for s in ext] or [0.0]),
        ex_window=np.asarray([float(s.rate_window) for s in ext] or [1.0]),
        ex_budget=np.asarray([-1 if s.rate_limit is None else max(1, math.floor(s.rate_limit * float(s.rate_window) + 1e-9))
                              for s in ext] or [-1], dtype=np.int64),
        ex_code=_i(n_ext, REASON_CODE["rate_limited"]), ex_samp=np.asarray(ext_rows or [0], dtype=np.int64),
        ex_win_index=_i(n_ext, -1), ex_win_count=_i(n_ext), ex_win_max=_i(n_ext), ex_in_flight=_i(n_ext),
        ex_calls=_i(n_ext), ex_rejected=_i(n_ext), ex_failed=_i(n_ext), ex_wrejected=_i(n_ext),
        ex_max_in_use=_i(n_ext), sm_inuse=_i(n_ext * n_procs),
        sm_wait=_i((n_ext * n_procs, 2 * per_proc + 64)), sm_wait_head=_i(n_ext * n_procs),
        sm_wait_len=_i(n_ext * n_procs),
    )
    st.G[loop.G_FLOWTOP] = flows
    st.G[loop.G_TASKTOP] = tasks
    st.G[loop.G_CONNTOP] = conns
    st.G[loop.G_RR] = 0
    for r in range(n_rows):
        tables.fill_row(st, rows.fills[r], r)
    start = Start(initial, np.asarray([t for t, _ in changes], dtype=np.float64),
                  np.asarray([d for _, d in changes], dtype=np.int64))
    return st, stores, rows, start


def _capacity(n: int) -> int:
    return 1 << max(10, int(math.ceil(math.log2(max(n, 2)))))


def _initial_users(points: list) -> int:
    at, users = points[0]
    return int(users) if at <= 0 else 0


def _pool_settings(spec) -> tuple:
    """(idle kept, open at most, timeout, pre-ping, recycle, server limit, timeout reason) as
    components.datastores.sql.SqlStore and pools.ConnPool read a store's spec."""
    p = spec.pool
    if KINDS[spec.kind].queue_pool:
        size, overflow, timeout = p.pool_size, p.max_overflow, float(p.pool_timeout)
        pre_ping, recycle = int(bool(p.pool_pre_ping)), float(p.pool_recycle) if p.pool_recycle else math.inf
        server = max(0, spec.max_connections - spec.superuser_reserved_connections)
        code = REASON_CODE["pool_timeout"]
    else:
        size, overflow, timeout = p.max_connection_pool_size, 0, float(p.connection_acquisition_timeout)
        pre_ping, recycle, server, code = 0, math.inf, UNLIMITED, REASON_CODE["acquisition_timeout"]
    unlimited = overflow == -1 or size == 0
    kept = size if size > 0 else UNLIMITED
    limit = UNLIMITED if unlimited else size + overflow
    return kept, limit, timeout, pre_ping, recycle, server, code
