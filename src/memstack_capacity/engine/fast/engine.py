"""The compiled data plane's run: the loop between samples, and the run's record.

The run advances ``loop.advance`` from one monitor sample to the next (and to the warm-up's
end, where the datastores start counting for the summary), answering the loop's requests for
more random numbers or larger tables in between. At each sample it writes what
``components/monitor.py`` and the datastores' and nodes' samplers write, from the state
arrays; at the end it hands back a :class:`RunRecord` with the general engine's blocks. The
API's pods are placed by the general engine's deployment code (``engine/des`` builds the
model; the data plane replaces only its request path), so pod events, nodes and costs are
the same objects.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np

from memstack_capacity.components.datastores.stats import WaitStats
from memstack_capacity.components.recorder import OK, STATUS_LABELS
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.engine.des.build import build
from memstack_capacity.engine.des.run import PROGRESS_STEP_S
from memstack_capacity.engine.fast import layout, loop
from memstack_capacity.engine.kernel.engine import arrival_times
from memstack_capacity.engine.kernel.series import record_answers, sample_times
from memstack_capacity.engine.record import DeploymentTotals, RunRecord
from memstack_capacity.engine.rng import stream

NAME = "fast"


def eligibility(scenario) -> list[str]:
    """Why `scenario` cannot run on the compiled data plane (empty when it can): the capability table."""
    return reasons(scenario, NAME)


def run(scenario, seed: int, progress=None) -> RunRecord:
    """Simulate `scenario` with `seed` on the compiled data plane."""
    started = time.perf_counter()
    model = build(scenario, seed)
    runtime = model.runtimes["api"]
    runtime.start(scenario.api.replicas)
    if any(p.phase != "Running" for p in runtime.pods):  # the capability table said otherwise: a bug
        raise RuntimeError("fast: an initial pod was not placed")
    horizon = float(scenario.duration)
    wl = scenario.workload
    arrivals = None if wl.users is not None else arrival_times(wl.arrivals, stream(seed, "workload/arrivals"), horizon)
    nt, stores, rows, first = layout.lay_out(scenario, seed, len(runtime.pods), arrivals)
    st = loop.make_state(nt)
    loop.start(st, first.initial, first.change_t, first.change_d)
    books = _Books(scenario, model, nt, stores)

    boundaries = sorted(set(sample_times(scenario.sample_interval, horizon)) | {float(scenario.warmup), horizon})
    next_progress = PROGRESS_STEP_S
    for t in boundaries:
        if t <= 0.0:
            books.measure(nt)
            continue
        nt, st = _advance(nt, st, rows, books, t)
        loop.sync(st, t)
        books.flush(nt)
        if books.is_sample(t):
            books.sample(nt, t)
        if t == float(scenario.warmup):
            books.measure(nt)
        if progress is not None:
            while next_progress <= t:
                progress(min(next_progress, horizon), horizon)
                next_progress += PROGRESS_STEP_S
    if progress is not None and next_progress - PROGRESS_STEP_S < horizon:
        progress(horizon, horizon)
    model.env._now = horizon
    return books.record(nt, horizon, time.perf_counter() - started)


def _advance(nt, st, rows, books, until: float):
    """Play the data plane up to `until`, refilling random numbers and growing tables as asked.

    `nt` holds the arrays (Python reads them), `st` is the loop's view of the same arrays; a
    grown table is a new array, so the view is made again."""
    while True:
        code = loop.advance(st, until)
        if code == loop.DONE:
            return nt, st
        books.flush(nt)
        if code == loop.REFILL:
            layout.refill(nt, rows)
        else:
            nt = layout.grow(nt)
            st = loop.make_state(nt)


class _Books:
    """What the run writes down: answers, the monitor's samples, the datastores' figures."""

    def __init__(self, scenario, model, st, stores):
        self.scenario = scenario
        self.model = model
        self.stores = stores
        self.interval = float(scenario.sample_interval)
        self.samples = set(sample_times(self.interval, float(scenario.duration)))
        self.runtime = model.runtimes["api"]
        self.pods = list(self.runtime.pods)
        self.pod_index = np.asarray([p.index for p in self.pods], dtype=np.int64)
        self.procs = scenario.api.processes
        self.waits = {name: WaitStats() for name in stores.pooled}
        self.measure_from = 0.0
        self.base: dict = {}
        self.prev: dict = {}
        self.used_prev = np.zeros(len(self.pods))
        self.arrived_prev = 0
        self.status = [0] * len(STATUS_LABELS)
        self.latencies: list = []
        self.usage_at: dict = {}

    def is_sample(self, t: float) -> bool:
        return t in self.samples

    # ---- answers and waits, handed over at every return of the loop -------------------------------
    def flush(self, st) -> None:
        G = st.G
        n = int(G[loop.G_NANS])
        if n:
            ans = SimpleNamespace(cls=st.a_cls[:n].copy(), t0=st.a_t0[:n].copy(), t_end=st.a_end[:n].copy(),
                                  status=st.a_status[:n].copy(), reason=st.a_reason[:n].copy(),
                                  pod=np.where(st.a_pod[:n] >= 0, self.pod_index[np.maximum(st.a_pod[:n], 0)], -1))
            record_answers(self.model, ans)
            counts = np.bincount(ans.status, minlength=len(STATUS_LABELS))
            for code, v in enumerate(counts.tolist()):
                self.status[code] += v
            ok = ans.status == OK
            if ok.any():
                self.latencies.append(ans.t_end[ok] - ans.t0[ok])
            G[loop.G_NANS] = 0
        m = int(G[loop.G_NWAIT])
        for s, name in enumerate(self.stores.pooled):
            positive = st.w_val[:m][st.w_store[:m] == s] if m else np.empty(0)
            self.waits[name].add_many(int(st.st_wzeros[s]), positive)
            st.st_wzeros[s] = 0
        G[loop.G_NWAIT] = 0

    # ---- the warm-up's end: the datastores count for the summary from here (Datastores._measure) --
    def measure(self, st) -> None:
        self.measure_from = float(self.scenario.warmup)
        for s, name in enumerate(self.stores.pooled):
            self.waits[name].measuring = True
            st.st_peak[s] = st.st_server_open[s]
            self.base[name] = {"timeouts": int(st.st_timeouts[s]), "refused": int(st.st_refused[s]),
                               "calls": int(st.st_calls[s]), "connects": int(st.st_connects[s]),
                               "overflow_closed": int(st.st_overflow_closed[s]), "busy": float(st.sv_busy[s]),
                               "area_use": float(st.st_area_use[s]), "area_wait": float(st.st_area_wait[s])}
        n_procs = len(st.pr_pod)
        for x, name in enumerate(self.stores.external):
            self.base[name] = {"calls": int(st.ex_calls[x]), "rejected": int(st.ex_rejected[x]),
                               "failed": int(st.ex_failed[x])}
            st.ex_win_max[x] = st.ex_win_count[x]
            st.ex_max_in_use[x] = int(st.sm_inuse[x * n_procs:(x + 1) * n_procs].max(initial=0))

    # ---- a monitor sample (components/monitor.py, then the datastores' and the nodes' samplers) ----
    def sample(self, st, now: float) -> None:
        add = self.model.recorder.samples.add
        self._deployment(st, now, add)
        self._ingress(st, now, add)
        self._datastores(st, now, add)
        node_sampler = self.model.node_sampler
        if node_sampler is not None:
            usage = self.usage_at
            node_sampler.usage = lambda pod: usage[pod]
            node_sampler.sample(now, add)

    def _deployment(self, st, now: float, add) -> None:
        sc, rt = self.scenario, self.runtime
        api = sc.api
        used = st.pr_used.reshape(len(self.pods), self.procs).sum(axis=1)
        self.usage_at = dict(zip(self.pods, used.tolist()))
        cores = float((used - self.used_prev).sum()) / self.interval
        self.used_prev = used
        req_cpu = sum(p.cpu_request for p in self.pods) or float("nan")
        req_mem = sum(p.mem_request for p in self.pods) or float("nan")
        mem = int(st.pod_mem.sum())
        limit = api.resources.limits.memory
        frac = float(st.pod_mem.max()) / limit if limit is not None else 0.0
        add(now, "api", "replicas_desired", rt.spec_replicas)
        add(now, "api", "pods", len(self.pods))
        add(now, "api", "pods_ready", rt.ready_count())
        add(now, "api", "pods_pending", 0)
        add(now, "api", "cpu_cores", cores)
        add(now, "api", "cpu_utilization", cores / req_cpu)
        add(now, "api", "memory_bytes", mem)
        add(now, "api", "memory_utilization", mem / req_mem)
        add(now, "api", "memory_limit_fraction_max", frac)
        add(now, "api", "in_flight", int(st.pod_inflight.sum()))
        add(now, "api", "backlog", int(st.pod_blen.sum()))
        add(now, "api", "throttled_fraction", 0.0)  # the capability table admits no binding CPU limit
        add(now, "api", "throttled_s", 0.0)
        add(now, "api", "cfs_periods", 0)
        add(now, "api", "cfs_throttled_periods", 0)
        add(now, "api", "throttled_periods_fraction", 0.0)

    def _ingress(self, st, now: float, add) -> None:
        dt = self.interval
        arrived = int(st.G[loop.G_ARRIVED])
        add(now, "ingress", "arrivals_rps", (arrived - self.arrived_prev) / dt)
        self.arrived_prev = arrived
        counts, self.status = self.status, [0] * len(STATUS_LABELS)
        ok = counts[OK]
        add(now, "ingress", "throughput_rps", ok / dt)
        for code, label in enumerate(STATUS_LABELS[1:], start=1):
            add(now, "ingress", f"errors_{label}_rps", counts[code] / dt)
        answered = sum(counts)
        add(now, "ingress", "error_rate", (answered - ok) / answered if answered else 0.0)
        add(now, "ingress", "in_flight", int(st.G[loop.G_INFLIGHT]))
        if self.latencies:
            arr = np.concatenate(self.latencies)
            self.latencies = []
            p50, p95, p99 = np.percentile(arr, [50, 95, 99])
            add(now, "ingress", "latency_mean_s", float(arr.mean()))
            add(now, "ingress", "latency_p50_s", p50)
            add(now, "ingress", "latency_p95_s", p95)
            add(now, "ingress", "latency_p99_s", p99)

    def _datastores(self, st, now: float, add) -> None:
        dt = self.interval
        n_procs = len(st.pr_pod)
        for name in self.scenario.datastores:
            if name in self.stores.pooled:
                s = self.stores.pooled.index(name)
                pools = slice(s * n_procs, (s + 1) * n_procs)
                busy = float(st.sv_busy[s])
                add(now, name, "connections_open", int(st.st_server_open[s]))
                add(now, name, "connections_in_use", int(st.pl_inuse[pools].sum()))
                add(now, name, "pool_waiters", int(st.pl_wait_len[pools].sum()))
                add(now, name, "pool_wait_p99_s", self.waits[name].interval_p99())
                add(now, name, "pool_timeouts", int(st.st_timeouts[s]) - self._prev(name, "timeouts", int(st.st_timeouts[s])))
                add(now, name, "refused", int(st.st_refused[s]) - self._prev(name, "refused", int(st.st_refused[s])))
                add(now, name, "utilization", (busy - self._prev(name, "busy", busy)) / (st.sv_cores[s] * dt))
                add(now, name, "queries_in_service", int(st.sv_n[s]))
            else:
                x = self.stores.external.index(name)
                add(now, name, "in_flight", int(st.ex_in_flight[x]))
                add(now, name, "waiters", int(st.sm_wait_len[x * n_procs:(x + 1) * n_procs].sum()))
                add(now, name, "rate_limited", int(st.ex_wrejected[x]))
                st.ex_wrejected[x] = 0

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
            request_stats=model.ingress.stats, jobs=None, datastores=self._datastores_block(st, now),
            nodes_requested_at=[], wall_s=wall_s,
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
                out[name] = {
                    "kind": spec.kind,
                    "connections_max": int(st.st_peak[s]),
                    "connections_limit": limit if limit < layout._UNLIMITED else None,
                    "pool_wait_s": {"mean": w.mean(), "p50": w.run_percentile(50), "p95": w.run_percentile(95),
                                    "p99": w.run_percentile(99)},
                    "connections_in_use_mean": (float(st.st_area_use[s]) - base.get("area_use", 0.0)) / span,
                    "pool_waiters_mean": (float(st.st_area_wait[s]) - base.get("area_wait", 0.0)) / span,
                    "checkouts": w.count,
                    "pool_timeouts": int(st.st_timeouts[s]) - base.get("timeouts", 0),
                    "refused": int(st.st_refused[s]) - base.get("refused", 0),
                    "utilization": {"mean": (float(st.sv_busy[s]) - base.get("busy", 0.0)) / (float(st.sv_cores[s]) * span)},
                    "calls": int(st.st_calls[s]) - base.get("calls", 0),
                    "connects": int(st.st_connects[s]) - base.get("connects", 0),
                    "overflow_closed": int(st.st_overflow_closed[s]) - base.get("overflow_closed", 0),
                }
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
