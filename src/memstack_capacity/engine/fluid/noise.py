"""The noise in what the HPA sees (docs/fluid.md, "Metric noise").

The fluid model's tiers give means; metrics-server reports one realisation. A pod's working
set is ``memory_base + Σ in-pod requests' memory`` at the scrape instant, and its CPU is the
counter difference over the scrape window ``W``; near the HPA's tolerance edge the
fluctuations of both decide whether it scales. At every scrape the fluid mode draws, per
deployment, the deviation of the serving pods' summed metric from its mean, from a normal
with the variance below, and gives each serving pod its share (one draw for the deployment:
the HPA reads the sum over pods, which is what the variance is for).

**Memory.** With ``K`` requests in the pods, each of class ``c`` with probability ``π_c``
(the in-pod mix, :func:`in_pod_mix`) and memory ``m_c``, the in-flight memory is a random
sum, ``Var(M) = Var(K)·m̄² + E[K]·σ_m²`` (``m̄``, ``σ_m²`` the mean and variance of ``m`` over
``π``). ``Var(K)`` is that of a product-form (BCMP) network, where the stations' counts are
independent: ``Var(K) = Σ_t I_t·L_t`` with ``L_t`` the mean number of requests at tier ``t``
and ``I_t`` its index of dispersion (variance / mean of its number in system):

* API CPU, per pod: the birth–death chain of :func:`fluid_flow.pod_chain`
  (:func:`fluid_flow.chain_moments`); for M/M/1-PS the count is geometric,
  ``Var = ρ/(1 − ρ)²``, ``I = 1/(1 − ρ)``;
* PostgreSQL / Neo4j servers: the same chain with ``p = L = cores``, applied to the time
  requests spend in the server (the pool wait and round trips are delays);
* Redis: M/M/1, ``I = 1/(1 − ρ)`` on the queueing part of a command's time;
* everything else (round trips, external calls, parallel-group waits): delays, the count in
  an infinite-server station is Poisson, ``I = 1``;
* closed users beyond capacity (the fluid backlog, held at the bottleneck): the chain at
  ``ρ = RHO_MAX``, ``I = 1/(1 − RHO_MAX)``.

Closed users add a constraint: ``N = K + Q_Z`` with ``Q_Z`` the thinking users, Poisson with
mean ``X·Z`` (an infinite-server station). Conditioning independent normal approximations of
``K`` and ``Q_Z`` on their sum gives ``Var(K | N) = V·XZ / (V + XZ)``. When the admission
slots are full (``processes × concurrency`` per pod) ``K`` is fixed: ``Var(K) = 0``.

**CPU.** The core-seconds a deployment's pods use in a window ``W`` are those of the requests
served in it: a compound Poisson sum, ``Var = X·W·E[D²]``, so the window's rate (summed over
pods) has ``Var = X·E[D²]/W``, with ``E[D²] = Σ_c w_c (Var D_c + D_c²)`` from the steps'
distributions (:func:`fluid_flow.cpu_moments`). Work carried across the window's ends is
neglected (``W`` is many response times). Worker pods: the same with the job rate and demand;
their running jobs are Poisson (infinite-server) unless the slots are full.

Scrapes ``W`` apart are taken as independent (the counts decorrelate within a few response
times). The draws come from one stream per deployment seeded from the run's seed
(:func:`engine.rng.stream`), so a run is deterministic for a given seed.
"""

from __future__ import annotations

import math

from memstack_capacity.engine.fluid.flow import chain_moments
from memstack_capacity.engine.fluid.tiers import RHO_MAX
from memstack_capacity.scenario.kinds import KINDS

#: Index of dispersion of a tier held at saturation (a geometric count at ρ = RHO_MAX).
I_SATURATED = 1.0 / (1.0 - RHO_MAX)


def in_pod_mix(tiers, ev: dict, x: float, backlog: float, shares: list[float] | None) -> list[float]:
    """π_c: the class mix of the requests in the pods. In flight by Little's law (``x·w_c·T_c``);
    the fluid backlog split by `shares` (its classes' shares, which sum to 1; None: as in flight)."""
    flight = [x * w * t for w, t in zip(tiers.w, ev["times"])]
    total = sum(flight)
    if backlog > 0:
        shares = shares or ([f / total for f in flight] if total > 0 else list(tiers.w))
        flight = [f + backlog * s for f, s in zip(flight, shares)]
        total += backlog
    return [f / total for f in flight] if total > 0 else list(tiers.w)


def memory_moments(mix: list[float], mem: list[float]) -> tuple[float, float]:
    """(m̄, σ_m²) of the memory of one in-pod request."""
    m1 = sum(p * m for p, m in zip(mix, mem))
    m2 = sum(p * m * m for p, m in zip(mix, mem))
    return m1, max(0.0, m2 - m1 * m1)


def api_open_variance(tiers, ev: dict, x: float, n_api: int) -> float:
    """``Σ_t I_t·L_t``: Var(K) of the requests in the API's serving pods at throughput `x`
    as an open product-form network (module docstring), before the backlog and closed users."""
    if x <= 0 or n_api <= 0:
        return 0.0
    ctx, w = ev["ctx"], tiers.w
    admit = ev.get("admit", 0.0)
    base = [t - admit for t in ev["times"]]  # the classes' latencies at ctx
    in_pods = x * sum(wc * max(t, 0.0) for wc, t in zip(w, base))
    var = queued = 0.0
    d = tiers.mean.cpu
    if d > 0:
        lam_pod = x / n_api
        lam_c = min(lam_pod * d, RHO_MAX * min(tiers.p, tiers.cores)) / d
        mean, v = chain_moments(lam_c, d, tiers.p, tiers.cores)
        occ = x * sum(wc * t for wc, t in zip(w, tiers.tier_times(ctx, ("cpu",), base)))
        var += (v / mean if mean > 0 else 1.0) * occ
        queued += occ
    for store, st in ev["stores"].items():
        spec = tiers.stores[store]
        if KINDS[spec.kind].pooled and st["calls"] > 0 and st["util"] > 0:
            work = st["util"] * spec.cores
            s_mean = work / st["calls"]
            lam_q = min(work, RHO_MAX * spec.cores) / s_mean
            mean, v = chain_moments(lam_q, s_mean, spec.cores, spec.cores)
            occ = x * sum(wc * t for wc, t in zip(w, tiers.tier_times(ctx, ("store", store), base)))
            var += (v / mean if mean > 0 else 1.0) * occ
            queued += occ
        elif KINDS[spec.kind].is_cache and st["util"] > 0 and store in ctx["cache"]:
            rho = min(st["util"], RHO_MAX)
            wait = spec.op_time / (1.0 - rho)
            share = wait / ctx["cache"][store] if ctx["cache"][store] > 0 else 0.0
            occ = share * x * sum(wc * t for wc, t in zip(w, tiers.tier_times(ctx, ("cache", store), base)))
            var += occ / (1.0 - rho)
            queued += occ
    return var + max(in_pods - queued, 0.0)  # delays: Poisson


def api_count_variance(open_var: float, backlog: float, think_load: float | None) -> float:
    """Var(K) from the open network's `open_var`: closed users (`think_load` = ``X·Z``; None for
    open arrivals, whose backlog is a deterministic fluid) add the backlog held at the saturated
    bottleneck and condition on ``K + Q_Z = N``."""
    var = open_var
    if think_load is not None:
        var += I_SATURATED * backlog
        if think_load > 0:
            var = var * think_load / (var + think_load)
    return var


def cpu_rate_variance(rate: float, second_moment: float, window: float) -> float:
    """Var of a deployment's CPU rate over a scrape window: compound Poisson, ``X·E[D²]/W``."""
    return rate * second_moment / window if window > 0 and rate > 0 else 0.0


def near_edge(mean_ratio: float, sd_ratio: float, tolerance: float, k: float = 2.0) -> bool:
    """The usage ratio's mean lies within `k` standard deviations of the tolerance band's edge."""
    if not math.isfinite(mean_ratio) or sd_ratio <= 0:
        return False
    return min(abs(mean_ratio - (1.0 + tolerance)), abs(mean_ratio - (1.0 - tolerance))) < k * sd_ratio


# ---- what metrics-server sees in the fluid model --------------------------------------------
def metric_noise(sim, name: str, dep, now: float) -> tuple[float, float]:
    """This scrape's deviation of a serving pod's working set and CPU rate from the means, for
    the fluid model `sim` (engine.fluid.FluidSim): the deployment's sums drawn from normals
    with the variances above, shared over its serving pods. Only what an HPA reads is drawn (metrics-server's view
    feeds nothing else); (0, 0) without noise or before the first step."""
    uses = sim.hpa_resources.get(name)
    if sim.noise_rng is None or not uses:
        return 0.0, 0.0
    z_mem, z_cpu = sim.noise_rng[name].standard_normal(2)
    s = sim.state
    serving = dep.counts(now)[3]
    if not s or not serving:
        return 0.0, 0.0
    window, tiers = sim.sc.cluster.metrics_resolution, sim.tiers
    var_mem = 0.0
    if name == "api":
        ev, x = s["ev"], s["x"]
        if ev is None or x <= 0:
            return 0.0, 0.0
        if "memory" in uses:
            var_mem = _api_memory_variance(sim, ev, x, s)
        var_cpu = cpu_rate_variance(x, sim.cpu_m2, window)
        cpu_mean = x * tiers.mean.cpu
    else:
        jobs = [(j, st) for j, st in s.get("workers", {}).items() if st["dep"] == name]
        var_mem = sum((st["running"] if st["backlog"] <= 0 else 0.0) * sim.job_mem[j] ** 2 for j, st in jobs)
        var_cpu = sum(cpu_rate_variance(st["done"], sim.job_cpu_m2[j], window) for j, st in jobs)
        cpu_mean = sum(st["cpu"] for _, st in jobs)
    sd_mem, sd_cpu = math.sqrt(var_mem) / serving, math.sqrt(var_cpu) / serving
    dep.noise_sd = (sd_mem, sd_cpu)
    _count_edge(sim, dep, uses, sd_mem, cpu_mean / serving, sd_cpu)
    return float(z_mem * sd_mem), float(z_cpu * sd_cpu)

def _api_memory_variance(sim, ev: dict, x: float, s: dict) -> float:
    """Var of the API's in-flight memory summed over its serving pods: Var(K)·m̄² + E[K]·σ_m²."""
    tiers = sim.tiers
    n_api, slots = s["n_api"], tiers.p * tiers.k
    per_pod = (ev["in_flight"] + sim.backlog) / max(n_api, 1)
    m1, m_var = memory_moments(in_pod_mix(tiers, ev, x, sim.backlog, s["shares"]), tiers.mem)
    var_k = 0.0
    if per_pod < slots:  # full slots: K is fixed
        cached = sim._noise_cache  # the open variance is x-proportional while the tiers' ctx is reused
        if cached is not None and cached[0] is ev["ctx"] and cached[1] == n_api:
            open_var = cached[2] * x
        else:
            open_var = api_open_variance(tiers, ev, x, n_api)
            sim._noise_cache = (ev["ctx"], n_api, open_var / x)
        var_k = api_count_variance(open_var, sim.backlog, x * sim.think if sim.closed else None)
    return var_k * m1 * m1 + min(per_pod, slots) * n_api * m_var

def _count_edge(sim, dep, uses: dict, sd_mem: float, cpu_mean: float, sd_cpu: float) -> None:
    """Count the scrapes at which a Resource metric's mean sits within 2 σ of the HPA's
    tolerance edge (its decisions there are draws: caveats_for reports them)."""
    dep.scrapes += 1
    for resource, (utilization, value) in uses.items():
        mean, sd, request = ((dep.mem_per_pod, sd_mem, dep.mem_req) if resource == "memory"
                             else (cpu_mean, sd_cpu, dep.cpu_req))
        target = utilization / 100.0 * request if utilization is not None else value
        if target > 0 and near_edge(mean / target, sd / target, sim.tolerance):
            dep.edge_scrapes += 1
            return
