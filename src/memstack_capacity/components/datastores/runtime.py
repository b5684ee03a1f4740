"""The datastores of a run: their step handlers, their part in failures, their measurements.

The stores themselves live in :mod:`.sql` (PostgreSQL, Neo4j), :mod:`.kv` (Redis, external
APIs) and :mod:`.pools`; :class:`Datastores` holds every store of a scenario and says what
the engine must tell them (the engine's build wires these calls explicitly):

* :meth:`Datastores.routes`: the ``call`` / ``external`` handler of each store, by name.
* :meth:`Datastores.task_failed`: a task failed (any cause) — it gives back its session
  connections (``session: true``); :meth:`Datastores.task_done`: the same when it ends.
* :meth:`Datastores.procs_gone`: a container died or a pod was deleted — the pools and
  semaphores of its processes die with it, their connections closed at the server at once.
* :meth:`Datastores.begin_outage` / :meth:`Datastores.end_outage`: a ``datastore_outage``.
* :meth:`Datastores.sample` every interval, :meth:`Datastores.finish` for summary.json
  (totals after the warm-up, which :meth:`Datastores.start` schedules).
"""

from __future__ import annotations

from memstack_capacity.components.clock import call_later
from memstack_capacity.components.datastores.failure import fail_task
from memstack_capacity.components.datastores.kv import ExternalStore, RedisStore
from memstack_capacity.components.datastores.sql import SqlStore
from memstack_capacity.scenario.kinds import KINDS


class Datastores:
    """Every datastore of the scenario."""

    def __init__(self, env, scenario, executor, streams, sample_interval: float):
        self.env = env
        self.interval = float(sample_interval)
        self.stores: dict = {}
        for name, spec in scenario.datastores.items():
            if KINDS[spec.kind].pooled:
                store = SqlStore(env, name, spec, executor, fail_task)
            elif KINDS[spec.kind].is_cache:
                store = RedisStore(env, name, spec, executor, scenario, streams)
            else:
                store = ExternalStore(env, name, spec, executor, fail_task, streams)
            self.stores[name] = store
        self.sql = [s for s in self.stores.values() if KINDS[s.kind].pooled]
        self.sessions = [s for s in self.sql if s.session]
        self.pooled = [s for s in self.stores.values() if KINDS[s.kind].per_process]
        self.warmup = float(scenario.warmup)
        self.measure_from = 0.0
        self._base: dict = {}
        self._busy_prev = {name: 0.0 for name in self.stores}
        self._prev_counts: dict = {}

    def routes(self) -> dict:
        """The step handler of each store, by name (``call`` and ``external`` steps)."""
        return {name: s.handle for name, s in self.stores.items()}

    # ---- what the engine tells the stores ------------------------------------------------------------
    def task_failed(self, task) -> None:
        """After the deployment handled a failed task: its session connections go back."""
        for store in self.sessions:
            store.task_gone(task)

    def task_done(self, task) -> None:
        """Before a finished task is answered: its session connections go back."""
        for store in self.sessions:
            store.task_done(task)

    def procs_gone(self, procs) -> None:
        """The processes of a dead container or deleted pod: their pools and semaphores close."""
        for proc in procs:
            for store in self.pooled:
                store.proc_gone(proc)

    def begin_outage(self, name: str, end: float, mode: str) -> None:
        """Calls to `name` fail until `end` (``datastore_outage``)."""
        self.stores[name].down = (end, mode)

    def end_outage(self, name: str, end: float) -> None:
        """The outage that was to end at `end` is over (a later one that overlaps it goes on)."""
        store = self.stores[name]
        if store.down is not None and store.down[0] == end:
            store.down = None

    # ---- warm-up --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.warmup > 0:
            call_later(self.env, self.warmup, lambda _e: self._measure())
        else:
            self._measure()

    def _measure(self) -> None:
        """From now on, count for the summary (the warm-up is left out)."""
        now = self.env.now
        self.measure_from = now
        for name, s in self.stores.items():
            if KINDS[s.kind].pooled:
                s.waits.measuring = True
                s.peak = s.server_open
                area_use, area_wait = s.areas()
                self._base[name] = {"timeouts": s.timeouts, "refused": s.refused, "calls": s.calls,
                                    "connects": s.connects, "overflow_closed": s.overflow_closed,
                                    "busy": s.server.busy_now(), "area_use": area_use, "area_wait": area_wait}
            elif KINDS[s.kind].is_cache:
                s.lookups = s.hits = 0
                for site in s.sites.values():
                    site.lookups = site.hits = 0
                self._base[name] = {"busy": s.server.busy_now(), "ops": s.server.ops}
            else:
                self._base[name] = {"calls": s.calls, "rejected": s.rejected, "failed": s.failed}
                s.win_max = s.win_count
                s.max_in_use = max((sem.in_use for sem in s.sems.values()), default=0)

    # ---- time series ----------------------------------------------------------------------------------
    def sample(self, now: float, add) -> None:
        dt = self.interval
        for name, s in self.stores.items():
            kind = KINDS[s.kind]
            if kind.pooled:
                if s.session:
                    s.sweep_sessions()
                busy = s.server.busy_now()
                add(now, name, "connections_open", s.server_open)
                add(now, name, "connections_in_use", s.in_use())
                add(now, name, "pool_waiters", s.waiting())
                add(now, name, "pool_wait_p99_s", s.waits.interval_p99())
                add(now, name, "pool_timeouts", s.timeouts - self._prev(name, "timeouts", s.timeouts))
                add(now, name, "refused", s.refused - self._prev(name, "refused", s.refused))
                add(now, name, "utilization", (busy - self._busy_prev[name]) / (s.server.cores * dt))
                add(now, name, "queries_in_service", s.server.in_service())
                self._busy_prev[name] = busy
            elif kind.is_cache:
                busy = s.server.busy_now()
                add(now, name, "utilization", (busy - self._busy_prev[name]) / dt)
                self._busy_prev[name] = busy
                if s.w_lookups:
                    add(now, name, "hit_ratio", s.w_hits / s.w_lookups)
                s.w_lookups = s.w_hits = 0
            else:
                add(now, name, "in_flight", s.in_flight)
                add(now, name, "waiters", s.waiting())
                add(now, name, "rate_limited", s.w_rejected)
                s.w_rejected = 0

    def _prev(self, name: str, key: str, value) -> float:
        """The counter's value at the previous sample (and remember the current one)."""
        slot = self._prev_counts
        old = slot.get((name, key), 0)
        slot[(name, key)] = value
        return old

    # ---- summary --------------------------------------------------------------------------------------
    def finish(self, now: float) -> dict:
        span = max(now - self.measure_from, 1e-12)
        out: dict = {}
        for name, s in self.stores.items():
            base = self._base.get(name, {})
            if KINDS[s.kind].pooled:
                w = s.waits
                util = (s.server.busy_now() - base.get("busy", 0.0)) / (s.server.cores * span)
                area_use, area_wait = s.areas()
                entry = {
                    "kind": s.kind,
                    "connections_max": s.peak,
                    "connections_limit": s.server_limit if s.server_limit != float("inf") else None,
                    "pool_wait_s": {"mean": w.mean(), "p50": w.run_percentile(50), "p95": w.run_percentile(95),
                                    "p99": w.run_percentile(99)},
                    "connections_in_use_mean": (area_use - base.get("area_use", 0.0)) / span,
                    "pool_waiters_mean": (area_wait - base.get("area_wait", 0.0)) / span,
                    "checkouts": w.count,
                    "pool_timeouts": s.timeouts - base.get("timeouts", 0),
                    "refused": s.refused - base.get("refused", 0),
                    "utilization": {"mean": util},
                    "calls": s.calls - base.get("calls", 0),
                    "connects": s.connects - base.get("connects", 0),
                    "overflow_closed": s.overflow_closed - base.get("overflow_closed", 0),
                }
            elif KINDS[s.kind].is_cache:
                util = (s.server.busy_now() - base.get("busy", 0.0)) / span
                entry = {
                    "kind": s.kind,
                    "utilization": {"mean": util},
                    "ops": s.server.ops - base.get("ops", 0),
                    "hit_ratio": s.hits / s.lookups if s.lookups else None,
                    "hit_ratio_model": {str(site.step.key_space): site.hit_ratio for site in s.sites.values()},
                    "lookups": s.lookups,
                }
            else:
                entry = {
                    "kind": s.kind,
                    "calls": s.calls - base.get("calls", 0),
                    "rate_limited": s.rejected - base.get("rejected", 0),
                    "failed": s.failed - base.get("failed", 0),
                    "in_flight_max_per_process": s.max_in_use,
                    "accepted_max_per_window": s.win_max,
                }
            out[name] = entry
        return out
