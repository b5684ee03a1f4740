"""The compiled data plane's tables between the loop's calls: what the loop asks of Python.

The loop returns ``REFILL`` when a random-number row runs low (:func:`refill` appends the
general engine's next blocks) and ``GROW`` when a table is half full (:func:`grow` doubles it);
a container that starts takes a slot (:func:`add_slot`), and the per-slot and per-process tables
double when there is no room (:func:`grow_slots`, :func:`grow_procs`). Arrays are replaced, not
resized in place, so the caller makes the loop's view of them again (``loop.make_state``).
"""

from __future__ import annotations

import math

import numpy as np

from memstack_capacity.components.sampling import BLOCK
from memstack_capacity.engine.fast import loop

#: Draws a row holds after a refill: 16 of the general engine's blocks.
REFILL_TO = 16 * BLOCK
#: A random-number row's length: a refill's draws, one more block, and the loop's margin.
ROW = REFILL_TO + BLOCK + loop.DRAW_MARGIN


def fill_row(st: tuple, fill, r: int) -> None:
    """Keep the row's unused draws and append blocks until it holds REFILL_TO."""
    i, n = st.draw_i[r], st.draw_n[r]
    left = st.draws[r, i:n].copy()
    parts = [left]
    have = len(left)
    while have < REFILL_TO:
        block = np.asarray(fill(), dtype=np.float64)
        parts.append(block)
        have += len(block)
    row = np.concatenate(parts)
    st.draws[r, : len(row)] = row
    st.draw_i[r], st.draw_n[r] = 0, len(row)


def refill(st: tuple, rows) -> None:
    """Every row running low gets its next blocks (the loop asked: ``REFILL``)."""
    low = np.flatnonzero(st.draw_n - st.draw_i < loop.DRAW_MARGIN + REFILL_TO // 2)
    for r in low.tolist():
        fill_row(st, rows.fills[r], r)
    st.G[loop.G_REFILL] = 0


def grow(st: tuple) -> tuple:
    """Every table the loop found over half full, twice as large (the loop asked: ``GROW``)."""
    G = st.G
    repl: dict = {}
    if G[loop.G_EVN] > loop.GROW_AT * len(st.ev_t):
        for name in ("ev_t", "ev_s", "ev_k", "ev_a", "ev_b"):
            repl[name] = _longer(getattr(st, name))
    if G[loop.G_FLOWTOP] < (1.0 - loop.GROW_AT) * len(st.f_task):
        cap = len(st.f_task)
        for name in ("f_task", "f_pc", "f_end", "f_parent", "f_pending", "f_pool", "f_conn", "f_work", "f_deadline",
                     "f_tenq", "f_reply", "stack"):
            repl[name] = _longer(getattr(st, name))
        repl["flow_free"] = _more_free(st.flow_free, G[loop.G_FLOWTOP], cap)
        G[loop.G_FLOWTOP] += cap
    if G[loop.G_TASKTOP] < (1.0 - loop.GROW_AT) * len(st.t_cls):
        cap = len(st.t_cls)
        for name in ("t_cls", "t_t0", "t_user", "t_pod", "t_proc", "t_alive", "t_gone", "t_nflows", "t_inback",
                     "t_indq", "t_inpod", "t_job"):
            repl[name] = _longer(getattr(st, name))
        repl["t_free"] = np.concatenate([st.t_free, np.ones(cap, dtype=np.int64)])
        repl["task_free"] = _more_free(st.task_free, G[loop.G_TASKTOP], cap)
        G[loop.G_TASKTOP] += cap
        repl["dq"] = _wider_ring(st.dq, st.dq_head, st.dq_len)
    if G[loop.G_CONNTOP] < (1.0 - loop.GROW_AT) * len(st.cn_born):
        cap = len(st.cn_born)
        repl["cn_born"], repl["cn_fresh"] = _longer(st.cn_born), _longer(st.cn_fresh)
        repl["conn_free"] = _more_free(st.conn_free, G[loop.G_CONNTOP], cap)
        G[loop.G_CONNTOP] += cap
    for prefix, size in (("pr_h", st.pr_n), ("sv_h", st.sv_n)):
        key = getattr(st, prefix + "key")
        if len(size) and size.max() > loop.GROW_AT * key.shape[1]:
            for name in ("key", "seq", "item"):
                repl[prefix + name] = _wider(getattr(st, prefix + name))
    for ring, head, length in (("pl_wait", "pl_wait_head", "pl_wait_len"), ("pl_idle", "pl_idle_head", "pl_idle_len"),
                               ("sm_wait", "sm_wait_head", "sm_wait_len")):
        r = getattr(st, ring)
        if getattr(st, length).max() > loop.GROW_AT * r.shape[1]:
            repl[ring] = _wider_ring(r, getattr(st, head), getattr(st, length))
    if G[loop.G_NJOBS] > loop.GROW_AT * len(st.j_cls):
        for name in ("j_cls", "j_t0", "j_attempt", "j_task", "j_counted", "j_pod", "j_open"):
            repl[name] = _longer(getattr(st, name))
    if st.jq_len[0] > loop.GROW_AT * st.jq.shape[1]:
        repl["jq"] = _wider_ring(st.jq, st.jq_head, st.jq_len)
    for names, count in ((("a_cls", "a_t0", "a_end", "a_status", "a_reason", "a_pod"), loop.G_NANS),
                         (("w_store", "w_val"), loop.G_NWAIT),
                         (("jl_cls", "jl_t0", "jl_end", "jl_status", "jl_reason", "jl_pod"), loop.G_NJL)):
        if G[count] > loop.GROW_AT * len(getattr(st, names[0])):
            for name in names:
                repl[name] = _longer(getattr(st, name))
    G[loop.G_GROW] = 0
    return st._replace(**repl) if repl else st


def _longer(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros_like(a)])


def _wider(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros_like(a)], axis=1)


def _more_free(free: np.ndarray, top: int, cap: int) -> np.ndarray:
    """A free list of 2·cap slots: the free ones below `top`, then the new ones (taken last first)."""
    out = np.zeros(2 * cap, dtype=np.int64)
    out[:top] = free[:top]
    out[top : top + cap] = np.arange(2 * cap - 1, cap - 1, -1, dtype=np.int64)
    return out


def _wider_ring(ring: np.ndarray, head: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each row's queue unrolled from its head into a ring twice as wide (heads set to 0)."""
    rows, cap = ring.shape
    out = np.zeros((rows, 2 * cap), dtype=ring.dtype)
    for r in range(rows):
        n = int(length[r])
        idx = (int(head[r]) + np.arange(n)) % cap
        out[r, :n] = ring[r, idx]
    head[:] = 0
    return out


#: The tables that have a row per container slot, per process and per (process, store).
_PER_SLOT = ("endpoints", "pod_killed", "pod_refuse", "pod_mem_limit", "pod_index", "pod_inflight", "pod_mem", "pod_mem_peak",
             "pod_bhead", "pod_blen", "pod_backlog", "sl_first", "sl_nprocs", "sl_conc", "sl_backlog", "pollers")
_PER_PROC = ("pr_pod", "pr_inflight", "pr_n", "pr_token", "pr_seq", "pr_V", "pr_tlast", "pr_used", "pr_due",
             "pr_hkey", "pr_hseq", "pr_hitem")
_PER_POOL = ("pl_open", "pl_inuse", "pl_watching", "pl_dead", "pl_idle", "pl_idle_head", "pl_idle_len", "pl_wait",
             "pl_wait_head", "pl_wait_len")
_PER_SEM = ("sm_inuse", "sm_wait", "sm_wait_head", "sm_wait_len")


def grow_slots(st: tuple) -> tuple:
    """Room for twice as many container slots (new rows as a fresh container's: killed until added)."""
    return _grow_rows(st, _PER_SLOT)


def grow_procs(st: tuple) -> tuple:
    """Room for twice as many processes: every per-process, per-pool and per-semaphore table."""
    return _grow_rows(st, _PER_PROC + _PER_POOL + _PER_SEM)


def _grow_rows(st: tuple, names: tuple) -> tuple:
    repl = {}
    for name in names:
        a = getattr(st, name)
        extra = np.zeros_like(a)
        if name == "pod_killed":
            extra[:] = 1
        elif name == "pr_due":
            extra[:] = math.inf
        repl[name] = np.concatenate([a, extra], axis=0)
    return st._replace(**repl)


def add_slot(st: tuple, slot: int, first_proc: int, now: float, spec, memory_limit: int, pod_index: int) -> None:
    """Slot `slot` becomes a container of a pod of deployment `spec` that has just started: no
    request, ``memory_base`` bytes, processes from `first_proc` on."""
    st.pod_killed[slot] = 0
    st.pod_refuse[slot] = 0
    st.pod_mem[slot] = st.pod_mem_peak[slot] = int(spec.memory_base)
    st.pod_mem_limit[slot] = memory_limit
    st.pod_index[slot] = pod_index
    st.sl_first[slot], st.sl_nprocs[slot] = first_proc, spec.processes
    st.sl_conc[slot], st.sl_backlog[slot] = spec.concurrency, spec.backlog
    rows = slice(first_proc, first_proc + spec.processes)
    st.pr_pod[rows] = slot
    st.pr_tlast[rows] = now
