"""The per-pod kernel: an exact fast path for scenarios whose routing ignores pod state.

When every request is one ``cpu`` step, arrivals are open, the API has a fixed set of pods
that the balancer picks without looking at them (``round_robin``, ``random``) and nothing
else acts on the pods (no HPA, events, probes, datastores, jobs, OOM), each pod's requests
can be advanced on their own, with no event per request: arrivals, classes and routing are
drawn in numpy blocks from the engine's own named streams, each pod's requests run through
the compiled loops of :mod:`.pods` (service times drawn in advance, taken from a cursor per
class), and the monitor's series are computed afterwards from the per-request times
(:mod:`.kernel_series`). The result is the general engine's record:

* one pod: the same numbers — every stream is consumed in the engine's order (service times
  in admission order), so the request rows match to rounding (≈1e-12 s);
* several pods: arrivals, classes and routing are the engine's; service times are drawn
  from the same per-class streams but pod after pod instead of interleaved by admission time
  across pods, so the run is a different sample of the same model (statistically equivalent).

:func:`eligibility` says why a scenario cannot take this path; :func:`run_model` runs it.
``engine/run.py`` dispatches here (``engine="auto"``, the default) and falls back to the
general engine for anything not eligible; ``engine="des"`` (or ``MEMSTACK_ENGINE=des``)
forces the general engine, ``engine="kernel"`` requires the kernel.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
from memstack_capacity.components.recorder import E503, E504, OK, REASON_CODE
from memstack_capacity.components.sampling import BLOCK, Uniforms, _block_drawer
from memstack_capacity.components.workload import PiecewiseLinearRate
from memstack_capacity.engine.kernel.series import record_answers, record_samples
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import PROGRESS_STEP_S, finish
from memstack_capacity.engine.record import RunRecord
from memstack_capacity.engine.rng import stream
from memstack_capacity.scenario.distributions import Dist

NAME = "kernel"


def eligibility(scenario) -> list[str]:
    """Why `scenario` cannot run on the kernel (empty when it can): from the capability table."""
    return reasons(scenario, NAME)


# ---- random numbers, in the engine's streams ---------------------------------------------------
def _blocks(fill, n: int) -> np.ndarray:
    """The first `n` (or a few more) numbers of a stream drawn BLOCK at a time, as the engine draws."""
    parts = []
    got = 0
    while got < n:
        block = fill()
        parts.append(block)
        got += len(block)
    return np.concatenate(parts) if parts else np.empty(0)


class _Inverse:
    """workload.InverseIntensity over arrays: the same segments and formulas, element by element."""

    def __init__(self, points):
        self._segments = PiecewiseLinearRate(points).segments()
        self.a, self.b, self.ra, self.k = next(self._segments)
        self.base = 0.0

    def times(self, lam: np.ndarray) -> np.ndarray:
        out = np.empty(len(lam))
        i, n = 0, len(lam)
        while i < n:
            a, b, ra, k = self.a, self.b, self.ra, self.k
            seg_mass = math.inf if b == math.inf else ra * (b - a) + 0.5 * k * (b - a) ** 2
            need = lam[i:] - self.base
            m = int(np.searchsorted(need, seg_mass, side="right"))
            nd = need[:m]
            if k == 0.0:
                t = a + nd / ra if ra > 0 else np.full(m, math.inf)
            else:
                disc = ra * ra + 2.0 * k * nd
                t = a + 2.0 * nd / (ra + np.sqrt(np.maximum(disc, 0.0)))
            out[i : i + m] = np.where(nd <= 0, a, t)
            i += m
            if i < n:
                if b == math.inf:
                    out[i:] = math.inf
                    break
                self.base += seg_mass
                self.a, self.b, self.ra, self.k = next(self._segments)
        return out


class ArrivalBlocks:
    """The open source's arrival times a block of draws at a time, as ``OpenSource`` schedules them:
    unit-rate epochs (sequential sums) through the inverse intensity of the rate profile
    `points`, each placed where ``call_later`` puts it; the first block past `horizon` is the last."""

    def __init__(self, points: list, cv: float, rng, horizon: float):
        if cv == 1.0:
            self._fill = lambda: rng.standard_exponential(BLOCK)
        else:
            self._fill = _block_drawer(Dist(dist="gamma", mean=1.0, cv=cv), rng)
        self._inverse = _Inverse(points)
        self._epoch = 0.0
        self._last = 0.0  # the last arrival's time, as call_later scheduled it
        self.horizon = horizon
        self.done = False

    def next_times(self) -> np.ndarray:
        block = self._fill().astype(float)
        block[0] += self._epoch
        lam = np.cumsum(block)  # sequential sums, as epoch += draw
        self._epoch = float(lam[-1])
        t = self._inverse.times(lam)
        beyond = np.flatnonzero(t > self.horizon)
        if len(beyond):
            t = t[: beyond[0]]
            self.done = True
        return self._as_scheduled(t)

    def _as_scheduled(self, t: np.ndarray) -> np.ndarray:
        """call_later puts an arrival at ``previous + (t - previous)``: t itself except rarely, early on."""
        if not len(t):
            return t
        prev = np.concatenate(([self._last], t[:-1]))
        if not np.array_equal(prev + (t - prev), t):
            out, last = t.tolist(), self._last
            for i, ti in enumerate(out):
                out[i] = last = last + (ti - last)
            t = np.asarray(out)
        self._last = float(t[-1])
        return t


def arrival_times(spec, rng, horizon: float) -> np.ndarray:
    """The times the engine's OpenSource processes arrivals at (those before the horizon)."""
    blocks = ArrivalBlocks([(p.at, p.rps) for p in spec.profile], spec.cv, rng, horizon)
    parts = []
    while not blocks.done:
        parts.append(blocks.next_times())
    t = np.concatenate(parts)
    return t[: int(np.searchsorted(t, horizon, side="left"))]  # an event at the horizon is not processed


def _backlog_peak(starts: np.ndarray, arrivals: np.ndarray) -> int:
    """Most requests waiting in a FCFS pod's backlog at an arrival (earlier ones not yet started)."""
    i = np.arange(len(arrivals))
    started = np.minimum(np.searchsorted(starts, arrivals, side="right"), i)
    return int((i - started).max()) if len(i) else 0


def _uniforms(rng, n: int) -> np.ndarray:
    return Uniforms(rng).take(n)


# ---- the run ------------------------------------------------------------------------------------
def run(scenario, seed: int, progress=None) -> RunRecord:
    """Simulate `scenario` with `seed` on the kernel (`progress` is told after the run, in its usual steps)."""
    started = time.perf_counter()
    model = run_model(scenario, seed)
    if progress is not None:
        t = 0.0
        while t < scenario.duration:
            t = min(scenario.duration, t + PROGRESS_STEP_S)
            progress(t, scenario.duration)
    return finish(model, time.perf_counter() - started, NAME)


def run_model(scenario, seed: int):
    """Build the general engine's model, fill its record with the kernel's results, return it (clock at the horizon)."""
    from memstack_capacity.engine.kernel import pods as kernel_pods  # here: numba takes a second to import

    model = build(scenario, seed)
    api = scenario.deployments["api"]
    runtime = model.runtimes["api"]
    runtime.start(api.replicas)
    if any(p.phase != "Running" for p in runtime.pods):  # the capability table said otherwise: a bug, not a fallback
        raise RuntimeError("kernel: an initial pod was not placed")
    H = float(scenario.duration)
    wl = scenario.workload
    T = arrival_times(wl.arrivals, stream(seed, "workload/arrivals"), H)
    N = len(T)
    mix = model.source.mix
    cls = np.searchsorted(np.asarray(mix.cumulative), _uniforms(stream(seed, "workload/mix"), N), side="right")
    n_classes = len(wl.requests)
    np.minimum(cls, n_classes - 1, out=cls)
    n_pods = api.replicas
    if api.load_balancing == "round_robin":
        pod = np.arange(N) % n_pods
    else:
        pod = (_uniforms(stream(seed, "balancer/api"), N) * n_pods).astype(np.int64)

    # each class's service draws, consumed pod after pod from a cursor (off)
    class_draws, off = [], [0] * n_classes
    for c, rc in enumerate(wl.requests):
        dist = rc.steps[0].cpu
        need = int(np.count_nonzero(cls == c))
        if dist.dist == "constant":
            class_draws.append(np.full(need, float(dist.expected())))
        else:
            class_draws.append(_blocks(_block_drawer(dist, stream(seed, f"requests/{rc.name}/0")), need)[:need])
    # the same draws in one array for the compiled loops: class c's begin at first[c]
    draws = np.concatenate(class_draws).astype(np.float64)
    first = np.cumsum([0] + [len(d) for d in class_draws[:-1]]).astype(np.int64)

    adm = np.full(N, math.inf)
    done = np.full(N, math.inf)
    rejected = np.zeros(N, dtype=bool)
    busy_start, busy_end, busy_pod, ok_order = [], [], [], []
    p, k, b = api.processes, api.concurrency, api.backlog
    for q in range(n_pods):
        idx = np.flatnonzero(pod == q) if n_pods > 1 else np.arange(N)
        arr = T[idx]
        c_idx = cls[idx]
        fast = False
        if k == 1 and b >= 1:
            # Optimistic: if nothing is rejected the pod admits in arrival order, so each
            # arrival's draw is known; then check the backlog never reached its limit.
            works = np.empty(len(idx))
            for c in range(n_classes):
                mine = c_idx == c if n_classes > 1 else slice(None)
                m = len(idx) if n_classes == 1 else int(np.count_nonzero(mine))
                works[mine] = class_draws[c][off[c] : off[c] + m]
            a_, d_ = kernel_pods.fcfs_open(arr, works, p)
            fast = b >= len(idx) or _backlog_peak(a_, arr) < b
            if fast:
                late = a_ >= H  # never admitted before the horizon (starts are non-decreasing)
                a_[late] = math.inf
                d_[late | (d_ >= H)] = math.inf
                rej = []
        if not fast:
            cursor = first + np.asarray(off, dtype=np.int64)  # each class's next draw (the loops advance it)
            if k == 1:
                a_, d_, rej = kernel_pods.fcfs(arr, c_idx, draws, cursor, p, b, H)
                d_[d_ >= H] = math.inf
            else:
                a_, d_, rej, bs, be, order = kernel_pods.shared(arr, c_idx, draws, cursor, p, k, b, H)
        admitted = np.isfinite(a_)
        for c in range(n_classes):  # each admission took one draw of its class
            off[c] += int(np.count_nonzero(admitted & (c_idx == c))) if n_classes > 1 else int(admitted.sum())
        if k == 1:
            busy_start.append(a_[admitted])
            busy_end.append(d_[admitted])
            order = idx[np.argsort(d_, kind="stable")]
        else:
            busy_start.append(bs)
            busy_end.append(be)
            order = idx[order]
        busy_pod.append(np.full(len(busy_start[-1]), q, dtype=np.int64))
        adm[idx] = a_
        done[idx] = d_
        rejected[idx[np.asarray(rej, dtype=np.int64)]] = True
        ok_order.append(order)

    # ---- what the client sees (ingress.py): 503 at arrival, 504 at the deadline, else the answer
    deadline = T + float(wl.timeout)
    accepted = ~rejected
    ok = accepted & (done < deadline) & (done < H)
    late = accepted & ~ok & (deadline < H)
    order = np.concatenate(ok_order) if ok_order else np.empty(0, dtype=np.int64)
    order = order[ok[order]]
    late_i = np.flatnonzero(late)
    rej_i = np.flatnonzero(rejected)
    rows = np.concatenate([order, late_i, rej_i]).astype(np.int64)
    t_end = np.concatenate([done[order], deadline[late_i], T[rej_i]])
    status = np.concatenate([np.full(len(order), OK), np.full(len(late_i), E504), np.full(len(rej_i), E503)])
    reason = np.concatenate([np.zeros(len(order), dtype=np.int64), np.full(len(late_i), REASON_CODE["timeout"]),
                             np.full(len(rej_i), REASON_CODE["backlog_full"])])
    sort = np.argsort(t_end, kind="stable")
    rows, t_end, status, reason = rows[sort], t_end[sort], status[sort], reason[sort]
    answers = SimpleNamespace(cls=cls[rows], t0=T[rows], t_end=t_end, status=status, reason=reason, pod=pod[rows])
    record_answers(model, answers)

    mem = np.asarray([c.memory for c in wl.requests], dtype=float)
    record_samples(model, scenario, SimpleNamespace(
        T=T, accepted=accepted, adm=adm, done=done, cls=cls, pod=pod, mem=mem, n_pods=n_pods,
        answers=answers, busy_start=np.concatenate(busy_start), busy_end=np.concatenate(busy_end),
        busy_pod=np.concatenate(busy_pod)))

    ingress = model.ingress
    ingress.arrived = N
    ingress.in_flight = int(np.count_nonzero(accepted)) - int(np.count_nonzero(ok)) - len(late_i)
    model.env._now = H
    return model
