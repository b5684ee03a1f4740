"""The compiled data plane's run: the general engine's control plane around the compiled loop.

The model is the general engine's (``engine/des`` builds it): deployments and their pods'
lifecycles, probes, metrics-server and cAdvisor, the HPA controllers, the monitor — simpy
processes on the same clock. What the general engine does per request is replaced by the
compiled loop (``loop.advance``): before every control-plane event (``Clock.before_step``)
the loop plays the data plane up to that instant, so the control plane reads every pod as
the general engine would show it. The API's pods are :class:`.pods.FastPod`: each container
incarnation a slot of the loop's arrays. When the loop has something for the control plane
— a probe answered, a container OOMKilled — it stops at that instant and the plane hands it
to the control plane then. Answers reach the request log, the streaming statistics and the
ingress's interval counters before each monitor sample; the datastores' series and summary
block are written from the loop's counters.
"""

from __future__ import annotations

import time

import numpy as np

from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import advance_to_horizon
from memstack_capacity.engine.fast import layout, loop, tables
from memstack_capacity.engine.fast.books import Books
from memstack_capacity.engine.fast.pods import FastPod
from memstack_capacity.engine.fast.stores import LoopStores
from memstack_capacity.engine.kernel.engine import ArrivalBlocks
from memstack_capacity.engine.record import RunRecord
from memstack_capacity.engine.rng import stream

NAME = "fast"

#: A memory limit that never binds, in bytes.
_NO_LIMIT = 1 << 62


def eligibility(scenario) -> list[str]:
    """Why `scenario` cannot run on the compiled data plane (empty when it can): the capability table."""
    return reasons(scenario, NAME)


def run(scenario, seed: int, progress=None) -> RunRecord:
    """Simulate `scenario` with `seed` on the compiled data plane."""
    started = time.perf_counter()
    model = build(scenario, seed)
    plane = CompiledPlane(model, seed)
    plane.start()
    advance_to_horizon(model, progress)
    plane.finish()
    model.monitor.sample_at_horizon()
    return plane.record(time.perf_counter() - started)


#: Open arrivals handed to the loop at a time (the engine's blocks of draws, 32 of them).
ARRIVALS_AT_ONCE = 32


class _Arrivals:
    """The open source's arrival times (kernel.ArrivalBlocks: the engine's draws), a few blocks at a
    time, so a day at 700 req/s never holds its 60 M times at once."""

    def __init__(self, scenario, points: list, seed: int):
        self.blocks = ArrivalBlocks(points, scenario.workload.arrivals.cv, stream(seed, "workload/arrivals"),
                                    float(scenario.duration))

    def next(self) -> np.ndarray:
        parts = []
        while not self.blocks.done and len(parts) < ARRIVALS_AT_ONCE:
            parts.append(self.blocks.next_times())
        return np.concatenate(parts) if parts else np.empty(0)

    @property
    def more(self) -> bool:
        return not self.blocks.done


class CompiledPlane:
    """The loop, its state, and everything that passes between it and the control plane."""

    def __init__(self, model, seed: int):
        scenario = model.scenario
        self.model = model
        self.scenario = scenario
        self.env = model.env
        self.runtime = model.runtimes["api"]
        wl = scenario.workload
        folded = model.folded_profile  # traffic spikes, folded in at build time
        self.arrivals = None
        if wl.users is not None:
            points = folded or [(float(p.at), float(p.users)) for p in wl.users.profile]
            users = [(t, int(round(v))) for t, v in points] if folded else points
            arrivals = None
        else:
            users = None
            self.arrivals = _Arrivals(scenario, folded or [(p.at, p.rps) for p in wl.arrivals.profile], seed)
            arrivals = self.arrivals.next()
        slots = max(8, 2 * sum(d.max_replicas + 2 for d in scenario.deployments.values()))
        self.nt, self.stores, self.rows, self.first = layout.lay_out(scenario, seed, slots, arrivals, users)
        self.nt.P[loop.P_MORE_ARRIVALS] = self.arrivals is not None and self.arrivals.more
        self.st = loop.make_state(self.nt)
        self.slots = 0
        self.procs = 0
        self.pods_by_slot: dict = {}
        self.probes: dict = {}
        self.next_probe = 0
        self.books = Books(scenario, model, self.stores, self)
        self.consumers = [model.runtimes[n] for n, d in scenario.deployments.items() if d.consumes]
        for runtime in model.runtimes.values():
            runtime.pod_factory = lambda env, rt, index, name, spec: FastPod(env, rt, index, name, spec, self)
        self.runtime.endpoints_changed = self._endpoints_changed
        for runtime in self.consumers:
            runtime.endpoints_changed = self._pollers_changed
        if model.events is not None:
            model.events.datastores = LoopStores(self, self.stores)  # slowdowns and outages reach the loop
        self.env.before_step = self.bring
        model.monitor.before_sample.append(self.flush)
        ds_sample, jobs_sample = getattr(model.datastores, "sample", None), getattr(model.jobs, "sample", None)
        model.monitor.extra = [self.books.sample_datastores if f == ds_sample else
                               self.books.sample_jobs if f == jobs_sample else f for f in model.monitor.extra]

    # ---- the run -------------------------------------------------------------------------------
    def start(self) -> None:
        """The general engine's start (engine/des/run.start_model) with the loop as the data plane:
        the pods, the loop's first arrivals or users, the monitor, the control loops."""
        model, env = self.model, self.env
        for name, runtime in model.runtimes.items():
            runtime.start(model.scenario.deployments[name].replicas)
        loop.start(self.st, self.first.initial, self.first.change_t, self.first.change_d)
        env.process(model.monitor.run())
        env.process(self._warmup())
        if model.metrics_server is not None:
            env.process(model.metrics_server.run())
            for controller in model.hpa.values():
                env.process(controller.run())
        if model.events is not None:
            model.events.start()

    def _warmup(self):
        """From the warm-up's end the datastores count for the summary (a control-plane event, so
        the loop is there when it is taken)."""
        warmup = float(self.scenario.warmup)
        if warmup > 0:
            yield self.env.timeout(warmup)
        self.books.measure(self.nt, warmup)

    def finish(self) -> None:
        """Play the loop up to the horizon (the clock stops before it) and hand over its answers."""
        horizon = float(self.scenario.duration)
        while self._advance(horizon) == loop.NOTES:
            for when, fn, arg in self._take_notes():
                self.env._now = when
                fn(arg)
        self.env._now = horizon
        self.flush()

    def bring(self, t: float) -> None:
        """Play the data plane up to `t` (``Clock.before_step``); notes for the control plane are
        scheduled at their instants, before anything at `t`."""
        if self._advance(t) == loop.NOTES:
            now = self.env.now
            for when, fn, arg in self._take_notes():
                self.env.later(when - now if when > now else 0.0, fn, arg)

    def _advance(self, until: float) -> int:
        while True:
            code = loop.advance(self.st, until)
            if code in (loop.DONE, loop.NOTES):
                return code
            self.flush_buffers()
            if code == loop.REFILL:
                tables.refill(self.nt, self.rows)
                if self.nt.G[loop.G_NEED_ARRIVALS]:
                    self._next_arrivals()
            else:
                self.nt = tables.grow(self.nt)
                self.st = loop.make_state(self.nt)

    def _next_arrivals(self) -> None:
        nt = self.nt
        t = self.arrivals.next()
        if len(t) > len(nt.arrivals):
            self.nt = nt = nt._replace(arrivals=np.empty(len(t)))
            self.st = loop.make_state(nt)
        nt.arrivals[: len(t)] = t
        nt.P[loop.P_NARRIVALS] = len(t)
        nt.P[loop.P_MORE_ARRIVALS] = self.arrivals.more
        loop.next_arrivals(self.st)

    def _take_notes(self) -> list:
        G = self.nt.G
        n = int(G[loop.G_NOTES])
        notes = []
        for j in range(n):
            kind, value, when = int(self.nt.note_kind[j]), int(self.nt.note_value[j]), float(self.nt.note_time[j])
            if kind == loop.NOTE_PROBE:
                notes.append((when, self._probe_answered, value))
            else:
                notes.append((when, self._oom_killed, value))
        G[loop.G_NOTES] = 0
        return notes

    # ---- containers --------------------------------------------------------------------------------
    def new_slot(self, pod: FastPod, now: float) -> int:
        """A slot of the loop's arrays for a container of `pod` starting now, with its processes."""
        spec = pod.spec
        if self.slots == len(self.nt.pod_killed):
            self.nt = tables.grow_slots(self.nt)
            self.st = loop.make_state(self.nt)
        while self.procs + spec.processes > len(self.nt.pr_pod):
            self.nt = tables.grow_procs(self.nt)
            self.st = loop.make_state(self.nt)
        slot, first = self.slots, self.procs
        self.slots += 1
        self.procs += spec.processes
        limit = int(spec.resources.limits.memory) if spec.resources.limits.memory is not None else _NO_LIMIT
        tables.add_slot(self.nt, slot, first, now, spec, limit, pod.index)
        self.pods_by_slot[slot] = pod
        return slot

    def slot_procs(self, slot: int) -> range:
        first = int(self.nt.sl_first[slot])
        return range(first, first + int(self.nt.sl_nprocs[slot]))

    def slot_usage(self, slot: int, now: float) -> float:
        """Core-seconds the slot's processes have run up to `now` (the loop is at `now`)."""
        nt = self.nt
        first = int(nt.sl_first[slot])
        rows = slice(first, first + int(nt.sl_nprocs[slot]))
        used = nt.pr_used[rows]
        busy = nt.pr_n[rows] > 0
        return float((used + np.where(busy, now - nt.pr_tlast[rows], 0.0)).sum())

    def kill(self, pod: FastPod, reason: str, now: float) -> None:
        """The control plane killed `pod`'s container: the loop fails what it held."""
        loop.kill_slot(self.st, now, pod.slot, REASON_CODE[reason] if reason else REASON_CODE["pod_terminated"])

    def set_refusing(self, slot: int, refusing: bool) -> None:
        """The pod of `slot` refuses what it is sent (its node is lost: 502 node_lost), or serves again."""
        self.nt.pod_refuse[slot] = REASON_CODE["node_lost"] if refusing else 0

    def slot_moved(self, pod: FastPod) -> None:
        """`pod` has a new container slot: where the balancer and the job queue point at it, point at the
        new one; a refusing pod's new slot refuses too."""
        if pod.refuse is not None:
            self.set_refusing(pod.slot, True)
        if pod.serving and pod.runtime is self.runtime:
            self._endpoints_changed()
        if pod.runtime in self.consumers:
            self._pollers_changed()

    def container_down(self, pod: FastPod) -> None:
        """`pod`'s container stopped: the job queue stops dispatching to it at once (its endpoint may
        stay until the node's pods are marked unready)."""
        if pod.runtime in self.consumers and pod.slot >= 0:
            self._pollers_changed()

    def _oom_killed(self, slot: int) -> None:
        """The loop OOMKilled a container at admission: the deployment does the rest, now."""
        pod = self.pods_by_slot[slot]
        if pod.slot == slot:
            pod.runtime.container_died(pod, "oom_killed")

    def _endpoints_changed(self) -> None:
        eps = self.runtime.endpoints
        self.nt.endpoints[: len(eps)] = [p.slot for p in eps]
        self.nt.G[loop.G_NEP] = len(eps)

    def _pollers_changed(self) -> None:
        """The job queue's pollers: the consuming deployments' endpoints with their container up."""
        pods = [p for rt in self.consumers for p in rt.endpoints if p.container_up and not p.deleting]
        self.nt.pollers[: len(pods)] = [p.slot for p in pods]
        self.nt.G[loop.G_NPOLL] = len(pods)
        loop.dispatch(self.st, self.env.now)

    # ---- probes --------------------------------------------------------------------------------------
    def probe(self, proc: int, flow, work: float, now: float) -> None:
        probe = self.next_probe
        self.next_probe += 1
        self.probes[probe] = flow.task.owner
        loop.probe_start(self.st, now, proc, work, probe)

    def _probe_answered(self, probe: int) -> None:
        owner = self.probes.pop(probe)
        if not owner.triggered:
            owner.succeed()

    # ---- answers -----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Before a monitor sample: the answers so far reach the log, the statistics and the ingress."""
        self.flush_buffers()
        ingress = self.model.ingress
        G = self.nt.G
        ingress.arrived = int(G[loop.G_ARRIVED])
        ingress.in_flight = int(G[loop.G_INFLIGHT])

    def flush_buffers(self) -> None:
        self.books.flush(self.nt)

    def record(self, wall_s: float) -> RunRecord:
        return self.books.record(self.nt, float(self.scenario.duration), wall_s, NAME)
