"""Per-pod request kernels: one pod's requests advanced exactly, without an event per request.

Each function takes the pod's arrivals (times in increasing order, all before the horizon
``H``) and their service times drawn in advance: ``fcfs_open`` one per arrival, the others
each arrival's class ``cls`` and every class's draws in ``draws``, ``cursor[c]`` being the
position of class ``c``'s next one (advanced in place). They reproduce
:class:`memstack_capacity.components.pods.Pod` in independent-process mode (``limits.cpu >=
processes``): ``p`` processes, each admitting up to ``k`` requests that share its core by
processor sharing (virtual time, finish tags in a heap, the same completion tolerance), a
FIFO accept backlog of ``b`` (rejected beyond it), a request leaving the backlog for the
process with the fewest in flight (ties: the lowest index). A service time is taken when the
request is admitted to a process, so the draws are taken in admission order, as the engine
takes them. Nothing at or after ``H`` happens (the engine does not process events at the
horizon).

Results, indexed by the arrival's position in the pod's list: admission time and server
completion time (``inf`` when not before ``H``), the rejected positions, the processes'
busy intervals (for CPU accounting) and the completion order.

The loops are compiled to machine code by numba in nopython mode, without fastmath: the same
IEEE operations in the same order as in Python, so the results are the same to the bit. The
first run compiles them; the machine code is cached on disk (see :func:`_compiled`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

INF = math.inf
_EPS_ABS = 1e-12  # as components/pods.py
_EPS_REL = 1e-10
_TIME_ULPS = 4.0  # as components/pods.py


def _compiled(signature: str):
    """Compile for `signature` alone (nopython), the machine code cached in the package's
    ``__pycache__`` (numba falls back to ``~/.cache/numba`` when that is read-only; with no
    writable cache directory at all, compiled in memory on each run). One signature, so
    numba compiles each loop once instead of once per argument type it meets."""

    def compile_(fn):
        try:
            return njit(signature, cache=True)(fn)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return njit(signature)(fn)

    return compile_


def _inline(fn):
    """A helper of the compiled loops, inlined into each (numba IR inlining): compiled and
    cached as part of its callers, not on its own."""
    return njit(inline="always")(fn)


_F, _I = "float64[::1]", "int64[::1]"  # contiguous arrays, in the signatures


# ---- heaps on arrays -----------------------------------------------------------------------------
@_inline
def _replace_min(heap, x):
    """heapq.heapreplace on a float array: the smallest value leaves, `x` enters."""
    n = len(heap)
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= x:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = x


@_inline
def _before(tags, seqs, q, x, y):
    """Entry x of process q's heap comes before entry y: (finish tag, sequence) order, as tuples compare."""
    return tags[q, x] < tags[q, y] or (tags[q, x] == tags[q, y] and seqs[q, x] < seqs[q, y])


@_inline
def _swap(tags, seqs, ids, q, x, y):
    tags[q, x], tags[q, y] = tags[q, y], tags[q, x]
    seqs[q, x], seqs[q, y] = seqs[q, y], seqs[q, x]
    ids[q, x], ids[q, y] = ids[q, y], ids[q, x]


@_inline
def _push(tags, seqs, ids, size, q, tag, seq, j):
    """heappush((tag, seq, j)) on process q's heap."""
    i = size[q]
    size[q] = i + 1
    tags[q, i], seqs[q, i], ids[q, i] = tag, seq, j
    while i > 0:
        parent = (i - 1) // 2
        if not _before(tags, seqs, q, i, parent):
            break
        _swap(tags, seqs, ids, q, i, parent)
        i = parent


@_inline
def _pop(tags, seqs, ids, size, q):
    """heappop() on process q's heap: the request position of the first entry."""
    j = ids[q, 0]
    n = size[q] - 1
    size[q] = n
    if n > 0:
        _swap(tags, seqs, ids, q, 0, n)
        i = 0
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _before(tags, seqs, q, child + 1, child):
                child += 1
            if not _before(tags, seqs, q, child, i):
                break
            _swap(tags, seqs, ids, q, i, child)
            i = child
    return j


@_inline
def _ulp(x):
    """math.ulp(x) for finite x."""
    x = abs(x)
    up = np.nextafter(x, INF)
    if up == INF:
        up = np.nextafter(x, -INF)
    return up - x


@_inline
def _take(cls, draws, cursor, i):
    """The next service time of arrival i's class."""
    c = cls[i]
    w = draws[cursor[c]]
    cursor[c] += 1
    return w


# ---- the kernels ---------------------------------------------------------------------------------
@_compiled(f"({_F}, {_F}, int64)")
def fcfs_open(arr, works, p):
    """``concurrency: 1`` with a backlog that cannot fill: ``p`` FCFS servers, every request
    admitted in arrival order, so request i's service time is ``works[i]``.

    Returns (adm, done) per request, horizon ignored: the starts are non-decreasing, so the
    caller cuts at the first start at or after the horizon.
    """
    n = len(arr)
    heap = np.zeros(p)  # the servers' free times
    adm = np.empty(n)
    done = np.empty(n)
    for i in range(n):
        a = arr[i]
        f = heap[0]
        s = a if f <= a else f
        e = s + works[i]
        _replace_min(heap, e)
        adm[i] = s
        done[i] = e
    return adm, done


@_compiled(f"({_F}, {_I}, {_F}, {_I}, int64, int64, float64)")
def fcfs(arr, cls, draws, cursor, p, b, H):
    """``concurrency: 1``: ``p`` FCFS servers fed from one FIFO backlog of ``b`` (an M/G/c/c+b queue).

    With one request per process, which process serves does not change any time, so the
    heap of the servers' free times is the whole state. Returns (adm, done, rejected); each
    request's own (adm, done) is the busy interval of the process that served it.
    """
    n = len(arr)
    heap = np.zeros(p)
    adm = np.empty(n)
    done = np.empty(n)
    waiting = np.empty(n)  # start times of the requests in the backlog: waiting[head:tail]
    head = tail = 0
    rejected = np.empty(n, np.int64)
    n_rej = 0
    for i in range(n):
        a = arr[i]
        f = heap[0]
        if f <= a:
            s = a
        else:
            while head < tail and waiting[head] <= a:
                head += 1
            if tail - head >= b:
                rejected[n_rej] = i
                n_rej += 1
                adm[i] = INF
                done[i] = INF
                continue
            s = f
            if s >= H:
                waiting[tail] = INF
                tail += 1
                adm[i] = INF
                done[i] = INF
                continue
            waiting[tail] = s
            tail += 1
        e = s + _take(cls, draws, cursor, i)
        _replace_min(heap, e)
        adm[i] = s
        done[i] = e
    return adm, done, rejected[:n_rej]


@_compiled(f"({_F}, {_I}, {_F}, {_I}, int64, int64, int64, float64)")
def shared(arr, cls, draws, cursor, p, k, b, H):
    """Processor sharing per process (any ``p``, ``k``), event by event within the pod.

    Returns (adm, done, rejected, busy_start, busy_end, order): ``busy_end`` is ``inf`` for
    a busy interval still open at the horizon; ``order`` lists positions in the order the
    engine answers them (completion time, then finish tag).
    """
    n = len(arr)
    adm = np.full(n, INF)
    done = np.full(n, INF)
    rejected = np.empty(n, np.int64)
    n_rej = 0
    order = np.empty(n, np.int64)
    n_done = 0
    busy_start = np.empty(n)
    busy_end = np.full(n, INF)
    n_start = n_end = 0
    V = np.zeros(p)
    tl = np.zeros(p)
    # process q's heap of (finish tag, sequence, position): entries [0, size[q]) of row q
    width = min(k, max(n, 1))  # no more in flight than admitted
    tags = np.empty((p, width))
    seqs = np.empty((p, width), np.int64)
    ids = np.empty((p, width), np.int64)
    size = np.zeros(p, np.int64)  # the requests in flight
    dues = np.full(p, INF)
    backlog = np.empty(n, np.int64)  # backlog[head:tail]
    head = tail = 0
    fin = np.empty(width, np.int64)
    seq = 0
    i = 0
    while True:
        a = arr[i] if i < n else H
        q = 0
        for r in range(1, p):
            if dues[r] < dues[q]:
                q = r
        dmin = dues[q]
        if dmin < a:
            # ---- completions of one process (the engine's _proc_due) ----
            m = size[q]
            v = V[q] + (dmin - tl[q]) / m
            tl[q] = dmin
            limit = v + _EPS_ABS + _EPS_REL * abs(v) + _TIME_ULPS * _ulp(dmin) / m
            fin[0] = _pop(tags, seqs, ids, size, q)
            n_fin = 1
            while size[q] > 0 and tags[q, 0] <= limit:
                fin[n_fin] = _pop(tags, seqs, ids, size, q)
                n_fin += 1
            if size[q] == 0:
                busy_end[n_end] = dmin
                n_end += 1
            for f in range(n_fin):
                j = fin[f]
                done[j] = dmin
                order[n_done] = j
                n_done += 1
                if head < tail:  # the freed slot is the only one: the head goes to this process
                    nxt = backlog[head]
                    head += 1
                    adm[nxt] = dmin
                    if size[q] == 0:
                        v = 0.0
                        busy_start[n_start] = dmin
                        n_start += 1
                    seq += 1
                    _push(tags, seqs, ids, size, q, v + _take(cls, draws, cursor, nxt), seq, nxt)
            V[q] = v
            m = size[q]
            if m > 0:
                dt = (tags[q, 0] - v) * m
                dues[q] = dmin + (dt if dt > 0.0 else 0.0)
            else:
                dues[q] = INF
            continue
        if i >= n:
            break
        # ---- arrival i at time a (Pod.submit) ----
        q = 0
        for r in range(1, p):
            if size[r] < size[q]:
                q = r
        if size[q] < k:
            m = size[q]
            if m > 0:
                v = V[q] + (a - tl[q]) / m
            else:
                v = 0.0
                busy_start[n_start] = a
                n_start += 1
            tl[q] = a
            adm[i] = a
            seq += 1
            _push(tags, seqs, ids, size, q, v + _take(cls, draws, cursor, i), seq, i)
            V[q] = v
            m = size[q]
            dt = (tags[q, 0] - v) * m
            dues[q] = a + (dt if dt > 0.0 else 0.0)
        elif tail - head >= b:
            rejected[n_rej] = i
            n_rej += 1
        else:
            backlog[tail] = i
            tail += 1
        i += 1
    return adm, done, rejected[:n_rej], busy_start[:n_start], busy_end[:n_start], order[:n_done]
