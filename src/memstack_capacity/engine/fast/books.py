"""What the compiled data plane's run writes down besides the control plane's own records.

The answers and the jobs' rows reach the recorder's logs, the streaming statistics and the
ingress's interval counters in bulk (at each monitor sample and whenever the loop returns);
the datastores' and the job queue's series are written from the loop's counters, as
components/datastores/runtime.py ``Datastores.sample`` and components/workers.py
``WorkerTier.sample`` write theirs; the run's record carries their summary blocks.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from memstack_capacity.components.datastores.stats import WaitStats
from memstack_capacity.components.recorder import OK, STATUS_LABELS
from memstack_capacity.components.queue_figures import QueueCounts, jobs_summary, sample_queue
from memstack_capacity.engine.fast import layout, loop
from memstack_capacity.engine.kernel.series import append_rows, record_answers
from memstack_capacity.engine.record import DeploymentTotals, RunRecord

class Books:
    """The run's answers, jobs and datastores, from the loop's arrays (see the module docstring)."""

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
    def record(self, st, now: float, wall_s: float, engine: str) -> RunRecord:
        model = self.model
        totals = {}
        for name, runtime in model.runtimes.items():
            runtime.close(now)
            totals[name] = DeploymentTotals(runtime.pod_seconds, runtime.oom_kills, runtime.restarts,
                                            runtime.cpu_request_seconds, runtime.memory_request_seconds)
        return RunRecord(
            scenario=self.scenario, seed=model.seed, engine=engine, recorder=model.recorder,
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
                    "connections_limit": limit if limit < layout.UNLIMITED else None,
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
