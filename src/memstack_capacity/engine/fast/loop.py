"""The compiled data plane: every request, query and timer of a run in one event loop.

One numba function (:func:`advance`) plays the data plane's events in time order up to a
given instant: arrivals (open, or closed users with think times and retries), admission to a
pod (fewest in flight, FIFO backlog, 503 beyond it), each request's step program (``cpu``
steps by processor sharing per process, ``call`` steps through the process's connection pool
to a processor-sharing database server, ``external`` steps through the process's semaphore
and the provider's rate limit, ``parallel`` branches), the client's timeout (504, the server
keeps working) and every failure a datastore can cause (500). It is the general engine's
model (components/), written again over arrays: the same rules, the same constants, in the
same order within an event; only the order in which random numbers are drawn differs, so a
run is another sample of the same model (tests/test_fast.py checks it against the general
engine and the closed forms).

The loop returns to Python at the instant asked for, or earlier when a random-number buffer
runs low or a table fills (the caller refills or grows it and calls again): state lives in
arrays that persist between calls (:class:`State`, built by ``engine/fast/layout.py``).

Everything compiled is in this one module on purpose: numba's on-disk cache is keyed on the
file that holds the function, so a change to a helper elsewhere would not invalidate it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.experimental import structref

# ---- event kinds ------------------------------------------------------------------------------------
EV_ARRIVAL, EV_USER_SEND, EV_USER_CHANGE, EV_PROC_DUE, EV_SERVER_DUE, EV_QUERY_DONE = 0, 1, 2, 3, 4, 5
EV_CONNECTED, EV_REFUSED, EV_POOL_EXPIRE, EV_EXT_DONE, EV_EXT_RETRY, EV_INGRESS_EXPIRE = 6, 7, 8, 9, 10, 11
EV_JOB_TIMEOUT, EV_JOB_RETRY, EV_DOWN_FAIL = 12, 13, 14

# ---- step kinds -------------------------------------------------------------------------------------
OP_CPU, OP_CALL, OP_EXTERNAL, OP_PARALLEL, OP_ENQUEUE = 0, 1, 2, 3, 4

# ---- return codes of advance ----------------------------------------------------------------------
DONE, REFILL, GROW, NOTES = 0, 1, 2, 3

# ---- what the loop tells Python (the notes' kinds) ----------------------------------------------------
NOTE_PROBE, NOTE_OOM = 0, 1

# ---- status and reason codes (components/recorder.py) ----------------------------------------------
OK, E503, E504, E502, E500 = 0, 1, 2, 3, 4
R_BACKLOG_FULL, R_NO_ENDPOINTS, R_TIMEOUT, R_OOM, R_RESTARTED = 1, 2, 3, 4, 5
R_CONNECTION_REFUSED = 8
#: A store's outage (``st_down`` / ``ex_down``): up, failing calls at once, failing them when it ends.
DOWN_NONE, DOWN_REFUSED, DOWN_TIMEOUT = 0, 1, 2

# ---- the integer globals G[...] -------------------------------------------------------------------
G_EVN, G_EVSEQ, G_REFILL, G_GROW, G_ARRIVED, G_INFLIGHT, G_RR = 0, 1, 2, 3, 4, 5, 6
G_NACTIVE, G_DQHEAD, G_DQLEN, G_WATCHING, G_NANS, G_NWAIT = 7, 8, 9, 10, 11, 12
G_FLOWTOP, G_TASKTOP, G_CONNTOP, G_SP, G_NEXTUSER = 13, 14, 15, 16, 17
G_NEP, G_NOTES = 18, 19  # endpoints; notes for Python (probes answered, containers OOMKilled)
G_NPOLL, G_NJL, G_NJOBS, G_DISPATCH = 20, 21, 22, 23  # the job queue's pollers, job-log rows, jobs, dispatch due
G_NEED_ARRIVALS = 24  # the open arrivals' block is used up and more follow (Python loads the next)
G_SIZE = 25

# ---- the job queue's counters JS[...] (components/workers.py TaskQueue) -------------------------------
JS_ENQUEUED, JS_COMPLETED, JS_FAILED, JS_RUNNING, JS_WAITING_RETRY, JS_STALE = 0, 1, 2, 3, 4, 5
JS_RETRIES, JS_RETRIES_COUNTED, JS_CRASHES, JS_BACKLOG_MAX, JS_WIN_COMPLETED, JS_WIN_FAILED, JS_WIN_RETRIES = (
    6, 7, 8, 9, 10, 11, 12)
JS_SIZE = 13

# ---- the scenario's integer parameters P[...] and float parameters PF[...] ----------------------
P_RANDOM, P_CLOSED, P_RETRY_ATTEMPTS, P_NARRIVALS, P_MORE_ARRIVALS = 0, 1, 2, 3, 4
P_NCLASSES, P_S_THINK, P_S_USERS_U, P_S_MIX, P_S_BALANCER, P_NPOOLED, P_NEXT = 5, 6, 7, 8, 9, 10, 11
P_SIZE = 12
PF_TIMEOUT, PF_RETRY_BACKOFF, PF_RETRY_MULT, PF_RETRY_JITTER, PF_WARMUP = 0, 1, 2, 3, 4
PF_SIZE = 5

# A table (flows, tasks, connections, heaps) asks to grow when it is this full: no single event
# can fill the rest.
GROW_AT = 0.5
# A random-number row asks for a refill when fewer draws than this are left.
DRAW_MARGIN = 256



@structref.register
class StateType(types.StructRef):
    """The numba type of the loop's state: a struct of arrays passed by reference."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


I1, F1 = types.int64[::1], types.float64[::1]
I2, F2 = types.int64[:, ::1], types.float64[:, ::1]
#: The loop's state: every field's name and array type (the namedtuple layout.State has the same names).
STATE_FIELDS = (
    ("G", I1), ("P", I1), ("PF", F1), ("draws", F2),
    ("draw_i", I1), ("draw_n", I1), ("ev_t", F1), ("ev_s", I1),
    ("ev_k", I1), ("ev_a", I1), ("ev_b", I1), ("op_kind", I1),
    ("op_a", I1), ("op_b", I1), ("op_samp", I1), ("br_start", I1),
    ("br_end", I1), ("cls_start", I1), ("cls_end", I1), ("cls_mem", I1),
    ("cls_cum", F1), ("arrivals", F1), ("u_retiring", I1), ("u_attempt", I1),
    ("u_cls", I1), ("active", I1), ("f_task", I1), ("f_pc", I1),
    ("f_end", I1), ("f_parent", I1), ("f_pending", I1), ("f_pool", I1),
    ("f_conn", I1), ("f_work", F1), ("f_deadline", F1), ("f_tenq", F1),
    ("f_reply", F1), ("flow_free", I1), ("stack", I1), ("t_cls", I1),
    ("t_t0", F1), ("t_user", I1), ("t_pod", I1), ("t_proc", I1),
    ("t_alive", I1), ("t_gone", I1), ("t_nflows", I1), ("t_inback", I1),
    ("t_indq", I1), ("t_inpod", I1), ("t_free", I1), ("task_free", I1),
    ("dq", I2), ("dq_head", I1), ("dq_len", I1), ("a_cls", I1),
    ("a_t0", F1), ("a_end", F1), ("a_status", I1), ("a_reason", I1),
    ("a_pod", I1), ("endpoints", I1), ("pod_killed", I1), ("pod_refuse", I1), ("pod_mem_limit", I1), ("pod_index", I1), ("pl_dead", I1),
    ("note_kind", I1), ("note_value", I1), ("note_time", F1),
    ("sl_first", I1), ("sl_nprocs", I1), ("sl_conc", I1), ("sl_backlog", I1), ("t_job", I1),
    ("j_cls", I1), ("j_t0", F1), ("j_attempt", I1), ("j_task", I1), ("j_counted", I1), ("j_pod", I1), ("j_open", I1),
    ("jc_attempts", I1), ("jc_initial", F1), ("jc_coeff", F1), ("jc_max_interval", F1), ("jc_timeout", F1),
    ("jc_heartbeat", F1), ("jq", I2), ("jq_head", I1), ("jq_len", I1), ("jstat", I1), ("pollers", I1),
    ("jl_cls", I1), ("jl_t0", F1), ("jl_end", F1), ("jl_status", I1), ("jl_reason", I1), ("jl_pod", I1), ("pod_inflight", I1), ("pod_mem", I1),
    ("pod_mem_peak", I1), ("pod_backlog", I2), ("pod_bhead", I1), ("pod_blen", I1),
    ("pr_pod", I1), ("pr_inflight", I1), ("pr_n", I1), ("pr_token", I1),
    ("pr_seq", I1), ("pr_V", F1), ("pr_tlast", F1), ("pr_used", F1),
    ("pr_due", F1), ("pr_hkey", F2), ("pr_hseq", I2), ("pr_hitem", I2),
    ("sv_n", I1), ("sv_token", I1), ("sv_seq", I1), ("sv_completed", I1),
    ("sv_V", F1), ("sv_tlast", F1), ("sv_due", F1), ("sv_busy", F1),
    ("sv_cores", F1), ("sv_speed", F1), ("st_down", I1), ("st_down_end", F1), ("ex_down", I1),
    ("ex_down_end", F1), ("ex_factor", F1), ("sv_hkey", F2), ("sv_hseq", I2),
    ("sv_hitem", I2), ("st_pool_size", I1), ("st_pool_limit", I1), ("st_pool_timeout", F1),
    ("st_pre_ping", I1), ("st_recycle", F1), ("st_server_limit", I1), ("st_round_trip", F1),
    ("st_connect_time", F1), ("st_timeout_code", I1), ("st_refused_code", I1), ("st_calls", I1),
    ("st_timeouts", I1), ("st_refused", I1), ("st_connects", I1), ("st_overflow_closed", I1),
    ("st_recycled", I1), ("st_server_open", I1), ("st_peak", I1), ("st_nuse", I1),
    ("st_nwait", I1), ("st_area_use", F1), ("st_area_wait", F1), ("st_tarea", F1),
    ("st_wzeros", I1), ("pl_open", I1), ("pl_inuse", I1), ("pl_watching", I1),
    ("pl_idle", I2), ("pl_idle_head", I1), ("pl_idle_len", I1), ("pl_wait", I2),
    ("pl_wait_head", I1), ("pl_wait_len", I1), ("cn_born", F1), ("cn_fresh", I1),
    ("conn_free", I1), ("w_store", I1), ("w_val", F1), ("ex_conc", I1),
    ("ex_retries", I1), ("ex_backoff", F1), ("ex_window", F1), ("ex_budget", I1),
    ("ex_code", I1), ("ex_samp", I1), ("ex_win_index", I1), ("ex_win_count", I1),
    ("ex_win_max", I1), ("ex_in_flight", I1), ("ex_calls", I1), ("ex_rejected", I1),
    ("ex_failed", I1), ("ex_wrejected", I1), ("ex_max_in_use", I1), ("sm_inuse", I1),
    ("sm_wait", I2), ("sm_wait_head", I1), ("sm_wait_len", I1),
)
STATE_TYPE = StateType(list(STATE_FIELDS))


class StateRef(structref.StructRefProxy):
    """The loop's state as Python holds it between calls (opaque: Python reads the arrays themselves)."""


structref.define_boxing(StateType, StateRef)

_EPS_ABS = 1e-12
_EPS_REL = 1e-10
_TIME_ULPS = 4.0
_BIG = 1 << 62


# ---- random numbers -----------------------------------------------------------------------------------
@njit(cache=True)
def _draw(st, row):
    i = st.draw_i[row]
    if i >= st.draw_n[row]:
        raise RuntimeError("a random-number row ran dry within one event")
    v = st.draws[row, i]
    st.draw_i[row] = i + 1
    if st.draw_n[row] - i - 1 < DRAW_MARGIN:
        st.G[G_REFILL] = 1
    return v


# ---- the event heap ---------------------------------------------------------------------------------
@njit(cache=True)
def _schedule(st, t, kind, a, b):
    G = st.G
    n = G[G_EVN]
    if n + 1 > GROW_AT * st.ev_t.shape[0]:
        G[G_GROW] = 1
    G[G_EVSEQ] += 1
    s = G[G_EVSEQ]
    i = n
    G[G_EVN] = n + 1
    ev_t, ev_s = st.ev_t, st.ev_s
    while i > 0:
        p = (i - 1) >> 1
        if ev_t[p] < t or (ev_t[p] == t and ev_s[p] < s):
            break
        ev_t[i] = ev_t[p]
        ev_s[i] = ev_s[p]
        st.ev_k[i] = st.ev_k[p]
        st.ev_a[i] = st.ev_a[p]
        st.ev_b[i] = st.ev_b[p]
        i = p
    ev_t[i] = t
    ev_s[i] = s
    st.ev_k[i] = kind
    st.ev_a[i] = a
    st.ev_b[i] = b


@njit(cache=True)
def _later(st, now, delay, kind, a, b):
    _schedule(st, now + delay, kind, a, b)


@njit(cache=True)
def _pop_event(st):
    """Remove the earliest event; its fields are left at index n (the old last slot's place)."""
    G = st.G
    ev_t, ev_s, ev_k, ev_a, ev_b = st.ev_t, st.ev_s, st.ev_k, st.ev_a, st.ev_b
    t0, k0, a0, b0 = ev_t[0], ev_k[0], ev_a[0], ev_b[0]
    n = G[G_EVN] - 1
    G[G_EVN] = n
    if n > 0:
        t, s, k, a, b = ev_t[n], ev_s[n], ev_k[n], ev_a[n], ev_b[n]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and (ev_t[c + 1] < ev_t[c] or (ev_t[c + 1] == ev_t[c] and ev_s[c + 1] < ev_s[c])):
                c += 1
            if t < ev_t[c] or (t == ev_t[c] and s < ev_s[c]):
                break
            ev_t[i] = ev_t[c]
            ev_s[i] = ev_s[c]
            ev_k[i] = ev_k[c]
            ev_a[i] = ev_a[c]
            ev_b[i] = ev_b[c]
            i = c
        ev_t[i] = t
        ev_s[i] = s
        ev_k[i] = k
        ev_a[i] = a
        ev_b[i] = b
    return t0, k0, a0, b0


# ---- finish-tag heaps (one row per process or server) ----------------------------------------------
@njit(cache=True)
def _hpush(key, seq, item, size, r, k, s, it):
    i = size[r]
    size[r] = i + 1
    while i > 0:
        p = (i - 1) >> 1
        if key[r, p] < k or (key[r, p] == k and seq[r, p] < s):
            break
        key[r, i] = key[r, p]
        seq[r, i] = seq[r, p]
        item[r, i] = item[r, p]
        i = p
    key[r, i] = k
    seq[r, i] = s
    item[r, i] = it


@njit(cache=True)
def _hpop(key, seq, item, size, r):
    top = item[r, 0]
    n = size[r] - 1
    size[r] = n
    if n > 0:
        k, s, it = key[r, n], seq[r, n], item[r, n]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and (key[r, c + 1] < key[r, c] or (key[r, c + 1] == key[r, c] and seq[r, c + 1] < seq[r, c])):
                c += 1
            if k < key[r, c] or (k == key[r, c] and s < seq[r, c]):
                break
            key[r, i] = key[r, c]
            seq[r, i] = seq[r, c]
            item[r, i] = item[r, c]
            i = c
        key[r, i] = k
        seq[r, i] = s
        item[r, i] = it
    return top


# ---- FIFO rings (one row per pod, pool or semaphore) ---------------------------------------------------
@njit(cache=True)
def _ring_push(ring, head, length, r, v):
    cap = ring.shape[1]
    ring[r, (head[r] + length[r]) % cap] = v
    length[r] += 1


@njit(cache=True)
def _ring_pop(ring, head, length, r):
    v = ring[r, head[r]]
    head[r] = (head[r] + 1) % ring.shape[1]
    length[r] -= 1
    return v


@njit(cache=True)
def _ring_push_checked(st, ring, head, length, r, v):
    """A push onto a ring whose length the model does not bound: ask to grow it when half full."""
    _ring_push(ring, head, length, r, v)
    if length[r] > GROW_AT * ring.shape[1]:
        st.G[G_GROW] = 1


# ---- tables: flows, tasks, connections -------------------------------------------------------------------
@njit(cache=True)
def _take(st, free, top_at):
    """A free slot from the free list `free` whose top is ``G[top_at]`` (asks to grow it when half used)."""
    G = st.G
    top = G[top_at] - 1
    G[top_at] = top
    if top < (1.0 - GROW_AT) * free.shape[0]:
        G[G_GROW] = 1
    return free[top]


@njit(cache=True)
def _give(st, free, top_at, item):
    """Slot `item` back on the free list `free`."""
    G = st.G
    free[G[top_at]] = item
    G[top_at] += 1


@njit(cache=True)
def _new_flow(st, task, start, end, parent):
    f = _take(st, st.flow_free, G_FLOWTOP)
    st.f_task[f] = task
    st.f_pc[f] = start
    st.f_end[f] = end
    st.f_parent[f] = parent
    st.f_pending[f] = 0
    st.t_nflows[task] += 1
    return f


@njit(cache=True)
def _free_flow(st, f):
    _give(st, st.flow_free, G_FLOWTOP, f)
    st.t_nflows[st.f_task[f]] -= 1


@njit(cache=True)
def _new_task(st, cls, t0, user):
    t = _take(st, st.task_free, G_TASKTOP)
    st.t_cls[t] = cls
    st.t_t0[t] = t0
    st.t_user[t] = user
    st.t_pod[t] = -1
    st.t_proc[t] = -1
    st.t_alive[t] = 1
    st.t_gone[t] = 0
    st.t_nflows[t] = 0
    st.t_inback[t] = 0
    st.t_indq[t] = 0
    st.t_inpod[t] = 0
    st.t_free[t] = 0
    st.t_job[t] = -1
    return t


@njit(cache=True)
def _try_free_task(st, t):
    """A task's slot is reused once nothing refers to it: answered, no flow, in no queue."""
    if st.t_free[t] or st.t_nflows[t] or st.t_inback[t] or st.t_indq[t] or not st.t_gone[t]:
        return
    st.t_free[t] = 1
    _give(st, st.task_free, G_TASKTOP, t)


@njit(cache=True)
def _new_conn(st, now):
    c = _take(st, st.conn_free, G_CONNTOP)
    st.cn_born[c] = now
    st.cn_fresh[c] = 1
    return c


@njit(cache=True)
def _free_conn(st, c):
    _give(st, st.conn_free, G_CONNTOP, c)


@njit(cache=True)
def _push_walk(st, f):
    G = st.G
    st.stack[G[G_SP]] = f
    G[G_SP] += 1


@njit(cache=True)
def _drop_flow(st, f):
    """A flow of a dead task reached a point where it would resume: it ends, and a parallel parent
    waiting only for it ends too."""
    while f >= 0:
        task = st.f_task[f]
        parent = st.f_parent[f]
        _free_flow(st, f)
        _try_free_task(st, task)
        if parent < 0:
            return
        st.f_pending[parent] -= 1
        if st.f_pending[parent] != 0:
            return
        f = parent


# ---- the ingress and the client (components/ingress.py, components/workload.py) ---------------------
@njit(cache=True)
def _log_row(st, count_at, cls_col, t0_col, end_col, status_col, reason_col, pod_col, cls, t0, end, status, reason,
             pod):
    """One row of a log buffer (the answers', the jobs'), whose length is ``G[count_at]``; Python
    takes the rows whenever the loop returns."""
    G = st.G
    n = G[count_at]
    if n + 1 > GROW_AT * cls_col.shape[0]:
        G[G_GROW] = 1
    cls_col[n] = cls
    t0_col[n] = t0
    end_col[n] = end
    status_col[n] = status
    reason_col[n] = reason
    pod_col[n] = pod
    G[count_at] = n + 1


@njit(cache=True)
def _answer(st, now, task, status, reason, pod):
    st.t_gone[task] = 1
    _log_row(st, G_NANS, st.a_cls, st.a_t0, st.a_end, st.a_status, st.a_reason, st.a_pod,
             st.t_cls[task], st.t_t0[task], now, status, reason, pod)
    user = st.t_user[task]
    if user >= 0:
        _user_answered(st, now, user, task, status == OK)


@njit(cache=True)
def _user_answered(st, now, user, task, ok):
    P, PF = st.P, st.PF
    if not ok and st.u_attempt[user] < P[P_RETRY_ATTEMPTS]:
        backoff = PF[PF_RETRY_BACKOFF] * PF[PF_RETRY_MULT] ** (st.u_attempt[user] - 1)
        if PF[PF_RETRY_JITTER] != 0.0:
            backoff *= 1.0 + PF[PF_RETRY_JITTER] * (2.0 * _draw(st, P[P_S_USERS_U]) - 1.0)
        st.u_attempt[user] += 1
        st.u_cls[user] = st.t_cls[task]
        _later(st, now, backoff, EV_USER_SEND, user, 0)
        return
    st.u_attempt[user] = 1
    st.u_cls[user] = -1
    _later(st, now, _draw(st, P[P_S_THINK]), EV_USER_SEND, user, 0)


@njit(cache=True)
def _pick_class(st):
    u = _draw(st, st.P[P_S_MIX])
    cum = st.cls_cum
    n = cum.shape[0]
    c = 0
    while c < n and cum[c] <= u:  # bisect_right
        c += 1
    return min(c, n - 1)


@njit(cache=True)
def _send(st, now, task):
    G, P = st.G, st.P
    G[G_ARRIVED] += 1
    n = G[G_NEP]
    if n == 0:
        _answer(st, now, task, E503, R_NO_ENDPOINTS, -1)
        _try_free_task(st, task)
        return
    if P[P_RANDOM]:
        pod = int(_draw(st, P[P_S_BALANCER]) * n)
    else:
        i = G[G_RR] % n
        G[G_RR] = i + 1
        pod = i
    pod = st.endpoints[pod]
    if st.pod_refuse[pod]:  # its node is gone: the connection is refused at once (502 node_lost)
        _answer(st, now, task, E502, st.pod_refuse[pod], st.pod_index[pod])
        _try_free_task(st, task)
        return
    if not _pod_submit(st, now, task, pod):
        _answer(st, now, task, E503, R_BACKLOG_FULL, st.pod_index[pod])
        _try_free_task(st, task)
        return
    G[G_INFLIGHT] += 1
    _ring_push(st.dq, st.dq_head, st.dq_len, 0, task)
    st.t_indq[task] = 1
    if not G[G_WATCHING]:
        _ingress_watch(st, now)


@njit(cache=True)
def _ingress_watch(st, now):
    G = st.G
    while st.dq_len[0] and st.t_gone[st.dq[0, st.dq_head[0]]]:
        t = _ring_pop(st.dq, st.dq_head, st.dq_len, 0)
        st.t_indq[t] = 0
        _try_free_task(st, t)
    if not st.dq_len[0]:
        G[G_WATCHING] = 0
        return
    G[G_WATCHING] = 1
    due = st.t_t0[st.dq[0, st.dq_head[0]]] + st.PF[PF_TIMEOUT]
    _later(st, now, max(0.0, due - now), EV_INGRESS_EXPIRE, 0, 0)


@njit(cache=True)
def _ingress_expire(st, now):
    G = st.G
    limit = now - st.PF[PF_TIMEOUT] + 1e-9
    while st.dq_len[0]:
        t = st.dq[0, st.dq_head[0]]
        if not (st.t_gone[t] or st.t_t0[t] <= limit):
            break
        _ring_pop(st.dq, st.dq_head, st.dq_len, 0)
        st.t_indq[t] = 0
        if not st.t_gone[t]:
            G[G_INFLIGHT] -= 1
            _answer(st, now, t, E504, R_TIMEOUT, st.pod_index[st.t_pod[t]])
        _try_free_task(st, t)
    _ingress_watch(st, now)


@njit(cache=True)
def _task_done(st, now, task):
    """The request's program ended: its pod slot goes back, then the client has its answer (a probe's
    prober is told)."""
    user = st.t_user[task]
    if user <= -2:
        st.t_gone[task] = 1
        _note(st, now, NOTE_PROBE, -2 - user)
        return
    if st.t_job[task] >= 0:
        _job_completed(st, now, task)
        return
    _release(st, now, task)
    if st.t_gone[task]:
        return
    st.G[G_INFLIGHT] -= 1
    _answer(st, now, task, OK, 0, st.pod_index[st.t_pod[task]])


@njit(cache=True)
def _fail(st, now, f, reason):
    """A datastore failed the call of flow `f`: the task ends with 500 `reason` and the flow with it."""
    task = st.f_task[f]
    if st.t_alive[task] and st.t_job[task] >= 0:
        st.t_alive[task] = 0
        if st.t_inpod[task]:
            _release(st, now, task)
        _job_failed(st, now, task, E500, reason)
    elif st.t_alive[task]:
        st.t_alive[task] = 0
        if not st.t_gone[task]:
            st.G[G_INFLIGHT] -= 1
            _answer(st, now, task, E500, reason, st.pod_index[st.t_pod[task]])
        if st.t_inpod[task]:
            _release(st, now, task)
    _drop_flow(st, f)


# ---- pods: admission and release (components/pods.py) ---------------------------------------------
@njit(cache=True)
def _free_proc(st, pod):
    first = st.sl_first[pod]
    conc = st.sl_conc[pod]
    best = -1
    for j in range(st.sl_nprocs[pod]):
        p = first + j
        if st.pr_inflight[p] < conc and (best < 0 or st.pr_inflight[p] < st.pr_inflight[best]):
            best = p
    return best


@njit(cache=True)
def _pod_submit(st, now, task, pod):
    proc = _free_proc(st, pod)
    if proc >= 0:
        _admit(st, now, task, proc)
        return True
    if st.pod_blen[pod] >= st.sl_backlog[pod]:
        return False
    st.t_pod[task] = pod
    st.t_inpod[task] = 1
    st.t_inback[task] = 1
    _ring_push(st.pod_backlog, st.pod_bhead, st.pod_blen, pod, task)
    return True


@njit(cache=True)
def _admit(st, now, task, proc):
    pod = st.pr_pod[proc]
    st.t_pod[task] = pod
    st.t_proc[task] = proc
    st.t_inpod[task] = 1
    st.pr_inflight[proc] += 1
    st.pod_inflight[pod] += 1
    cls = st.t_cls[task]
    st.pod_mem[pod] += st.cls_mem[cls]
    if st.pod_mem[pod] > st.pod_mem_peak[pod]:
        st.pod_mem_peak[pod] = st.pod_mem[pod]
    if st.pod_mem[pod] > st.pod_mem_limit[pod]:  # OOMKilled: everything in the container fails
        _kill_slot(st, now, pod, R_OOM)
        _note(st, now, NOTE_OOM, pod)
        return
    f = _new_flow(st, task, st.cls_start[cls], st.cls_end[cls], -1)
    _push_walk(st, f)


@njit(cache=True)
def _release(st, now, task):
    proc = st.t_proc[task]
    pod = st.t_pod[task]
    if not st.t_inpod[task]:
        return
    st.t_inpod[task] = 0
    st.pr_inflight[proc] -= 1
    st.pod_inflight[pod] -= 1
    st.pod_mem[pod] -= st.cls_mem[st.t_cls[task]]
    while st.pod_blen[pod]:
        nxt = st.pod_backlog[pod, st.pod_bhead[pod]]
        if not st.t_alive[nxt]:
            _ring_pop(st.pod_backlog, st.pod_bhead, st.pod_blen, pod)
            st.t_inback[nxt] = 0
            st.t_inpod[nxt] = 0
            _try_free_task(st, nxt)
            continue
        free = _free_proc(st, pod)
        if free < 0:
            break
        _ring_pop(st.pod_backlog, st.pod_bhead, st.pod_blen, pod)
        st.t_inback[nxt] = 0
        _admit(st, now, nxt, free)
        if st.pod_killed[pod]:
            break


# ---- a process's CPU: processor sharing with virtual time (components/podcpu.py) ------------------
@njit(cache=True)
def _arm(st, now, due, due_at, token, row, kind):
    """The lazy timer of process or server `row`: due at `due`, earlier timers made stale by the token."""
    due_at[row] = due
    token[row] += 1
    _later(st, now, due - now, kind, row, token[row])


@njit(cache=True)
def _proc_sync(st, proc, now):
    n = st.pr_n[proc]
    if n:
        dt = now - st.pr_tlast[proc]
        st.pr_V[proc] += dt / n
        st.pr_used[proc] += dt
    st.pr_tlast[proc] = now


@njit(cache=True)
def _proc_next_due(st, proc, now, V):
    """When the process's next job ends if nothing changes (each of its n jobs runs at 1/n)."""
    dt = (st.pr_hkey[proc, 0] - V) * st.pr_n[proc]
    return now + (dt if dt > 0.0 else 0.0)


@njit(cache=True)
def _cpu_start(st, now, proc, f, work):
    if st.pr_n[proc]:
        _proc_sync(st, proc, now)
    else:
        st.pr_V[proc] = 0.0
        st.pr_tlast[proc] = now
    st.pr_seq[proc] += 1
    V = st.pr_V[proc]
    _hpush(st.pr_hkey, st.pr_hseq, st.pr_hitem, st.pr_n, proc, V + work, st.pr_seq[proc], f)
    if st.pr_n[proc] > GROW_AT * st.pr_hkey.shape[1]:
        st.G[G_GROW] = 1
    due = _proc_next_due(st, proc, now, V)
    if due < st.pr_due[proc]:
        _arm(st, now, due, st.pr_due, st.pr_token, proc, EV_PROC_DUE)


@njit(cache=True)
def _proc_due(st, now, proc, token):
    if token != st.pr_token[proc]:
        return
    st.pr_due[proc] = math.inf
    n = st.pr_n[proc]
    _proc_sync(st, proc, now)
    V = st.pr_V[proc]
    limit = V + _EPS_ABS + _EPS_REL * abs(V)
    if n:
        limit += _TIME_ULPS * np.spacing(abs(now)) / n
    base = st.G[G_SP]
    while st.pr_n[proc] and st.pr_hkey[proc, 0] <= limit:
        _push_walk(st, _hpop(st.pr_hkey, st.pr_hseq, st.pr_hitem, st.pr_n, proc))
    _reverse_stack(st, base)
    if st.pr_n[proc]:
        due = _proc_next_due(st, proc, now, V)
        if due < st.pr_due[proc]:
            _arm(st, now, due, st.pr_due, st.pr_token, proc, EV_PROC_DUE)


@njit(cache=True)
def _reverse_stack(st, base):
    """Flows pushed since `base` are walked in the order they were pushed (the stack is LIFO)."""
    i, j = base, st.G[G_SP] - 1
    while i < j:
        st.stack[i], st.stack[j] = st.stack[j], st.stack[i]
        i += 1
        j -= 1


# ---- a database server: cores shared by processor sharing (components/datastores/pools.py) -------
@njit(cache=True)
def _server_sync(st, s, now):
    n = st.sv_n[s]
    if n:
        dt = now - st.sv_tlast[s]
        if dt > 0.0:
            cores, speed = st.sv_cores[s], st.sv_speed[s]
            if n <= cores:
                st.sv_V[s] += dt * speed
                st.sv_busy[s] += dt * speed * n
            else:
                st.sv_V[s] += dt * speed * cores / n
                st.sv_busy[s] += dt * speed * cores
    st.sv_tlast[s] = now


@njit(cache=True)
def _server_submit(st, now, s, work, f):
    if st.sv_n[s]:
        _server_sync(st, s, now)
    else:
        st.sv_V[s] = 0.0
        st.sv_tlast[s] = now
    st.sv_seq[s] += 1
    V = st.sv_V[s]
    _hpush(st.sv_hkey, st.sv_hseq, st.sv_hitem, st.sv_n, s, V + work, st.sv_seq[s], f)
    if st.sv_n[s] > GROW_AT * st.sv_hkey.shape[1]:
        st.G[G_GROW] = 1
    due = _server_next_due(st, s, now, V)
    if due < st.sv_due[s]:
        _arm(st, now, due, st.sv_due, st.sv_token, s, EV_SERVER_DUE)


@njit(cache=True)
def _server_next_due(st, s, now, V):
    """When the server's next query ends if nothing changes (each of n runs at min(1, cores / n))."""
    n = st.sv_n[s]
    cores, speed = st.sv_cores[s], st.sv_speed[s]
    rate = speed if n <= cores else speed * cores / n
    dt = (st.sv_hkey[s, 0] - V) / rate
    return now + dt if dt > 0.0 else now


@njit(cache=True)
def _server_due(st, now, s, token):
    if token != st.sv_token[s]:
        return
    _server_sync(st, s, now)
    V = st.sv_V[s]
    n = st.sv_n[s]
    cores, speed = st.sv_cores[s], st.sv_speed[s]
    limit = V + _EPS_ABS + _EPS_REL * abs(V)
    if n:
        limit += _TIME_ULPS * np.spacing(abs(now)) * speed * (1.0 if n <= cores else cores / n)
    st.sv_due[s] = math.inf
    first = st.G[G_SP]
    count = 0
    while st.sv_n[s] and st.sv_hkey[s, 0] <= limit:
        st.stack[first + count] = _hpop(st.sv_hkey, st.sv_hseq, st.sv_hitem, st.sv_n, s)
        count += 1
    if st.sv_n[s]:
        _arm(st, now, _server_next_due(st, s, now, V), st.sv_due, st.sv_token, s, EV_SERVER_DUE)
    st.sv_completed[s] += count
    for j in range(count):
        f = st.stack[first + j]
        reply = st.f_reply[f]
        if reply > 0.0:
            _later(st, now, reply, EV_QUERY_DONE, f, 0)
        else:
            _query_done(st, now, f)


# ---- connection pools (components/datastores/sql.py, SQLAlchemy's QueuePool) ------------------------
@njit(cache=True)
def _area(st, s, now):
    dt = now - st.st_tarea[s]
    if dt > 0.0:
        st.st_area_use[s] += st.st_nuse[s] * dt
        st.st_area_wait[s] += st.st_nwait[s] * dt
        st.st_tarea[s] = now


@njit(cache=True)
def _record_wait(st, s, wait):
    if wait > 0.0:
        G = st.G
        n = G[G_NWAIT]
        if n + 1 > GROW_AT * st.w_val.shape[0]:
            G[G_GROW] = 1
        st.w_store[n] = s
        st.w_val[n] = wait
        G[G_NWAIT] = n + 1
    else:
        st.st_wzeros[s] += 1


@njit(cache=True)
def _refuse_while_down(st, now, f, mode, end, code):
    """A call to a store that is down (``datastore_outage``, components/datastores/failure.py): it fails
    with 500 `code` at once (mode DOWN_REFUSED) or when the outage ends (DOWN_TIMEOUT)."""
    delay = max(0.0, end - now) if mode == DOWN_TIMEOUT else 0.0
    _later(st, now, delay, EV_DOWN_FAIL, f, code)


@njit(cache=True)
def server_speed(st, now, s, speed):
    """Server `s`'s cores run at `speed` from `now` (``datastore_slowdown``; PSServer.set_speed): what ran
    so far at the old speed, the next finish re-timed."""
    _server_sync(st, s, now)
    st.sv_speed[s] = speed
    if st.sv_n[s]:
        st.sv_due[s] = math.inf
        _arm(st, now, _server_next_due(st, s, now, st.sv_V[s]), st.sv_due, st.sv_token, s, EV_SERVER_DUE)


@njit(cache=True)
def _sql_call(st, now, f, op):
    s = st.op_a[op]
    if st.st_down[s]:
        _refuse_while_down(st, now, f, st.st_down[s], st.st_down_end[s], st.st_refused_code[s])
        return
    row = st.op_samp[op]
    work = _draw(st, row) if row >= 0 else 0.0
    st.st_calls[s] += 1
    pool = st.t_proc[st.f_task[f]] * st.P[P_NPOOLED] + s
    if not st.pl_idle_len[pool]:
        _checkout(st, now, s, pool, f, work)
        return
    conn = _ring_pop(st.pl_idle, st.pl_idle_head, st.pl_idle_len, pool)
    st.pl_inuse[pool] += 1
    _area(st, s, now)
    st.st_nuse[s] += 1
    st.st_wzeros[s] += 1
    _got(st, now, s, pool, conn, f, work)


@njit(cache=True)
def _checkout(st, now, s, pool, f, work):
    if st.pl_idle_len[pool]:
        conn = _ring_pop(st.pl_idle, st.pl_idle_head, st.pl_idle_len, pool)
        st.pl_inuse[pool] += 1
        _area(st, s, now)
        st.st_nuse[s] += 1
        st.st_wzeros[s] += 1
        _got(st, now, s, pool, conn, f, work)
    elif st.pl_open[pool] < st.st_pool_limit[s]:
        st.st_wzeros[s] += 1
        _connect(st, now, s, pool, f, work, False)
    else:
        st.f_deadline[f] = now + st.st_pool_timeout[s]
        st.f_work[f] = work
        st.f_tenq[f] = now
        _ring_push_checked(st, st.pl_wait, st.pl_wait_head, st.pl_wait_len, pool, f)
        _area(st, s, now)
        st.st_nwait[s] += 1
        if not st.pl_watching[pool]:
            _pool_watch(st, now, s, pool)


@njit(cache=True)
def _connect(st, now, s, pool, f, work, slot_held):
    if not slot_held:
        st.pl_open[pool] += 1
    if st.st_server_open[s] >= st.st_server_limit[s]:
        st.st_refused[s] += 1
        _later(st, now, st.st_connect_time[s], EV_REFUSED, f, pool)
        return
    st.st_server_open[s] += 1
    if st.st_server_open[s] > st.st_peak[s]:
        st.st_peak[s] = st.st_server_open[s]
    st.st_connects[s] += 1
    st.f_work[f] = work
    _later(st, now, st.st_connect_time[s], EV_CONNECTED, f, pool)


@njit(cache=True)
def _connected(st, now, f, pool):
    s = pool % st.P[P_NPOOLED]
    if st.pl_dead[pool]:
        _drop_flow(st, f)
        return
    st.pl_inuse[pool] += 1
    _area(st, s, now)
    st.st_nuse[s] += 1
    conn = _new_conn(st, now)
    if not st.t_alive[st.f_task[f]]:
        _checkin(st, now, s, pool, conn)
        _drop_flow(st, f)
        return
    _got(st, now, s, pool, conn, f, st.f_work[f])


@njit(cache=True)
def _refused(st, now, f, pool):
    s = pool % st.P[P_NPOOLED]
    st.pl_open[pool] -= 1
    if st.pl_dead[pool]:
        _drop_flow(st, f)
        return
    _fail(st, now, f, st.st_refused_code[s])


@njit(cache=True)
def _got(st, now, s, pool, conn, f, work):
    """A connection for the call of flow `f` (whose task is alive): recycle it if too old, else run."""
    if now - st.cn_born[conn] > st.st_recycle[s]:
        st.st_recycled[s] += 1
        st.pl_inuse[pool] -= 1
        _area(st, s, now)
        st.st_nuse[s] -= 1
        st.st_server_open[s] -= 1
        _free_conn(st, conn)
        _connect(st, now, s, pool, f, work, True)
        return
    pre = st.st_round_trip[s] if (st.st_pre_ping[s] and not st.cn_fresh[conn]) else 0.0
    st.cn_fresh[conn] = 0
    st.f_pool[f] = pool
    st.f_conn[f] = conn
    st.f_reply[f] = pre + st.st_round_trip[s]
    if work > 0.0:
        _server_submit(st, now, s, work, f)
    else:
        _later(st, now, st.f_reply[f], EV_QUERY_DONE, f, 0)


@njit(cache=True)
def _query_done(st, now, f):
    pool = st.f_pool[f]
    conn = st.f_conn[f]
    s = pool % st.P[P_NPOOLED]
    _checkin(st, now, s, pool, conn)
    _push_walk(st, f)


@njit(cache=True)
def _checkin(st, now, s, pool, conn):
    if st.pl_dead[pool]:  # its process died: the connection was closed then
        _free_conn(st, conn)
        return
    st.pl_inuse[pool] -= 1
    _area(st, s, now)
    st.st_nuse[s] -= 1
    while st.pl_wait_len[pool]:
        w = _ring_pop(st.pl_wait, st.pl_wait_head, st.pl_wait_len, pool)
        st.st_nwait[s] -= 1
        if st.t_alive[st.f_task[w]]:
            st.st_nuse[s] += 1
            st.pl_inuse[pool] += 1
            _record_wait(st, s, now - st.f_tenq[w])
            _got(st, now, s, pool, conn, w, st.f_work[w])
            return
        _drop_flow(st, w)
    if st.pl_idle_len[pool] < st.st_pool_size[s]:
        _ring_push_checked(st, st.pl_idle, st.pl_idle_head, st.pl_idle_len, pool, conn)
    else:  # QueuePool._do_return_conn: the idle queue is full, so the (overflow) connection is closed
        st.pl_open[pool] -= 1
        st.st_server_open[s] -= 1
        st.st_overflow_closed[s] += 1
        _free_conn(st, conn)


@njit(cache=True)
def _pool_watch(st, now, s, pool):
    while st.pl_wait_len[pool] and not st.t_alive[st.f_task[st.pl_wait[pool, st.pl_wait_head[pool]]]]:
        w = _ring_pop(st.pl_wait, st.pl_wait_head, st.pl_wait_len, pool)
        _area(st, s, now)
        st.st_nwait[s] -= 1
        _drop_flow(st, w)
    if not st.pl_wait_len[pool]:
        st.pl_watching[pool] = 0
        return
    st.pl_watching[pool] = 1
    delay = st.f_deadline[st.pl_wait[pool, st.pl_wait_head[pool]]] - now
    _later(st, now, delay if delay > 0.0 else 0.0, EV_POOL_EXPIRE, pool, 0)


@njit(cache=True)
def _pool_expire(st, now, pool):
    s = pool % st.P[P_NPOOLED]
    if st.pl_dead[pool]:
        return
    limit = now + 1e-9
    while st.pl_wait_len[pool]:
        w = st.pl_wait[pool, st.pl_wait_head[pool]]
        alive = st.t_alive[st.f_task[w]]
        if alive and st.f_deadline[w] > limit:
            break
        _ring_pop(st.pl_wait, st.pl_wait_head, st.pl_wait_len, pool)
        _area(st, s, now)
        st.st_nwait[s] -= 1
        if not alive:
            _drop_flow(st, w)
            continue
        _record_wait(st, s, now - st.f_tenq[w])
        if st.pl_open[pool] < st.st_pool_limit[s]:  # a slot freed while waiting: QueuePool re-checks
            _connect(st, now, s, pool, w, st.f_work[w], False)
        else:
            st.st_timeouts[s] += 1
            _fail(st, now, w, st.st_timeout_code[s])
    _pool_watch(st, now, s, pool)


# ---- external APIs: per-process semaphores, the provider's rate limit (datastores/kv.py) ----------
@njit(cache=True)
def _ext_call(st, now, f, op):
    x = st.op_a[op]
    if st.ex_down[x]:
        _refuse_while_down(st, now, f, st.ex_down[x], st.ex_down_end[x], R_CONNECTION_REFUSED)
        return
    sem = st.t_proc[st.f_task[f]] * st.P[P_NEXT] + x
    st.ex_calls[x] += 1
    if st.sm_inuse[sem] < st.ex_conc[x] and not st.sm_wait_len[sem]:
        st.sm_inuse[sem] += 1
        if st.sm_inuse[sem] > st.ex_max_in_use[x]:
            st.ex_max_in_use[x] = st.sm_inuse[sem]
        if not _ext_attempt(st, now, x, sem, f, 0):
            _ext_release(st, now, x, sem)
    else:
        _ring_push_checked(st, st.sm_wait, st.sm_wait_head, st.sm_wait_len, sem, f)


@njit(cache=True)
def _ext_attempt(st, now, x, sem, f, tries):
    """One try of flow `f`'s call; False when it ended the flow and its semaphore slot must go back."""
    if not st.t_alive[st.f_task[f]]:
        _drop_flow(st, f)
        return False
    budget = st.ex_budget[x]
    if budget >= 0:
        w = math.floor(now / st.ex_window[x])
        if w != st.ex_win_index[x]:
            st.ex_win_index[x] = w
            st.ex_win_count[x] = 0
        if st.ex_win_count[x] >= budget:
            st.ex_rejected[x] += 1
            st.ex_wrejected[x] += 1
            if tries < st.ex_retries[x]:
                st.f_pool[f] = sem
                st.f_conn[f] = tries + 1
                _later(st, now, st.ex_backoff[x] * 2.0 ** tries, EV_EXT_RETRY, f, 0)
                return True
            st.ex_failed[x] += 1
            _fail(st, now, f, st.ex_code[x])
            return False
        st.ex_win_count[x] += 1
        if st.ex_win_count[x] > st.ex_win_max[x]:
            st.ex_win_max[x] = st.ex_win_count[x]
    st.ex_in_flight[x] += 1
    st.f_pool[f] = sem
    _later(st, now, _draw(st, st.ex_samp[x]) * st.ex_factor[x], EV_EXT_DONE, f, 0)
    return True


@njit(cache=True)
def _ext_release(st, now, x, sem):
    st.sm_inuse[sem] -= 1
    while st.sm_wait_len[sem]:
        w = _ring_pop(st.sm_wait, st.sm_wait_head, st.sm_wait_len, sem)
        if st.t_alive[st.f_task[w]]:
            st.sm_inuse[sem] += 1
            if _ext_attempt(st, now, x, sem, w, 0):
                return
            st.sm_inuse[sem] -= 1
        else:
            _drop_flow(st, w)


@njit(cache=True)
def _ext_done(st, now, f):
    sem = st.f_pool[f]
    x = sem % st.P[P_NEXT]
    st.ex_in_flight[x] -= 1
    _ext_release(st, now, x, sem)
    _push_walk(st, f)


@njit(cache=True)
def _ext_retry(st, now, f):
    sem = st.f_pool[f]
    x = sem % st.P[P_NEXT]
    if not _ext_attempt(st, now, x, sem, f, st.f_conn[f]):
        _ext_release(st, now, x, sem)


# ---- the executor: walking step programs (components/flows.py) -------------------------------------
@njit(cache=True)
def _walk(st, now):
    """Walk every flow on the stack to its next step that takes time (or to its end)."""
    G = st.G
    while G[G_SP]:
        G[G_SP] -= 1
        f = st.stack[G[G_SP]]
        task = st.f_task[f]
        if not st.t_alive[task]:
            _drop_flow(st, f)
            continue
        pc, end = st.f_pc[f], st.f_end[f]
        blocked = False
        while pc < end:
            op = pc
            pc += 1
            st.f_pc[f] = pc
            kind = st.op_kind[op]
            if kind == OP_ENQUEUE:
                _job_submit(st, now, st.op_a[op])
                continue
            blocked = True
            if kind == OP_CPU:
                _cpu_start(st, now, st.t_proc[task], f, _draw(st, st.op_samp[op]))
            elif kind == OP_CALL:
                _sql_call(st, now, f, op)
            elif kind == OP_EXTERNAL:
                _ext_call(st, now, f, op)
            else:  # OP_PARALLEL: branches op_a .. op_a + op_b - 1 of the branch table
                nb = st.op_b[op]
                st.f_pending[f] = nb
                for j in range(nb - 1, -1, -1):
                    b = st.op_a[op] + j
                    _push_walk(st, _new_flow(st, task, st.br_start[b], st.br_end[b], f))
            break
        if blocked:
            continue
        parent = st.f_parent[f]
        _free_flow(st, f)
        if parent < 0:
            _task_done(st, now, task)
            _try_free_task(st, task)
        else:
            st.f_pending[parent] -= 1
            if st.f_pending[parent] == 0:
                _push_walk(st, parent)


# ---- the loop ------------------------------------------------------------------------------------------
@njit(cache=True)
def advance(st, until):
    """Play every event before `until`; DONE, or REFILL / GROW when the caller must act first."""
    G = st.G
    while G[G_EVN]:
        if G[G_REFILL]:
            return REFILL
        if G[G_GROW]:
            return GROW
        if st.ev_t[0] >= until:
            break
        now, kind, a, b = _pop_event(st)
        if kind == EV_SERVER_DUE:
            _server_due(st, now, a, b)
        elif kind == EV_QUERY_DONE:
            _query_done(st, now, a)
        elif kind == EV_PROC_DUE:
            _proc_due(st, now, a, b)
        elif kind == EV_USER_SEND:
            if not st.u_retiring[a]:
                cls = st.u_cls[a]
                if cls < 0:
                    cls = _pick_class(st)
                _send(st, now, _new_task(st, cls, now, a))
        elif kind == EV_ARRIVAL:
            _send(st, now, _new_task(st, _pick_class(st), now, -1))
            if a + 1 < st.P[P_NARRIVALS]:
                _schedule(st, st.arrivals[a + 1], EV_ARRIVAL, a + 1, 0)
            elif st.P[P_MORE_ARRIVALS]:
                G[G_NEED_ARRIVALS] = 1
                G[G_REFILL] = 1
        elif kind == EV_EXT_DONE:
            _ext_done(st, now, a)
        elif kind == EV_CONNECTED:
            _connected(st, now, a, b)
        elif kind == EV_INGRESS_EXPIRE:
            _ingress_expire(st, now)
        elif kind == EV_POOL_EXPIRE:
            _pool_expire(st, now, a)
        elif kind == EV_REFUSED:
            _refused(st, now, a, b)
        elif kind == EV_EXT_RETRY:
            _ext_retry(st, now, a)
        elif kind == EV_USER_CHANGE:
            _user_change(st, now, a)
        elif kind == EV_JOB_TIMEOUT:
            _job_timeout(st, now, a, b)
        elif kind == EV_JOB_RETRY:
            st.jstat[JS_WAITING_RETRY] -= 1
            _job_attempt(st, now, a)
        elif kind == EV_DOWN_FAIL:
            _fail(st, now, a, b)
        _walk(st, now)
        _settle(st, now)
        if G[G_NOTES]:
            return NOTES
    return DONE


@njit(cache=True)
def _note(st, now, kind, value):
    G = st.G
    n = G[G_NOTES]
    if n < st.note_kind.shape[0]:
        st.note_kind[n] = kind
        st.note_value[n] = value
        st.note_time[n] = now
        G[G_NOTES] = n + 1
    else:
        raise RuntimeError("more notes for Python in one event than the loop can hold")


@njit(cache=True)
def _kill_slot(st, now, slot, reason):
    """The container of pod slot `slot` died (OOMKilled, restarted, deleted): what it held fails with
    502 `reason`, oldest first, and its processes' pools close at the servers
    (components/deployments.py ``_fail_tasks``, datastores ``proc_gone``)."""
    if st.pod_killed[slot]:
        return
    st.pod_killed[slot] = 1
    n = 0
    cap = st.t_cls.shape[0]
    held = np.empty(cap, dtype=np.int64)
    for t in range(cap):
        if st.t_free[t] == 0 and st.t_inpod[t] and st.t_pod[t] == slot:
            held[n] = t
            n += 1
    order = np.argsort(st.t_t0[held[:n]], kind="mergesort")
    G = st.G
    for j in range(n):
        t = held[order[j]]
        st.t_inpod[t] = 0
        st.t_inback[t] = 0
        if st.t_alive[t]:
            st.t_alive[t] = 0
            if st.t_job[t] >= 0:
                _job_failed(st, now, t, E502, reason)
            elif not st.t_gone[t]:
                G[G_INFLIGHT] -= 1
                _answer(st, now, t, E502, reason, st.pod_index[slot])
        _try_free_task(st, t)
    st.pod_inflight[slot] = 0
    st.pod_blen[slot] = 0
    npooled = st.P[P_NPOOLED]
    for j in range(st.sl_nprocs[slot]):
        p = st.sl_first[slot] + j
        st.pr_inflight[p] = 0
        for s in range(npooled):
            pool = p * npooled + s
            if st.pl_dead[pool]:
                continue
            _area(st, s, now)
            st.pl_dead[pool] = 1
            st.st_nwait[s] -= st.pl_wait_len[pool]
            st.st_nuse[s] -= st.pl_inuse[pool]
            st.st_server_open[s] -= st.pl_open[pool]
            st.pl_inuse[pool] = 0
            st.pl_open[pool] = 0
            while st.pl_idle_len[pool]:
                _free_conn(st, _ring_pop(st.pl_idle, st.pl_idle_head, st.pl_idle_len, pool))
            while st.pl_wait_len[pool]:
                _drop_flow(st, _ring_pop(st.pl_wait, st.pl_wait_head, st.pl_wait_len, pool))


@njit(cache=True)
def kill_slot(st, now, slot, reason):
    """:func:`_kill_slot` from Python (the control plane killed the container); the loop is at `now`."""
    _kill_slot(st, now, slot, reason)
    _settle(st, now)


@njit(cache=True)
def next_arrivals(st):
    """The next block of open arrivals is in ``arrivals`` (Python put it there): schedule its first."""
    st.G[G_NEED_ARRIVALS] = 0
    if st.P[P_NARRIVALS]:
        _schedule(st, st.arrivals[0], EV_ARRIVAL, 0, 0)


@njit(cache=True)
def probe_start(st, now, proc, work, probe):
    """A probe's CPU work on process `proc`; the loop notes ``(NOTE_PROBE, probe)`` when it is done."""
    task = _new_task(st, -1, now, -2 - probe)
    f = _new_flow(st, task, 0, 0, -1)
    _cpu_start(st, now, proc, f, work)


# ---- the worker tier: one Temporal task queue (components/workers.py) ------------------------------
@njit(cache=True)
def _settle(st, now):
    """Hand queued job attempts to free worker slots until nothing more can start (a start can
    OOMKill a worker and so free attempts to retry: the dispatch folds that in, as WorkerTier's)."""
    G = st.G
    while G[G_DISPATCH]:
        G[G_DISPATCH] = 0
        _dispatch(st, now)
        _walk(st, now)


@njit(cache=True)
def _job_submit(st, now, cls):
    G = st.G
    job = G[G_NJOBS]
    if job + 1 > GROW_AT * st.j_cls.shape[0]:
        G[G_GROW] = 1
    G[G_NJOBS] = job + 1
    st.j_cls[job] = cls
    st.j_t0[job] = now
    st.j_attempt[job] = 0
    st.j_counted[job] = now >= st.PF[PF_WARMUP]
    st.j_pod[job] = -1
    st.j_open[job] = 0
    st.jstat[JS_ENQUEUED] += 1
    _job_attempt(st, now, job)


@njit(cache=True)
def _job_attempt(st, now, job):
    """A new attempt of `job` joins the back of the queue."""
    st.j_attempt[job] += 1
    cls = st.j_cls[job]
    task = _new_task(st, st.P[P_NCLASSES] + cls, st.j_t0[job], -1)
    st.t_job[task] = job
    st.j_task[job] = task
    st.t_indq[task] = 1  # held by the queue until it starts
    _ring_push_checked(st, st.jq, st.jq_head, st.jq_len, 0, task)
    n = st.jq_len[0]
    if n > st.jstat[JS_BACKLOG_MAX] and now >= st.PF[PF_WARMUP]:
        st.jstat[JS_BACKLOG_MAX] = n
    st.G[G_DISPATCH] = 1


@njit(cache=True)
def _dispatch(st, now):
    """Each queued attempt goes to the polling pod with the most free slots (ties: lowest index)."""
    G = st.G
    while st.jq_len[0]:
        best, best_free = -1, 0
        for i in range(G[G_NPOLL]):
            p = st.pollers[i]
            if st.pod_killed[p]:
                continue
            free = st.sl_nprocs[p] * st.sl_conc[p] - st.pod_inflight[p]
            if free > best_free or (free == best_free and free > 0 and st.pod_index[p] < st.pod_index[best]):
                best, best_free = p, free
        if best < 0:
            return
        task = _ring_pop(st.jq, st.jq_head, st.jq_len, 0)
        st.t_indq[task] = 0
        job = st.t_job[task]
        st.j_open[job] = 1
        st.j_pod[job] = st.pod_index[best]
        st.jstat[JS_RUNNING] += 1
        _later(st, now, st.jc_timeout[st.j_cls[job]], EV_JOB_TIMEOUT, job, st.j_attempt[job])
        _pod_submit(st, now, task, best)
        _walk(st, now)  # the attempt starts its steps before the next one is admitted, as WorkerTier's


@njit(cache=True)
def _job_completed(st, now, task):
    _release(st, now, task)
    job = st.t_job[task]
    if st.t_gone[task]:  # timed out earlier: the server discards the late result
        st.jstat[JS_STALE] -= 1
    else:
        st.t_gone[task] = 1
        st.j_open[job] = 0
        st.jstat[JS_RUNNING] -= 1
        _job_finish(st, now, job, OK, 0)
    st.G[G_DISPATCH] = 1


@njit(cache=True)
def _job_failed(st, now, task, status, reason):
    """An attempt died in its pod (the task is no longer alive and holds no slot)."""
    job = st.t_job[task]
    if st.t_gone[task]:  # already timed out at the server; it was still running on the worker
        st.jstat[JS_STALE] -= 1
    elif reason == R_OOM or reason == R_RESTARTED:
        # a killed process reports nothing: the server learns at the heartbeat or start-to-close timeout
        st.jstat[JS_CRASHES] += 1
        heartbeat = st.jc_heartbeat[st.j_cls[job]]
        if heartbeat > 0.0:
            _later(st, now, heartbeat, EV_JOB_TIMEOUT, job, st.j_attempt[job])
    else:
        st.t_gone[task] = 1
        st.j_open[job] = 0
        st.jstat[JS_RUNNING] -= 1
        _job_attempt_failed(st, now, job, status, reason)
    st.G[G_DISPATCH] = 1


@njit(cache=True)
def _job_timeout(st, now, job, attempt):
    """Start-to-close (or heartbeat) deadline of attempt `attempt`: the server closes it as timed out."""
    if st.j_attempt[job] != attempt or not st.j_open[job]:
        return
    task = st.j_task[job]
    st.t_gone[task] = 1
    st.j_open[job] = 0
    st.jstat[JS_RUNNING] -= 1
    if st.t_alive[task]:
        st.jstat[JS_STALE] += 1  # still running on its worker, holding its slot
    _job_attempt_failed(st, now, job, E504, R_TIMEOUT)
    _try_free_task(st, task)


@njit(cache=True)
def _job_attempt_failed(st, now, job, status, reason):
    cls = st.j_cls[job]
    attempt = st.j_attempt[job]
    if attempt >= st.jc_attempts[cls]:
        _job_finish(st, now, job, status, reason)
        return
    st.jstat[JS_RETRIES] += 1
    st.jstat[JS_WIN_RETRIES] += 1
    if st.j_counted[job]:
        st.jstat[JS_RETRIES_COUNTED] += 1
    st.jstat[JS_WAITING_RETRY] += 1
    delay = min(st.jc_initial[cls] * st.jc_coeff[cls] ** (attempt - 1), st.jc_max_interval[cls])
    _later(st, now, delay, EV_JOB_RETRY, job, 0)


@njit(cache=True)
def _job_finish(st, now, job, status, reason):
    if status == OK:
        st.jstat[JS_COMPLETED] += 1
        st.jstat[JS_WIN_COMPLETED] += 1
    else:
        st.jstat[JS_FAILED] += 1
        st.jstat[JS_WIN_FAILED] += 1
    _log_row(st, G_NJL, st.jl_cls, st.jl_t0, st.jl_end, st.jl_status, st.jl_reason, st.jl_pod,
             st.j_cls[job], st.j_t0[job], now, status, reason, st.j_pod[job])


@njit(cache=True)
def dispatch(st, now):
    """The pollers changed (Python): queued attempts may start now."""
    st.G[G_DISPATCH] = 1
    _settle(st, now)


@njit(cache=True)
def _user_change(st, now, delta):
    G = st.G
    if delta > 0:
        u = G[G_NEXTUSER]
        G[G_NEXTUSER] = u + 1
        st.active[G[G_NACTIVE]] = u
        G[G_NACTIVE] += 1
        _later(st, now, 0.0, EV_USER_SEND, u, 0)
    elif G[G_NACTIVE]:
        G[G_NACTIVE] -= 1
        st.u_retiring[st.active[G[G_NACTIVE]]] = 1


@njit(cache=True)
def start(st, initial, change_t, change_d):
    """The events a run starts with: the first open arrival, or the `initial` users (each after a
    uniform share of a think time, as components.workload.ClosedPopulation starts them) and every
    change of the population (at `change_t`, +1 or -1 in `change_d`)."""
    P, G = st.P, st.G
    if not P[P_CLOSED]:
        if P[P_NARRIVALS]:
            _schedule(st, st.arrivals[0], EV_ARRIVAL, 0, 0)
        return
    for _ in range(initial):
        u = G[G_NEXTUSER]
        G[G_NEXTUSER] = u + 1
        st.active[G[G_NACTIVE]] = u
        G[G_NACTIVE] += 1
        delay = _draw(st, P[P_S_THINK]) * _draw(st, P[P_S_USERS_U])
        _schedule(st, delay, EV_USER_SEND, u, 0)
    for j in range(change_t.shape[0]):
        _schedule(st, change_t[j], EV_USER_CHANGE, change_d[j], 0)


@njit(cache=True)
def make_state(nt):
    """The loop's state (a structref: helpers get a pointer, not ~190 arrays) over the arrays of `nt`."""
    st = structref.new(STATE_TYPE)
    st.G = nt.G
    st.P = nt.P
    st.PF = nt.PF
    st.draws = nt.draws
    st.draw_i = nt.draw_i
    st.draw_n = nt.draw_n
    st.ev_t = nt.ev_t
    st.ev_s = nt.ev_s
    st.ev_k = nt.ev_k
    st.ev_a = nt.ev_a
    st.ev_b = nt.ev_b
    st.op_kind = nt.op_kind
    st.op_a = nt.op_a
    st.op_b = nt.op_b
    st.op_samp = nt.op_samp
    st.br_start = nt.br_start
    st.br_end = nt.br_end
    st.cls_start = nt.cls_start
    st.cls_end = nt.cls_end
    st.cls_mem = nt.cls_mem
    st.cls_cum = nt.cls_cum
    st.arrivals = nt.arrivals
    st.u_retiring = nt.u_retiring
    st.u_attempt = nt.u_attempt
    st.u_cls = nt.u_cls
    st.active = nt.active
    st.f_task = nt.f_task
    st.f_pc = nt.f_pc
    st.f_end = nt.f_end
    st.f_parent = nt.f_parent
    st.f_pending = nt.f_pending
    st.f_pool = nt.f_pool
    st.f_conn = nt.f_conn
    st.f_work = nt.f_work
    st.f_deadline = nt.f_deadline
    st.f_tenq = nt.f_tenq
    st.f_reply = nt.f_reply
    st.flow_free = nt.flow_free
    st.stack = nt.stack
    st.t_cls = nt.t_cls
    st.t_t0 = nt.t_t0
    st.t_user = nt.t_user
    st.t_pod = nt.t_pod
    st.t_proc = nt.t_proc
    st.t_alive = nt.t_alive
    st.t_gone = nt.t_gone
    st.t_nflows = nt.t_nflows
    st.t_inback = nt.t_inback
    st.t_indq = nt.t_indq
    st.t_inpod = nt.t_inpod
    st.t_free = nt.t_free
    st.task_free = nt.task_free
    st.dq = nt.dq
    st.dq_head = nt.dq_head
    st.dq_len = nt.dq_len
    st.a_cls = nt.a_cls
    st.a_t0 = nt.a_t0
    st.a_end = nt.a_end
    st.a_status = nt.a_status
    st.a_reason = nt.a_reason
    st.a_pod = nt.a_pod
    st.endpoints = nt.endpoints
    st.pod_killed = nt.pod_killed
    st.pod_refuse = nt.pod_refuse
    st.st_down = nt.st_down
    st.st_down_end = nt.st_down_end
    st.ex_down = nt.ex_down
    st.ex_down_end = nt.ex_down_end
    st.ex_factor = nt.ex_factor
    st.pod_mem_limit = nt.pod_mem_limit
    st.pod_index = nt.pod_index
    st.pl_dead = nt.pl_dead
    st.note_kind = nt.note_kind
    st.note_value = nt.note_value
    st.note_time = nt.note_time
    st.sl_first = nt.sl_first
    st.sl_nprocs = nt.sl_nprocs
    st.sl_conc = nt.sl_conc
    st.sl_backlog = nt.sl_backlog
    st.t_job = nt.t_job
    st.j_cls = nt.j_cls
    st.j_t0 = nt.j_t0
    st.j_attempt = nt.j_attempt
    st.j_task = nt.j_task
    st.j_counted = nt.j_counted
    st.j_pod = nt.j_pod
    st.j_open = nt.j_open
    st.jc_attempts = nt.jc_attempts
    st.jc_initial = nt.jc_initial
    st.jc_coeff = nt.jc_coeff
    st.jc_max_interval = nt.jc_max_interval
    st.jc_timeout = nt.jc_timeout
    st.jc_heartbeat = nt.jc_heartbeat
    st.jq = nt.jq
    st.jq_head = nt.jq_head
    st.jq_len = nt.jq_len
    st.jstat = nt.jstat
    st.pollers = nt.pollers
    st.jl_cls = nt.jl_cls
    st.jl_t0 = nt.jl_t0
    st.jl_end = nt.jl_end
    st.jl_status = nt.jl_status
    st.jl_reason = nt.jl_reason
    st.jl_pod = nt.jl_pod
    st.pod_inflight = nt.pod_inflight
    st.pod_mem = nt.pod_mem
    st.pod_mem_peak = nt.pod_mem_peak
    st.pod_backlog = nt.pod_backlog
    st.pod_bhead = nt.pod_bhead
    st.pod_blen = nt.pod_blen
    st.pr_pod = nt.pr_pod
    st.pr_inflight = nt.pr_inflight
    st.pr_n = nt.pr_n
    st.pr_token = nt.pr_token
    st.pr_seq = nt.pr_seq
    st.pr_V = nt.pr_V
    st.pr_tlast = nt.pr_tlast
    st.pr_used = nt.pr_used
    st.pr_due = nt.pr_due
    st.pr_hkey = nt.pr_hkey
    st.pr_hseq = nt.pr_hseq
    st.pr_hitem = nt.pr_hitem
    st.sv_n = nt.sv_n
    st.sv_token = nt.sv_token
    st.sv_seq = nt.sv_seq
    st.sv_completed = nt.sv_completed
    st.sv_V = nt.sv_V
    st.sv_tlast = nt.sv_tlast
    st.sv_due = nt.sv_due
    st.sv_busy = nt.sv_busy
    st.sv_cores = nt.sv_cores
    st.sv_speed = nt.sv_speed
    st.sv_hkey = nt.sv_hkey
    st.sv_hseq = nt.sv_hseq
    st.sv_hitem = nt.sv_hitem
    st.st_pool_size = nt.st_pool_size
    st.st_pool_limit = nt.st_pool_limit
    st.st_pool_timeout = nt.st_pool_timeout
    st.st_pre_ping = nt.st_pre_ping
    st.st_recycle = nt.st_recycle
    st.st_server_limit = nt.st_server_limit
    st.st_round_trip = nt.st_round_trip
    st.st_connect_time = nt.st_connect_time
    st.st_timeout_code = nt.st_timeout_code
    st.st_refused_code = nt.st_refused_code
    st.st_calls = nt.st_calls
    st.st_timeouts = nt.st_timeouts
    st.st_refused = nt.st_refused
    st.st_connects = nt.st_connects
    st.st_overflow_closed = nt.st_overflow_closed
    st.st_recycled = nt.st_recycled
    st.st_server_open = nt.st_server_open
    st.st_peak = nt.st_peak
    st.st_nuse = nt.st_nuse
    st.st_nwait = nt.st_nwait
    st.st_area_use = nt.st_area_use
    st.st_area_wait = nt.st_area_wait
    st.st_tarea = nt.st_tarea
    st.st_wzeros = nt.st_wzeros
    st.pl_open = nt.pl_open
    st.pl_inuse = nt.pl_inuse
    st.pl_watching = nt.pl_watching
    st.pl_idle = nt.pl_idle
    st.pl_idle_head = nt.pl_idle_head
    st.pl_idle_len = nt.pl_idle_len
    st.pl_wait = nt.pl_wait
    st.pl_wait_head = nt.pl_wait_head
    st.pl_wait_len = nt.pl_wait_len
    st.cn_born = nt.cn_born
    st.cn_fresh = nt.cn_fresh
    st.conn_free = nt.conn_free
    st.w_store = nt.w_store
    st.w_val = nt.w_val
    st.ex_conc = nt.ex_conc
    st.ex_retries = nt.ex_retries
    st.ex_backoff = nt.ex_backoff
    st.ex_window = nt.ex_window
    st.ex_budget = nt.ex_budget
    st.ex_code = nt.ex_code
    st.ex_samp = nt.ex_samp
    st.ex_win_index = nt.ex_win_index
    st.ex_win_count = nt.ex_win_count
    st.ex_win_max = nt.ex_win_max
    st.ex_in_flight = nt.ex_in_flight
    st.ex_calls = nt.ex_calls
    st.ex_rejected = nt.ex_rejected
    st.ex_failed = nt.ex_failed
    st.ex_wrejected = nt.ex_wrejected
    st.ex_max_in_use = nt.ex_max_in_use
    st.sm_inuse = nt.sm_inuse
    st.sm_wait = nt.sm_wait
    st.sm_wait_head = nt.sm_wait_head
    st.sm_wait_len = nt.sm_wait_len
    return st
