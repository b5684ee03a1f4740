"""Per-pod request kernels: one pod's requests advanced exactly, without an event per request.

Each function takes the pod's arrivals (times in increasing order, all before the horizon
``H``) and one draw callable per arrival (its class's service stream), and reproduces
:class:`memstack_capacity.components.pods.Pod` in independent-process mode (``limits.cpu >=
processes``): ``p`` processes, each admitting up to ``k`` requests that share its core by
processor sharing (virtual time, finish tags in a heap, the same completion tolerance), a
FIFO accept backlog of ``b`` (rejected beyond it), a request leaving the backlog for the
process with the fewest in flight (ties: the lowest index). A service time is drawn when the
request is admitted to a process, so the draws are taken in admission order, as the engine
takes them. Nothing at or after ``H`` happens (the engine does not process events at the
horizon).

Results, indexed by the arrival's position in the pod's list: admission time and server
completion time (``inf`` when not before ``H``), the rejected positions, the processes'
busy intervals (for CPU accounting) and the completion order.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush, heapreplace

INF = math.inf
_EPS_ABS = 1e-12  # as components/pods.py
_EPS_REL = 1e-10
_TIME_ULPS = 4.0  # as components/pods.py


def fcfs_open(arr: list, works: list, p: int):
    """``concurrency: 1`` with a backlog that cannot fill: ``p`` FCFS servers, every request
    admitted in arrival order, so request i's service time is ``works[i]``.

    Returns (adm, done) per request, horizon ignored: the starts are non-decreasing, so the
    caller cuts at the first start at or after the horizon.
    """
    heap = [0.0] * p
    adm: list = []
    done: list = []
    adm_append, done_append = adm.append, done.append
    for a, w in zip(arr, works):
        f = heap[0]
        s = a if f <= a else f
        e = s + w
        heapreplace(heap, e)
        adm_append(s)
        done_append(e)
    return adm, done


def fcfs(arr: list, draws: list, p: int, b: int, H: float):
    """``concurrency: 1``: ``p`` FCFS servers fed from one FIFO backlog of ``b`` (an M/G/c/c+b queue).

    With one request per process, which process serves does not change any time, so the
    heap of the servers' free times is the whole state. Returns (adm, done, rejected); each
    request's own (adm, done) is the busy interval of the process that served it.
    """
    heap = [0.0] * p
    adm: list = []
    done: list = []
    n = len(arr)
    waiting: deque = deque()  # start times of the requests in the backlog
    rejected: list = []
    for i in range(n):
        a = arr[i]
        f = heap[0]
        if f <= a:
            s = a
        else:
            while waiting and waiting[0] <= a:
                waiting.popleft()
            if len(waiting) >= b:
                rejected.append(i)
                adm.append(INF)
                done.append(INF)
                continue
            s = f
            if s >= H:
                waiting.append(INF)
                adm.append(INF)
                done.append(INF)
                continue
            waiting.append(s)
        e = s + draws[i]()
        heapreplace(heap, e)
        adm.append(s)
        done.append(e)
    return adm, done, rejected


def shared(arr: list, draws: list, p: int, k: int, b: int, H: float):
    """Processor sharing per process (any ``p``, ``k``), event by event within the pod.

    Returns (adm, done, rejected, busy_start, busy_end, order): ``order`` lists positions in
    the order the engine answers them (completion time, then finish tag).
    """
    n = len(arr)
    adm = [INF] * n
    done = [INF] * n
    rejected: list = []
    order: list = []
    busy_start: list = []
    busy_end: list = []
    V = [0.0] * p
    tl = [0.0] * p
    heaps: list = [[] for _ in range(p)]
    infl = [0] * p
    dues = [INF] * p
    backlog: deque = deque()
    seq = 0
    i = 0
    single = p == 1
    while True:
        a = arr[i] if i < n else H
        dmin = dues[0] if single else min(dues)
        if dmin < a:
            # ---- completions of one process (the engine's _proc_due) ----
            q = 0 if single else dues.index(dmin)
            heap = heaps[q]
            m = len(heap)
            v = V[q] + (dmin - tl[q]) / m
            tl[q] = dmin
            limit = v + _EPS_ABS + _EPS_REL * abs(v) + _TIME_ULPS * math.ulp(dmin) / m
            fin = [heappop(heap)[2]]
            while heap and heap[0][0] <= limit:
                fin.append(heappop(heap)[2])
            if not heap:
                busy_end.append(dmin)
            for j in fin:
                done[j] = dmin
                order.append(j)
                if backlog:  # the freed slot is the only one: the head goes to this process
                    nxt = backlog.popleft()
                    adm[nxt] = dmin
                    if not heap:
                        v = 0.0
                        busy_start.append(dmin)
                    seq += 1
                    heappush(heap, (v + draws[nxt](), seq, nxt))
            V[q] = v
            infl[q] = len(heap)
            if heap:
                dt = (heap[0][0] - v) * len(heap)
                dues[q] = dmin + (dt if dt > 0.0 else 0.0)
            else:
                dues[q] = INF
            continue
        if i >= n:
            break
        # ---- arrival i at time a (Pod.submit) ----
        if single:
            q = 0 if infl[0] < k else -1
        else:
            lo = min(infl)
            q = infl.index(lo) if lo < k else -1
        if q >= 0:
            heap = heaps[q]
            if heap:
                v = V[q] + (a - tl[q]) / len(heap)
            else:
                v = 0.0
                busy_start.append(a)
            tl[q] = a
            adm[i] = a
            seq += 1
            heappush(heap, (v + draws[i](), seq, i))
            V[q] = v
            m = len(heap)
            infl[q] = m
            dt = (heap[0][0] - v) * m
            dues[q] = a + (dt if dt > 0.0 else 0.0)
        elif len(backlog) >= b:
            rejected.append(i)
        else:
            backlog.append(i)
        i += 1
    return adm, done, rejected, busy_start, busy_end, order
