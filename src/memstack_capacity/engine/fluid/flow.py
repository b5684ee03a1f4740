"""The fluid mode's static part: request and job classes compiled to demands, and the
queueing formulas the time-stepped model evaluates at each step (docs/fluid.md).

A class's steps become a small expression tree of tuples:

* ``("cpu", D, V)``: core-seconds of Python work, mean and variance (repeats are independent
  draws, so both are multiplied out);
* ``("call", store, t, n)``: ``n`` PostgreSQL/Neo4j calls of mean server time ``t``;
* ``("cache", store, n, site, miss)``: ``n`` Redis commands, ``miss`` run on a miss;
* ``("ext", name, n)``: ``n`` calls to an external API;
* ``("par", branches, ratio)``: branches awaited together; ``ratio`` is E[max]/max(E) at no load;
* ``("enq", job, n)``: ``n`` jobs enqueued.

Pure functions over plain numbers; no simpy, no pandas.
"""

from __future__ import annotations

import math

import numpy as np

from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.workload import (
    CallStep, CpuStep, EnqueueStep, ExternalStep, ParallelStep, RepeatStep,
)
from memstack_capacity.theory.queueing import che_characteristic_time, erlang_c, zipf_popularity


# ---- compiling steps ------------------------------------------------------------------------------
def compile_steps(steps, stores: dict) -> list:
    """The expression list of a class's steps (see the module docstring)."""
    out: list = []
    for step in steps:
        r = step.repeat
        if isinstance(step, CpuStep):
            out.append(("cpu", r * step.cpu.expected(), r * step.cpu.variance()))
        elif isinstance(step, CallStep):
            spec = stores[step.call]
            if KINDS[spec.kind].is_cache:
                miss = compile_steps(step.miss, stores) if step.miss else []
                cacheable = step.key_space is not None and not step.write
                out.append(("cache", step.call, r, (step.key_space, step.key_alpha or 0.0) if cacheable else None, miss))
            else:
                t = step.time.expected() if step.time is not None else 0.0
                out.append(("call", step.call, t, r))
        elif isinstance(step, ExternalStep):
            out.append(("ext", step.external, r))
        elif isinstance(step, EnqueueStep):
            out.append(("enq", step.enqueue, r))
        elif isinstance(step, RepeatStep):
            out.extend(compile_steps(step.steps, stores) * r)
        elif isinstance(step, ParallelStep):
            branches = [compile_steps([s], stores) for s in step.parallel]
            node = ("par", branches, parallel_ratio(step.parallel, stores))
            out.extend([node] * r)
    return out


def _branch_dists(steps, stores) -> list:
    """(mean, cv) of each branch's duration at no load, for the E[max] ratio."""
    out = []
    for s in steps:
        if isinstance(s, CallStep) and s.time is not None:
            d = s.time
        elif isinstance(s, CpuStep):
            d = s.cpu
        elif isinstance(s, ExternalStep):
            d = stores[s.external].latency
        else:
            out.append(None)
            continue
        m = d.expected() * s.repeat
        cv = math.sqrt(d.scv() / s.repeat) if m > 0 else 0.0
        out.append((m, cv))
    return out


def parallel_ratio(steps, stores) -> float:
    """E[max of the branches] / max of their means, branches taken as independent lognormals."""
    dists = [d for d in _branch_dists(steps, stores) if d is not None and d[0] > 0]
    if len(dists) < 2:
        return 1.0
    top = max(m for m, _ in dists)
    t = np.linspace(0.0, 30.0 * top, 6001)
    cdf = np.ones_like(t)
    for m, cv in dists:
        if cv <= 0:
            cdf *= (t >= m)
            continue
        s2 = math.log1p(cv * cv)
        mu, sig = math.log(m) - s2 / 2.0, math.sqrt(s2)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(t, 1e-300)) - mu) / (sig * math.sqrt(2.0))
        cdf *= 0.5 * (1.0 + _erf(z))
    emax = float(np.trapezoid(1.0 - cdf, t))
    return max(1.0, emax / top)


def _erf(z: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[float])(z)


# ---- demands: linear totals per request ------------------------------------------------------------
class Demand:
    """What one request (or job) asks of each resource, on average."""

    __slots__ = ("cpu", "calls", "server", "cache_ops", "ext", "enq", "stores_used")

    def __init__(self):
        self.cpu = 0.0
        self.calls: dict = {}  # store -> calls per request
        self.server: dict = {}  # store -> server seconds per request
        self.cache_ops: dict = {}
        self.ext: dict = {}
        self.enq: dict = {}
        self.stores_used: set = set()


def accumulate(expr: list, hit: dict, weight: float = 1.0, acc: Demand | None = None) -> Demand:
    """Sum the demands of an expression list, miss paths weighted by the miss ratio."""
    acc = acc if acc is not None else Demand()
    for node in expr:
        kind = node[0]
        if kind == "cpu":
            acc.cpu += weight * node[1]
        elif kind == "call":
            _, store, t, n = node
            acc.calls[store] = acc.calls.get(store, 0.0) + weight * n
            acc.server[store] = acc.server.get(store, 0.0) + weight * n * t
            acc.stores_used.add(store)
        elif kind == "cache":
            _, store, n, site, miss = node
            acc.cache_ops[store] = acc.cache_ops.get(store, 0.0) + weight * n
            if miss:
                accumulate(miss, hit, weight * n * (1.0 - hit.get(site, 1.0)), acc)
        elif kind == "ext":
            acc.ext[node[1]] = acc.ext.get(node[1], 0.0) + weight * node[2]
        elif kind == "enq":
            acc.enq[node[1]] = acc.enq.get(node[1], 0.0) + weight * node[2]
        elif kind == "par":
            for branch in node[1]:
                accumulate(branch, hit, weight, acc)
    return acc


def latency(expr: list, ctx: dict, hit: dict) -> float:
    """Mean time through an expression list given the per-resource times in `ctx`.

    ctx: ``cpu`` (seconds per core-second of demand), ``call`` {store: (fixed, stretch)},
    ``cache`` {store: seconds per command}, ``ext`` {name: seconds per call}.
    """
    total = 0.0
    for node in expr:
        kind = node[0]
        if kind == "cpu":
            total += node[1] * ctx["cpu"]
        elif kind == "call":
            fixed, stretch = ctx["call"][node[1]]
            total += node[3] * (fixed + node[2] * stretch)
        elif kind == "cache":
            _, store, n, site, miss = node
            total += n * ctx["cache"][store]
            if miss:
                total += n * (1.0 - hit.get(site, 1.0)) * latency(miss, ctx, hit)
        elif kind == "ext":
            total += node[2] * ctx["ext"][node[1]]
        elif kind == "par":
            total += node[2] * max(latency(b, ctx, hit) for b in node[1])
    return total


def cpu_moments(expr: list, hit: dict) -> tuple[float, float]:
    """(mean, variance) of one request's CPU demand in core-seconds.

    Steps are independent draws; a Redis command runs its miss path with probability
    ``q = 1 − hit``, so each command adds a Bernoulli mixture: mean ``q·m``, variance
    ``q·(v + m²) − (q·m)²``; parallel branches all run, so their demands add.
    """
    mean = var = 0.0
    for node in expr:
        kind = node[0]
        if kind == "cpu":
            mean += node[1]
            var += node[2]
        elif kind == "cache" and node[4]:
            n, q = node[2], 1.0 - hit.get(node[3], 1.0)
            m, v = cpu_moments(node[4], hit)
            mean += n * q * m
            var += n * (q * (v + m * m) - (q * m) ** 2)
        elif kind == "par":
            for branch in node[1]:
                m, v = cpu_moments(branch, hit)
                mean += m
                var += v
    return mean, var


def redis_hit_ratios(classes_expr: list, weights: list, stores: dict) -> dict:
    """Hit ratio per cacheable Redis site (key_space, alpha), by Che's approximation (allkeys-lru)
    or the most popular keys kept (noeviction), one cache per store shared by its sites."""
    shares: dict = {}

    def walk(expr, w):
        for node in expr:
            if node[0] == "cache" and node[3] is not None:
                key = (node[1], node[3])
                shares[key] = shares.get(key, 0.0) + w * node[2]
            elif node[0] == "par":
                for b in node[1]:
                    walk(b, w)

    for expr, w in zip(classes_expr, weights):
        walk(expr, w)
    hit: dict = {}
    for store in {k[0] for k in shares}:
        spec = stores[store]
        sites = [(k[1], s) for k, s in shares.items() if k[0] == store]
        if spec.maxmemory is None:
            hit.update({site: 1.0 for site, _ in sites})
            continue
        capacity = spec.maxmemory / spec.value_size
        total = sum(s for _, s in sites) or 1.0
        pops = [zipf_popularity(n, a) for (n, a), _ in sites]
        parts = [p * (s / total) for p, (_, s) in zip(pops, sites)]
        p_all = np.concatenate(parts)
        if capacity >= p_all.size:
            hit.update({site: 1.0 for site, _ in sites})
        elif spec.maxmemory_policy == "noeviction":
            kept = np.zeros(p_all.size, dtype=bool)
            kept[np.argsort(-p_all, kind="stable")[: int(capacity)]] = True
            start = 0
            for (site, _), p in zip(sites, pops):
                hit[site] = float(p[kept[start:start + p.size]].sum())
                start += p.size
        else:
            t_c = che_characteristic_time(p_all, capacity)
            for (site, _), p, part in zip(sites, pops, parts):
                hit[site] = 1.0 if math.isinf(t_c) else float(p @ -np.expm1(-part * t_c))
    return hit


# ---- queueing formulas -------------------------------------------------------------------------------
def pod_chain(lam: float, demand: float, processes: int, cores: float) -> tuple[float, float]:
    """(mean number in pod, mean response) of the pod's CPU birth–death chain
    r(n) = min(min(n, p), L)·μ (theory.limited_processor_sharing without a bound), in closed form.
    Exact for p = 1 (M/M/1 PS) and concurrency 1 with L >= p (M/M/p). Requires ρ < 1."""
    if lam <= 0 or demand <= 0:
        return 0.0, demand
    mu = 1.0 / demand
    top = min(processes, cores) * mu
    rho = lam / top
    prob, total, mean = 1.0, 1.0, 0.0
    for n in range(1, processes + 1):
        prob *= lam / (min(n, cores) * mu)
        total += prob
        mean += n * prob
    g = rho / (1.0 - rho)
    total += prob * g
    mean += prob * (processes * g + rho / (1.0 - rho) ** 2)
    n_mean = mean / total
    return n_mean, n_mean / lam


def chain_moments(lam: float, demand: float, processes: int, cores: float) -> tuple[float, float]:
    """(mean, variance) of the number in the birth–death chain of :func:`pod_chain`.

    Finite part ``π_n`` up to ``p``, then the geometric tail ``π_{p+j} = π_p ρ^j``, whose
    moments are ``Σ_{j≥1} (p + j) ρ^j = p·g + ρ/(1 − ρ)²`` and
    ``Σ_{j≥1} (p + j)² ρ^j = p²·g + 2p·ρ/(1 − ρ)² + ρ(1 + ρ)/(1 − ρ)³`` with ``g = ρ/(1 − ρ)``.
    For M/M/1-PS (p = 1) the number in system is geometric: mean ``ρ/(1 − ρ)``, variance
    ``ρ/(1 − ρ)²``. Requires ρ < 1.
    """
    if lam <= 0 or demand <= 0:
        return 0.0, 0.0
    mu = 1.0 / demand
    rho = lam / (min(processes, cores) * mu)
    prob, total, m1, m2 = 1.0, 1.0, 0.0, 0.0
    for n in range(1, processes + 1):
        prob *= lam / (min(n, cores) * mu)
        total += prob
        m1 += n * prob
        m2 += n * n * prob
    p, g, h = processes, rho / (1.0 - rho), rho / (1.0 - rho) ** 2
    total += prob * g
    m1 += prob * (p * g + h)
    m2 += prob * (p * p * g + 2 * p * h + rho * (1.0 + rho) / (1.0 - rho) ** 3)
    mean = m1 / total
    return mean, max(0.0, m2 / total - mean * mean)


def erlang_wait(servers: int, lam: float, hold: float) -> tuple[float, float]:
    """(P(wait), mean wait) of M/M/c with `servers` servers each held `hold` seconds; 0 far from full."""
    if lam <= 0 or hold <= 0:
        return 0.0, 0.0
    load = lam * hold
    if load < 0.5 * servers - 4.0 * math.sqrt(servers) or load < 0.05 * servers:
        return 0.0, 0.0
    if load >= servers:
        return 1.0, math.inf
    c = erlang_c(servers, load)
    return c, c * hold / (servers - load)


def mmc_response_quantile(q: float, lam: float, mu: float, servers: int) -> float:
    """Quantile of the FCFS M/M/c response time T = S + W (S ~ Exp(μ), W = 0 or Exp(cμ − λ))."""
    pw = erlang_c(servers, lam / mu)
    theta = servers * mu - lam

    def tail(t: float) -> float:
        se = math.exp(-mu * t)
        if abs(theta - mu) < 1e-12 * mu:
            conv = (1.0 + mu * t) * se
        else:
            conv = (theta * se - mu * math.exp(-theta * t)) / (theta - mu)
        return (1.0 - pw) * se + pw * conv

    lo, hi = 0.0, 1.0 / min(mu, theta)
    while tail(hi) > 1.0 - q:
        hi *= 2.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if tail(mid) > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
