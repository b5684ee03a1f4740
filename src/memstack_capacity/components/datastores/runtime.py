"""The datastores of a run: step handlers for ``call`` and ``external``, failures, measurements.

The stores themselves live in :mod:`.datastores_sql` (PostgreSQL, Neo4j),
:mod:`.datastores_kv` (Redis, external APIs) and :mod:`.pools`; this module wires them
to the executor, the deployments and the monitor:

* ``call`` / ``external`` handlers dispatch on the op's store name (one dict lookup).
* A datastore failure (pool timeout, refused connection, rate limit) fails the task:
  ``task.alive = False``, the deployment's ``on_task_failed(task, 500, reason)`` (the
  client's answer), then the task's slot and memory in its pod are released.
* When a container dies or a pod is deleted, the pools and semaphores of its processes
  die with it: their connections are closed at the server at once.
* A task that fails or ends gives back its session connections (``session: true``).
* Samples per datastore every interval, and totals after the warm-up for summary.json.
"""

from __future__ import annotations

from memstack_capacity.components.clock import call_later
from memstack_capacity.components.datastores.kv import ExternalStore, RedisStore
from memstack_capacity.components.datastores.sql import SqlStore
from memstack_capacity.components.flows import CALL, EXTERNAL
from memstack_capacity.components.recorder import E500


def fail_task(task, reason: int) -> None:
    """A datastore error ends the task with 500 `reason`; its pod slot is freed."""
    if not task.alive:
        return
    task.alive = False
    pod = task.pod
    pod.runtime.on_task_failed(task, E500, reason)
    if task in pod.tasks:  # the request path (ingress.fail) does not release the pod slot itself
        pod.release(task)


class Datastores:
    """Every datastore of the scenario, hooked into one built model."""

    def __init__(self, model, streams):
        self.model = model
        env = self.env = model.env
        scenario = model.scenario
        executor = model.executor
        self.stores: dict = {}
        for name, spec in scenario.datastores.items():
            if spec.kind in ("postgresql", "neo4j"):
                store = SqlStore(env, name, spec, executor, fail_task)
            elif spec.kind == "redis":
                store = RedisStore(env, name, spec, executor, scenario, streams)
            else:
                store = ExternalStore(env, name, spec, executor, fail_task, streams)
            self.stores[name] = store
        self.sql = [s for s in self.stores.values() if s.kind in ("postgresql", "neo4j")]
        self.sessions = [s for s in self.sql if s.session]
        self.pooled = [s for s in self.stores.values() if s.kind != "redis"]
        executor.routes.update({name: s.handle for name, s in self.stores.items()})
        executor.handlers[CALL] = executor.route  # routes[op[1]]: one dict lookup in the executor
        executor.handlers[EXTERNAL] = executor.route
        self.warmup = float(scenario.warmup)
        self.measure_from = 0.0
        self._base: dict = {}
        self._busy_prev = {name: 0.0 for name in self.stores}
        self._hook_runtimes()
        if self.sessions:
            self._hook_task_done()
        model.monitor.extra.append(self.sample)
        model.extensions.setdefault("finishers", {})["datastores"] = self.finish
        model.extensions.setdefault("starters", []).append(self.start)
        model.extensions["datastores"] = self

    # ---- hooks into the deployments and the executor ------------------------------------------------
    def _hook_runtimes(self) -> None:
        pooled, sessions = self.pooled, self.sessions
        for runtime in self.model.runtimes.values():
            failed = runtime.on_task_failed

            def on_task_failed(task, status, reason, _failed=failed):
                _failed(task, status, reason)
                for store in sessions:
                    store.task_gone(task)

            if sessions:
                runtime.on_task_failed = on_task_failed
            fail_tasks = runtime._fail_tasks

            def _fail_tasks(pod, reason, _fail_tasks=fail_tasks):
                procs = list(pod.procs)  # drop_all replaces them
                _fail_tasks(pod, reason)
                for proc in procs:
                    for store in pooled:
                        store.proc_gone(proc)

            runtime._fail_tasks = _fail_tasks

    def _hook_task_done(self) -> None:
        executor, sessions = self.model.executor, self.sessions
        done = executor.on_task_done

        def on_task_done(task):
            for store in sessions:
                store.task_done(task)
            done(task)

        executor.on_task_done = on_task_done

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
            if s.kind in ("postgresql", "neo4j"):
                s.waits.measuring = True
                s.peak = s.server_open
                area_use, area_wait = s.areas()
                self._base[name] = {"timeouts": s.timeouts, "refused": s.refused, "calls": s.calls,
                                    "connects": s.connects, "overflow_closed": s.overflow_closed,
                                    "busy": s.server.busy_now(), "area_use": area_use, "area_wait": area_wait}
            elif s.kind == "redis":
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
        dt = self.model.monitor.interval
        for name, s in self.stores.items():
            kind = s.kind
            if kind in ("postgresql", "neo4j"):
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
            elif kind == "redis":
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
        slot = self.__dict__.setdefault("_prev_counts", {})
        old = slot.get((name, key), 0)
        slot[(name, key)] = value
        return old

    # ---- summary --------------------------------------------------------------------------------------
    def finish(self, now: float) -> dict:
        span = max(now - self.measure_from, 1e-12)
        out: dict = {}
        for name, s in self.stores.items():
            base = self._base.get(name, {})
            if s.kind in ("postgresql", "neo4j"):
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
            elif s.kind == "redis":
                util = (s.server.busy_now() - base.get("busy", 0.0)) / span
                entry = {
                    "kind": "redis",
                    "utilization": {"mean": util},
                    "ops": s.server.ops - base.get("ops", 0),
                    "hit_ratio": s.hits / s.lookups if s.lookups else None,
                    "hit_ratio_model": {str(site.step.key_space): site.hit_ratio for site in s.sites.values()},
                    "lookups": s.lookups,
                }
            else:
                entry = {
                    "kind": "external",
                    "calls": s.calls - base.get("calls", 0),
                    "rate_limited": s.rejected - base.get("rejected", 0),
                    "failed": s.failed - base.get("failed", 0),
                    "in_flight_max_per_process": s.max_in_use,
                    "accepted_max_per_window": s.win_max,
                }
            out[name] = entry
        return out
