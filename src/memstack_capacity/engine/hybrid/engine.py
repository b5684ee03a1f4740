"""The batched data plane: simpy for the control plane, each pod's requests played between its events.

The per-pod kernel (:mod:`.kernel`) needs a fixed set of pods that nothing else touches.
Most scenarios that matter have an autoscaler and probes, so pods come and go, get ready
and unready, and the control plane reads their CPU and memory. Here the control plane runs
as in the general engine (HPA controller, metrics-server, pod lifecycle, probes, monitor),
and the requests cost no event each:

* arrivals, classes and routing are drawn in numpy blocks from the engine's own streams
  and routed to the endpoints **as they are** — the endpoint list changes only in a
  control-plane event, and before every such event (``Clock.before_step``) every arrival
  before it has been routed and every pod has played its own events up to that instant;
* each pod (:class:`.hybrid_pods.LazyPod`) plays its arrivals, admissions, completions,
  backlog releases and client timeouts in time order with the general engine's arithmetic;
* answers are collected and handed to the request log, the streaming statistics and the
  ingress's interval counters before each monitor sample (``Monitor.before_sample``) and
  at the end, sorted by the time they were given.

What the control plane sees of a pod at an instant is what the general engine shows: CPU
used, memory, in flight, backlog, held tasks; a probe is answered at the instant it
finishes. With one pod every stream is consumed in the general engine's order, so the
request rows are the same (``tests/test_hybrid.py``); with several pods the service times
are drawn pod by pod between control events rather than interleaved across pods, so the run
is another sample of the same model.

Events that act on pods through the control plane (pod kills, drains, rolling updates) run
as in the general engine; a traffic spike is folded into the arrival profile before the run,
as the general engine folds it. :func:`eligibility` says why a scenario cannot take this path.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from types import SimpleNamespace

import numpy as np

from memstack_capacity.components.recorder import E503, E504, OK, REASON_CODE, STATUS_LABELS
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import advance_to_horizon, finish, start_model
from memstack_capacity.engine.hybrid.pods import LazyPod
from memstack_capacity.engine.kernel.engine import ArrivalBlocks
from memstack_capacity.engine.kernel.series import record_answers
from memstack_capacity.engine.record import RunRecord
from memstack_capacity.engine.rng import stream

_NO_ENDPOINTS = REASON_CODE["no_endpoints"]


# ---- eligibility -------------------------------------------------------------------------------
NAME = "hybrid"


def eligibility(scenario) -> list[str]:
    """Why `scenario` cannot run on the batched data plane (empty when it can): from the capability table."""
    return reasons(scenario, NAME)


# ---- arrivals ----------------------------------------------------------------------------------
class Arrivals:
    """The open source's arrival times and classes, a block at a time, as the engine draws them."""

    def __init__(self, spec, mix, seed: int, horizon: float, points: list | None = None):
        points = points if points is not None else [(p.at, p.rps) for p in spec.profile]
        self._blocks = ArrivalBlocks(points, spec.cv, stream(seed, "workload/arrivals"), horizon)
        self._mix = mix
        self._cumulative = np.asarray(mix.cumulative)
        self._n_classes = len(mix.programs)

    @property
    def done(self) -> bool:
        return self._blocks.done

    def next_block(self) -> tuple[list, list]:
        """The next block's (times, classes); empty lists once past the horizon."""
        if self._blocks.done:
            return [], []
        t = self._blocks.next_times()
        u = self._mix.uniform.take(len(t))
        cls = np.minimum(np.searchsorted(self._cumulative, u, side="right"), self._n_classes - 1)
        return t.tolist(), cls.tolist()


# ---- the data plane ------------------------------------------------------------------------------
class BatchedPlane:
    """Routes arrivals to the API's pods and collects their answers (see the module docstring)."""

    def __init__(self, model, seed: int):
        scenario = model.scenario
        self.model = model
        self.env = model.env
        self.runtime = model.runtimes["api"]
        self.ingress = model.ingress
        self.balancer = model.ingress.balancer
        self.timeout = float(scenario.workload.timeout)
        mix = model.source.mix
        self.memory = list(mix.memory)
        self.samplers = [prog[0][1] for prog in mix.programs]  # each class's one cpu op's Sampler
        folded = model.folded_profile  # traffic spikes, folded in at build time
        self.arrivals = Arrivals(scenario.workload.arrivals, mix, seed, float(scenario.duration), folded)
        self._t: list = []
        self._c: list = []
        self._pos = 0
        self.t_synced = -math.inf
        self.accepted = 0  # accepted since the last flush (the ingress's in-flight count grows by it)
        self.late_probes = 0  # probes answered after their instant (at most by float rounding; tests expect none)
        self.ok_cls: list = []
        self.ok_t0: list = []
        self.ok_end: list = []
        self.ok_pod: list = []
        self.err: list = []  # (cls, t0, t_end, status, reason, pod)
        plane = self
        self.runtime.pod_factory = lambda env, rt, index, name, spec: LazyPod(env, rt, index, name, spec, plane)
        self.env.before_step = self.sync_all
        model.monitor.before_sample.append(self.flush)

    # ---- routing -------------------------------------------------------------------------------
    def route_until(self, t: float) -> None:
        """Route every arrival strictly before `t` to the endpoints as they are now."""
        while True:
            times = self._t
            pos = self._pos
            if pos == len(times):
                if self.arrivals.done:
                    return
                self._t, self._c = self.arrivals.next_block()
                self._pos = 0
                continue
            end = bisect_left(times, t, pos)
            if end > pos:
                self._route(times[pos:end], self._c[pos:end])
                self._pos = end
            if end < len(times):
                return

    def _route(self, times: list, classes: list) -> None:
        self.ingress.arrived += len(times)
        eps = self.runtime.endpoints
        L = len(eps)
        if L == 0:
            for a, c in zip(times, classes):
                self.error(c, a, a, E503, _NO_ENDPOINTS, -1)
            return
        if self.balancer.policy == "round_robin":
            first = self.balancer.cursor % L
            m = len(times)
            for j in range(min(L, m)):
                pod = eps[(first + j) % L]
                pod.pend_t.extend(times[j::L])
                pod.pend_c.extend(classes[j::L])
            self.balancer.cursor = (first + m - 1) % L + 1
            return
        picks = (self.balancer.uniform.take(len(times)) * L).astype(np.int64).tolist()
        for a, c, j in zip(times, classes, picks):
            pod = eps[j]
            pod.pend_t.append(a)
            pod.pend_c.append(c)

    # ---- bringing pods up to an instant ------------------------------------------------------------
    def bring(self, pod, t: float) -> None:
        """Route what arrived before `t`, then play `pod`'s events before `t`."""
        self.route_until(t)
        pod.advance(t)

    def sync_all(self, t: float) -> None:
        """Before a control-plane event at `t`: every pod as it is at `t`."""
        if t <= self.t_synced:
            return
        self.route_until(t)
        for pod in self.runtime.pods:
            pod.advance(t)
        self.t_synced = t

    # ---- answers -----------------------------------------------------------------------------------
    def error(self, cls: int, t0: float, t_end: float, status: int, reason: int, pod: int) -> None:
        self.err.append((cls, t0, t_end, status, reason, pod))

    def flush(self) -> None:
        """Hand the answers given so far to the log, the statistics and the ingress's counters."""
        n_ok, err = len(self.ok_end), self.err
        ingress = self.ingress
        if n_ok + len(err) == 0 and not self.accepted:
            return
        e = np.asarray(err, dtype=float).reshape(-1, 6)
        cls = np.concatenate([np.asarray(self.ok_cls, dtype=np.int64), e[:, 0].astype(np.int64)])
        t0 = np.concatenate([np.asarray(self.ok_t0, dtype=float), e[:, 1]])
        t_end = np.concatenate([np.asarray(self.ok_end, dtype=float), e[:, 2]])
        status = np.concatenate([np.full(n_ok, OK, dtype=np.int64), e[:, 3].astype(np.int64)])
        reason = np.concatenate([np.zeros(n_ok, dtype=np.int64), e[:, 4].astype(np.int64)])
        pod = np.concatenate([np.asarray(self.ok_pod, dtype=np.int64), e[:, 5].astype(np.int64)])
        order = np.argsort(t_end, kind="stable")
        ans = SimpleNamespace(cls=cls[order], t0=t0[order], t_end=t_end[order], status=status[order],
                              reason=reason[order], pod=pod[order])
        record_answers(self.model, ans)
        counts = np.bincount(ans.status, minlength=len(STATUS_LABELS)).tolist()
        for code, n in enumerate(counts):
            ingress.interval_status[code] += n
        ok = ans.status == OK
        ingress.window.extend((ans.t_end[ok] - ans.t0[ok]).tolist())
        ingress.in_flight += self.accepted - counts[OK] - counts[E504]
        self.accepted = 0
        self.ok_cls, self.ok_t0, self.ok_end, self.ok_pod, self.err = [], [], [], [], []

    def finish(self, horizon: float) -> None:
        """At the end of the run: every pod up to the horizon, every answer handed over."""
        self.sync_all(horizon)
        self.flush()


def run_model(scenario, seed: int, progress=None):
    """Build the general engine's model with the batched data plane, run it to the horizon; (model, plane)."""
    model = build(scenario, seed)
    plane = BatchedPlane(model, seed)
    start_model(model, open_source=False)  # the plane draws the arrivals itself
    advance_to_horizon(model, progress)
    plane.finish(float(scenario.duration))
    model.monitor.sample_at_horizon()
    return model, plane


def run(scenario, seed: int, progress=None) -> RunRecord:
    """Simulate `scenario` with `seed` on the batched data plane."""
    started = time.perf_counter()
    model, _plane = run_model(scenario, seed, progress)
    return finish(model, time.perf_counter() - started, NAME)
