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
from types import SimpleNamespace

import numpy as np

from memstack_capacity.components.datastores.stats import WaitStats
from memstack_capacity.components.recorder import OK, REASON_CODE, STATUS_LABELS
from memstack_capacity.components.workers import QueueCounts, jobs_summary, sample_queue
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import advance_to_horizon
from memstack_capacity.engine.fast import layout, loop
from memstack_capacity.engine.fast.pods import FastPod
from memstack_capacity.engine.kernel.engine import ArrivalBlocks
from memstack_capacity.engine.kernel.series import append_rows, record_answers
from memstack_capacity.engine.record import DeploymentTotals, RunRecord
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


def _arrival_times(scenario, points: list, seed: int) -> np.ndarray:
    """The open source's arrival times before the horizon (kernel.ArrivalBlocks, the engine's draws)."""
    horizon = float(scenario.duration)
    blocks = ArrivalBlocks(points, scenario.workload.arrivals.cv, stream(seed, "workload/arrivals"), horizon)
    parts = []
    while not blocks.done:
        parts.append(blocks.next_times())
    t = np.concatenate(parts) if parts else np.empty(0)
    return t[: int(np.searchsorted(t, horizon, side="left"))]


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
        if wl.users is not None:
            points = folded or [(float(p.at), float(p.users)) for p in wl.users.profile]
            users = [(t, int(round(v))) for t, v in points] if folded else points
            arrivals = None
        else:
            users = None
            arrivals = _arrival_times(scenario, folded or [(p.at, p.rps) for p in wl.arrivals.profile], seed)
        slots = max(8, 2 * sum(d.max_replicas + 2 for d in scenario.deployments.values()))
        self.nt, self.stores, self.rows, self.first = layout.lay_out(scenario, seed, slots, arrivals, users)
        self.st = loop.make_state(self.nt)
        self.slots = 0
        self.procs = 0
        self.pods_by_slot: dict = {}
        self.probes: dict = {}
        self.next_probe = 0
        self.books = _Books(scenario, model, self.stores, self)
        self.consumers = [model.runtimes[n] for n, d in scenario.deployments.items() if d.consumes]
        for runtime in model.runtimes.values():
            runtime.pod_factory = lambda env, rt, index, name, spec: FastPod(env, rt, index, name, spec, self)
        self.runtime.endpoints_changed = self._endpoints_changed
        for runtime in self.consumers:
            runtime.endpoints_changed = self._pollers_changed
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
                layout.refill(self.nt, self.rows)
            else:
                self.nt = layout.grow(self.nt)
                self.st = loop.make_state(self.nt)

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
            self.nt = layout.grow_slots(self.nt)
            self.st = loop.make_state(self.nt)
        while self.procs + spec.processes > len(self.nt.pr_pod):
            self.nt = layout.grow_procs(self.nt)
            self.st = loop.make_state(self.nt)
        slot, first = self.slots, self.procs
        self.slots += 1
        self.procs += spec.processes
        limit = int(spec.resources.limits.memory) if spec.resources.limits.memory is not None else _NO_LIMIT
        layout.add_slot(self.nt, slot, first, now, spec, limit, pod.index)
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
        return self.books.record(self.nt, float(self.scenario.duration), wall_s)


class _Books:
    """What the run writes down besides the control plane's own records: answers, the datastores."""

    def __init__(self, scenario, model, stores, plane):
        self.plane = plane  # its ``nt``: the loop's arrays (a new object when a table grows)
        self.scenario = scenario
        self.model = model
        self.stores = stores
        self.interval = float(scenario.sample_interval)
        self.waits = {name: WaitStats() for name in stores.pooled}
        self.job_latencies: list = []
        self.t_jobs_sample = 0.0
        self.measure_from = 0.0
        self.base: dict = {}
        self.prev: dict = {}

    def flush(self, st) -> None:
        """Answers and pool waits since the last call, from the loop's buffers."""
        G = st.G
        n = int(G[loop.G_NANS])
        if n:
            ans = SimpleNamespace(cls=st.a_cls[:n].copy(), t0=st.a_t0[:n].copy(), t_end=st.a_end[:n].copy(),
                                  status=st.a_status[:n].copy(), reason=st.a_reason[:n].copy(), pod=st.a_pod[:n].copy())
            record_answers(self.model, ans)
            ingress = self.model.ingress
            counts = np.bincount(ans.status, minlength=len(STATUS_LABELS))
            for code, v in enumerate(counts.tolist()):
                ingress.interval_status[code] += v
            ok = ans.status == OK
            if ok.any():
                ingress.window.extend((ans.t_end[ok] - ans.t0[ok]).tolist())
            G[loop.G_NANS] = 0
        k = int(G[loop.G_NJL])
        if k:
            rows = SimpleNamespace(cls=st.jl_cls[:k].copy(), t0=st.jl_t0[:k].copy(), t_end=st.jl_end[:k].copy(),
                                   status=st.jl_status[:k].copy(), reason=st.jl_reason[:k].copy(), pod=st.jl_pod[:k].copy())
            append_rows(self.model.recorder.jobs, rows)
            ok = rows.status == OK
            if ok.any():
                self.job_latencies.extend((rows.t_end[ok] - rows.t0[ok]).tolist())
            G[loop.G_NJL] = 0
        m = int(G[loop.G_NWAIT])
        for s, name in enumerate(self.stores.pooled):
            positive = st.w_val[:m][st.w_store[:m] == s] if m else np.empty(0)
            self.waits[name].add_many(int(st.st_wzeros[s]), positive)
            st.st_wzeros[s] = 0
        G[loop.G_NWAIT] = 0

    # ---- the warm-up's end: the datastores count for the summary from here (Datastores._measure) --
    def measure(self, st, at: float) -> None:
        self.flush(st)
        self.measure_from = at
        nx = int(st.P[loop.P_NEXT])
        for s, name in enumerate(self.stores.pooled):
            self.waits[name].measuring = True
            st.st_peak[s] = st.st_server_open[s]
            self.base[name] = {"timeouts": int(st.st_timeouts[s]), "refused": int(st.st_refused[s]),
                               "calls": int(st.st_calls[s]), "connects": int(st.st_connects[s]),
                               "overflow_closed": int(st.st_overflow_closed[s]), "busy": _busy_now(st, s, at),
                               "area_use": _area_now(st, s, at)[0], "area_wait": _area_now(st, s, at)[1]}
        for x, name in enumerate(self.stores.external):
            self.base[name] = {"calls": int(st.ex_calls[x]), "rejected": int(st.ex_rejected[x]),
                               "failed": int(st.ex_failed[x])}
            st.ex_win_max[x] = st.ex_win_count[x]
            st.ex_max_in_use[x] = int(st.sm_inuse[x::nx].max(initial=0))

    # ---- the datastores' samples (components/datastores/runtime.py ``Datastores.sample``) -----------
    def sample_datastores(self, now: float, add) -> None:
        st = self.plane.nt
        dt = self.interval
        npooled, nx = int(st.P[loop.P_NPOOLED]), int(st.P[loop.P_NEXT])
        for name in self.scenario.datastores:
            if name in self.stores.pooled:
                s = self.stores.pooled.index(name)
                busy = _busy_now(st, s, now)
                add(now, name, "connections_open", int(st.st_server_open[s]))
                add(now, name, "connections_in_use", int(st.pl_inuse[s::npooled].sum()))
                add(now, name, "pool_waiters", int(st.pl_wait_len[s::npooled].sum()))
                add(now, name, "pool_wait_p99_s", self.waits[name].interval_p99())
                add(now, name, "pool_timeouts", int(st.st_timeouts[s]) - self._prev(name, "timeouts", int(st.st_timeouts[s])))
                add(now, name, "refused", int(st.st_refused[s]) - self._prev(name, "refused", int(st.st_refused[s])))
                add(now, name, "utilization", (busy - self._prev(name, "busy", busy)) / (float(st.sv_cores[s]) * dt))
                add(now, name, "queries_in_service", int(st.sv_n[s]))
            elif name not in self.stores.external:  # a cache no step calls (the capability table): idle
                add(now, name, "utilization", 0.0)
            else:
                x = self.stores.external.index(name)
                add(now, name, "in_flight", int(st.ex_in_flight[x]))
                add(now, name, "waiters", int(st.sm_wait_len[x::nx].sum()))
                add(now, name, "rate_limited", int(st.ex_wrejected[x]))
                st.ex_wrejected[x] = 0

    # ---- the job queue's samples (components/workers.py ``WorkerTier.sample``) ------------------------
    def sample_jobs(self, now: float, add) -> None:
        st = self.plane.nt
        dt = now - self.t_jobs_sample
        self.t_jobs_sample = now
        name = "+".join(rt.name for rt in self.plane.consumers)
        busy = sum(p.inflight for rt in self.plane.consumers for p in rt.pods if p.phase == "Running" and p.container_up)
        sample_queue(add, now, dt, name, self.queue_counts(st), busy, self.job_latencies)
        self.job_latencies = []
        for j in (loop.JS_WIN_COMPLETED, loop.JS_WIN_FAILED, loop.JS_WIN_RETRIES):
            st.jstat[j] = 0

    @staticmethod
    def queue_counts(st) -> QueueCounts:
        J = st.jstat
        return QueueCounts(int(st.jq_len[0]), int(J[loop.JS_RUNNING]), int(J[loop.JS_WAITING_RETRY]),
                           int(J[loop.JS_STALE]), int(J[loop.JS_WIN_COMPLETED]), int(J[loop.JS_WIN_FAILED]),
                           int(J[loop.JS_WIN_RETRIES]), int(J[loop.JS_ENQUEUED]), int(J[loop.JS_COMPLETED]),
                           int(J[loop.JS_FAILED]), int(J[loop.JS_RETRIES]), int(J[loop.JS_RETRIES_COUNTED]),
                           int(J[loop.JS_CRASHES]), int(J[loop.JS_BACKLOG_MAX]))

    def _prev(self, name: str, key: str, value):
        old = self.prev.get((name, key), 0)
        self.prev[(name, key)] = value
        return old

    # ---- the record ---------------------------------------------------------------------------------
    def record(self, st, now: float, wall_s: float) -> RunRecord:
        model = self.model
        totals = {}
        for name, runtime in model.runtimes.items():
            runtime.close(now)
            totals[name] = DeploymentTotals(runtime.pod_seconds, runtime.oom_kills, runtime.restarts,
                                            runtime.cpu_request_seconds, runtime.memory_request_seconds)
        return RunRecord(
            scenario=self.scenario, seed=model.seed, engine=NAME, recorder=model.recorder,
            arrived=int(st.G[loop.G_ARRIVED]), in_flight_end=int(st.G[loop.G_INFLIGHT]), deployments=totals,
            request_stats=model.ingress.stats, datastores=self._datastores_block(st, now),
            jobs=jobs_summary(model.recorder.jobs, float(self.scenario.warmup), list(self.scenario.workload.jobs),
                              [self.queue_counts(st)]) if self.scenario.workload.jobs else None,
            nodes_requested_at=list(model.node_autoscaler.requested_at) if model.node_autoscaler is not None else [],
            wall_s=wall_s,
        )

    def _datastores_block(self, st, now: float) -> dict:
        """summary.json's ``datastores`` (components/datastores/runtime.py ``Datastores.finish``)."""
        span = max(now - self.measure_from, 1e-12)
        out: dict = {}
        for name, spec in self.scenario.datastores.items():
            base = self.base.get(name, {})
            if name in self.stores.pooled:
                s = self.stores.pooled.index(name)
                w = self.waits[name]
                limit = int(st.st_server_limit[s])
                area_use, area_wait = _area_now(st, s, now)
                out[name] = {
                    "kind": spec.kind,
                    "connections_max": int(st.st_peak[s]),
                    "connections_limit": limit if limit < layout._UNLIMITED else None,
                    "pool_wait_s": {"mean": w.mean(), "p50": w.run_percentile(50), "p95": w.run_percentile(95),
                                    "p99": w.run_percentile(99)},
                    "connections_in_use_mean": (area_use - base.get("area_use", 0.0)) / span,
                    "pool_waiters_mean": (area_wait - base.get("area_wait", 0.0)) / span,
                    "checkouts": w.count,
                    "pool_timeouts": int(st.st_timeouts[s]) - base.get("timeouts", 0),
                    "refused": int(st.st_refused[s]) - base.get("refused", 0),
                    "utilization": {"mean": (_busy_now(st, s, now) - base.get("busy", 0.0)) / (float(st.sv_cores[s]) * span)},
                    "calls": int(st.st_calls[s]) - base.get("calls", 0),
                    "connects": int(st.st_connects[s]) - base.get("connects", 0),
                    "overflow_closed": int(st.st_overflow_closed[s]) - base.get("overflow_closed", 0),
                }
            elif name not in self.stores.external:  # a cache no step calls: idle
                out[name] = {"kind": spec.kind, "utilization": {"mean": 0.0}, "ops": 0, "hit_ratio": None,
                             "hit_ratio_model": {}, "lookups": 0}
            else:
                x = self.stores.external.index(name)
                out[name] = {
                    "kind": spec.kind,
                    "calls": int(st.ex_calls[x]) - base.get("calls", 0),
                    "rate_limited": int(st.ex_rejected[x]) - base.get("rejected", 0),
                    "failed": int(st.ex_failed[x]) - base.get("failed", 0),
                    "in_flight_max_per_process": int(st.ex_max_in_use[x]),
                    "accepted_max_per_window": int(st.ex_win_max[x]),
                }
        return out


def _busy_now(st, s: int, now: float) -> float:
    """A server's core-seconds of work up to `now` (pools.PSServer.busy_now, without moving its clock)."""
    n = int(st.sv_n[s])
    busy = float(st.sv_busy[s])
    dt = now - float(st.sv_tlast[s])
    if n and dt > 0.0:
        cores, speed = float(st.sv_cores[s]), float(st.sv_speed[s])
        busy += dt * speed * (n if n <= cores else cores)
    return busy


def _area_now(st, s: int, now: float) -> tuple[float, float]:
    """∫ connections in use dt and ∫ waiting checkouts dt up to `now`."""
    dt = now - float(st.st_tarea[s])
    use, wait = float(st.st_area_use[s]), float(st.st_area_wait[s])
    if dt > 0.0:
        use += int(st.st_nuse[s]) * dt
        wait += int(st.st_nwait[s]) * dt
    return use, wait
