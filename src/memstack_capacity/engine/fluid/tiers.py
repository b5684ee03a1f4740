"""The fluid mode's data plane at one instant: given a request throughput and the serving
pods, the per-tier times (API CPU, datastore servers and pools, Redis, external APIs,
the admission queue), the capacity and the bottleneck. Pointwise stationary: every tier
is solved as if the current rate had lasted (docs/fluid.md gives the equations).
"""

from __future__ import annotations

import math

from memstack_capacity.engine.fluid.flow import Demand, accumulate, erlang_wait, latency, pod_chain
from memstack_capacity.scenario.kinds import KINDS

#: Utilisation at which a tier counts as saturated; beyond it the fluid backlog grows.
RHO_MAX = 0.98


def _clamp(load: float, servers: float) -> float:
    return min(load, RHO_MAX * servers)


class Tiers:
    """The compiled scenario and the per-step evaluation of its tiers."""

    def __init__(self, scenario, exprs, weights, job_exprs, hit):
        self.sc = scenario
        self.stores = scenario.datastores
        self.exprs, self.hit = exprs, hit
        total = sum(weights)
        self.w = [x / total for x in weights]
        self.demand = [accumulate(e, hit) for e in exprs]
        self.mean = Demand()
        for e, w in zip(exprs, self.w):
            accumulate(e, hit, w, self.mean)
        self.mem = [float(r.memory) for r in scenario.workload.requests]
        self.job_exprs = job_exprs
        self.job_demand = {name: accumulate(e, hit) for name, e in job_exprs.items()}
        api = scenario.api
        self.p, self.k, self.cores = api.processes, api.concurrency, api.cpu_capacity
        self.session = {n for n, s in self.stores.items() if getattr(s, "session", False)}
        self.tier_of: dict = {}  # capacity's tier name -> tier key

    # ---- capacity ------------------------------------------------------------------------------
    def capacity(self, n_api: int, t_req: float, job_load: Demand, job_rate: float) -> tuple[float, str]:
        """(most requests/s the system can serve, the tier that sets it); :attr:`tier_of` maps the
        tier's name to its key for :meth:`tier_times` (``("cpu",)``, ``("store", name)``, ...)."""
        if n_api <= 0:
            return 0.0, "no serving API pods"
        d, best = self.mean, []
        if d.cpu > 0:
            best.append((n_api * min(self.p, self.cores) / d.cpu, "api cpu", ("cpu",)))
        slots = n_api * self.p * self.k
        if t_req > 0:
            best.append((slots / t_req, "api concurrency (processes x concurrency)", ("slots",)))
        for store, calls in d.calls.items():
            spec = self.stores[store]
            free = spec.cores - job_rate * job_load.server.get(store, 0.0)
            if d.server.get(store, 0.0) > 0:
                best.append((max(free, 0.0) / d.server[store], f"{store} server cores", ("store", store)))
        for store, ops in d.cache_ops.items():
            best.append((1.0 / (ops * self.stores[store].op_time), f"{store} (single thread)", ("cache", store)))
        if not best:
            return math.inf, "none"
        cap, label, key = min(best)
        self.tier_of[label] = key
        return cap, label

    # ---- one evaluation ------------------------------------------------------------------------
    def evaluate(self, x: float, n_api: int, job_load: Demand, job_rate: float, t_prev: float) -> dict:
        """Per-tier figures at request throughput `x` (req/s) over `n_api` serving pods.

        `job_load` is the worker jobs' demand per job and `job_rate` their rate (jobs/s),
        so the shared datastores see both. `t_prev` is the previous step's request time
        (for pools held for a whole request).
        """
        d, p, k = self.mean, self.p, self.k
        lam_pod = x / n_api if n_api else 0.0
        procs = max(n_api * p, 1)
        ctx = {"call": {}, "cache": {}, "ext": {}}
        out = {"stores": {}, "ext": {}, "errors": 0.0}
        # API CPU: the pod's birth–death chain (PS per process, held to limits.cpu).
        if d.cpu > 0 and lam_pod > 0:
            if k > 1:
                lam_c = _clamp(lam_pod * d.cpu, min(p, self.cores)) / d.cpu
                _, t_cpu = pod_chain(lam_c, d.cpu, p, self.cores)
                ctx["cpu"] = t_cpu / d.cpu
            else:  # one request per process: the process is the server, only the CPU limit slows it
                ctx["cpu"] = max(1.0, min(p, lam_pod * max(t_prev, d.cpu)) / self.cores)
        else:
            ctx["cpu"] = 1.0
        # PostgreSQL / Neo4j: queries processor-shared on the server's cores; pools per process.
        for store, spec in self.stores.items():
            if KINDS[spec.kind].pooled:
                calls = x * d.calls.get(store, 0.0) + job_rate * job_load.calls.get(store, 0.0)
                work = x * d.server.get(store, 0.0) + job_rate * job_load.server.get(store, 0.0)
                stretch = 1.0
                if calls > 0 and work > 0:
                    s_mean = work / calls
                    lam_q = _clamp(work, spec.cores) / s_mean
                    _, t_q = pod_chain(lam_q, s_mean, spec.cores, spec.cores)
                    stretch = t_q / s_mean
                pre = spec.round_trip if (KINDS[spec.kind].queue_pool and spec.pool.pool_pre_ping) else 0.0
                fixed = spec.round_trip + pre
                hold = fixed + (work / calls if calls else 0.0) * stretch
                if KINDS[spec.kind].queue_pool:
                    limit = math.inf if spec.pool.max_overflow < 0 else spec.pool.pool_size + spec.pool.max_overflow
                    server_limit = spec.max_connections - spec.superuser_reserved_connections
                else:
                    limit, server_limit = spec.pool.max_connection_pool_size, math.inf
                api_calls = x * d.calls.get(store, 0.0)
                if store in self.session:  # one connection per request, held for the whole request
                    rate_proc, h = x * (1.0 if api_calls else 0.0) / procs, t_prev
                else:
                    rate_proc, h = api_calls / procs, hold
                wait = 0.0
                if math.isfinite(limit) and rate_proc > 0 and h > 0:
                    _, wait = erlang_wait(int(limit), _clamp(rate_proc * h, limit) / h, h)
                in_use = calls * hold if store not in self.session else rate_proc * procs * h + job_rate * hold
                refused = max(0.0, 1.0 - server_limit / in_use) if in_use > server_limit else 0.0
                if store in self.session:
                    wait /= max(d.calls.get(store, 1.0), 1.0)  # once per request, spread over its calls
                ctx["call"][store] = (fixed + wait, stretch)
                out["stores"][store] = {"util": work / spec.cores, "in_use": in_use, "calls": calls,
                                        "wait": wait, "waiters": rate_proc * procs * wait, "refused": refused,
                                        "in_service": min(work * stretch, calls * 1e9)}
                out["errors"] += refused * min(1.0, d.calls.get(store, 0.0))
            elif KINDS[spec.kind].is_cache:
                ops = x * d.cache_ops.get(store, 0.0) + job_rate * job_load.cache_ops.get(store, 0.0)
                rho = min(ops * spec.op_time, RHO_MAX)
                ctx["cache"][store] = spec.round_trip + spec.op_time / (1.0 - rho)
                out["stores"][store] = {"util": ops * spec.op_time, "ops": ops}
            else:
                rate = x * d.ext.get(store, 0.0) + job_rate * job_load.ext.get(store, 0.0)
                lat = spec.latency.expected()
                rate_proc = x * d.ext.get(store, 0.0) / procs
                wait = 0.0
                if rate_proc > 0:
                    _, wait = erlang_wait(spec.concurrency, _clamp(rate_proc * lat, spec.concurrency) / lat, lat)
                rejected = max(0.0, 1.0 - spec.rate_limit / rate) if spec.rate_limit and rate > 0 else 0.0
                ctx["ext"][store] = lat + wait
                out["ext"][store] = {"rate": rate, "in_flight": rate * lat, "waiters": rate_proc * procs * wait,
                                     "rejected": rejected}
                calls = d.ext.get(store, 0.0)
                out["errors"] += 1.0 - (1.0 - rejected) ** calls if calls else 0.0
        times = [latency(e, ctx, self.hit) for e in self.exprs]
        t_in = sum(w * t for w, t in zip(self.w, times))
        # Admission: processes x concurrency slots per pod (an M/M/c wait when they fill).
        admit = 0.0
        if lam_pod > 0 and t_in > 0:
            slots = p * k
            _, admit = erlang_wait(slots, _clamp(lam_pod * t_in, slots) / t_in, t_in)
        out.update(ctx=ctx, times=[t + admit for t in times], t_in=t_in, admit=admit, t_mean=t_in + admit,
                   in_flight=x * t_in, backlog=x * admit, cpu_cores=x * d.cpu)
        out["errors"] = min(out["errors"], 1.0)
        return out

    def tier_times(self, ctx: dict, key: tuple, base: list[float] | None = None) -> list[float]:
        """Per class, the mean time spent at one tier: ``("cpu",)`` the API CPU,
        ``("store", s)`` the server part of the calls to `s` (its stretch), ``("cache", s)``
        the commands to `s`. The class's latency is linear in the tier's factor except
        through a parallel group's max, so ``f·∂T/∂f`` (a relative step of 1e-6) is that time.
        `base`: the classes' latencies at `ctx`, when the caller has them."""
        h = 1e-6
        c = dict(ctx)
        if key[0] == "cpu":
            c["cpu"] = ctx["cpu"] * (1.0 + h)
        elif key[0] == "store" and key[1] in ctx["call"]:
            fixed, stretch = ctx["call"][key[1]]
            c["call"] = {**ctx["call"], key[1]: (fixed, stretch * (1.0 + h))}
        elif key[0] == "cache" and key[1] in ctx["cache"]:
            c["cache"] = {**ctx["cache"], key[1]: ctx["cache"][key[1]] * (1.0 + h)}
        else:
            return [0.0] * len(self.exprs)
        if base is None:
            base = [latency(e, ctx, self.hit) for e in self.exprs]
        return [max(0.0, (latency(e, c, self.hit) - t) / h) for e, t in zip(self.exprs, base)]

    def job_time(self, name: str, ctx: dict, worker_cpu_factor: float) -> float:
        c = dict(ctx)
        c["cpu"] = worker_cpu_factor
        return latency(self.job_exprs[name], c, self.hit)
