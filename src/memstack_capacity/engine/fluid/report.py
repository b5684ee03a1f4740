"""The fluid mode's outputs: the samples (the DES monitor's component/metric names), the
request statistics in the summary.json shape, the percentiles where a closed form exists,
and the caveats — where the fluid model cannot be trusted.
"""

from __future__ import annotations

from memstack_capacity.components.workers import MAX_TASK_QUEUE_SIZE
from memstack_capacity.engine.capabilities import node_contention
from memstack_capacity.engine.fluid.flow import mmc_response_quantile
from memstack_capacity.scenario.kinds import KINDS


class Totals:
    """Request counts and latency sums over the measured window (after the warm-up)."""

    def __init__(self, classes: list[str]):
        self.classes = classes
        self.arrived_all = self.arrived = self.ok = self.e503 = self.e504 = self.e500 = self.lat = 0.0
        self.by_class = {c: [0.0, 0.0, 0.0] for c in classes}  # ok, latency sum, failed
        self.in_flight_end = 0.0
        self.lam_pod: set = set()
        self.saturated_s = 0.0
        self.bottlenecks: dict = {}
        self.mem_over_limit_at = None
        self.max_util: dict = {}

    def add(self, warmup: float, t: float, t1: float, s: dict, tiers) -> None:
        dt = t1 - t
        self.arrived_all += s["arrivals"] * dt
        ev = s["ev"]
        self.in_flight_end = (ev["in_flight"] + ev["backlog"] if ev else 0.0) + s["delay"] * s["x"]
        f = max(0.0, t1 - max(t, warmup))
        if f <= 0:
            return
        self.arrived += s["arrivals"] * f
        self.ok += s["ok"] * f
        self.e503 += s["shed"] * f
        self.e504 += s["e504"] * f
        self.e500 += s["e500"] * f
        self.lat += s["ok"] * s["lat"] * f
        if ev is not None:
            failed = s["shed"] + s["e504"] + s["e500"]
            share = s.get("delay_f")  # each class's part of the queue delay (None: all the same)
            delays = [s["delay"]] * len(tiers.w) if share is None else [s["delay"] * fc for fc in share]
            for (name, acc), w, tm, dc in zip(self.by_class.items(), tiers.w, ev["times"], delays):
                acc[0] += w * s["ok"] * f
                acc[1] += w * s["ok"] * min(tm + dc, self_timeout(tiers)) * f
                acc[2] += w * failed * f
            self.lam_pod.add(round(s["x"] / s["n_api"], 9) if s["n_api"] else 0.0)
            for store, st in ev["stores"].items():
                self.max_util[store] = max(self.max_util.get(store, 0.0), st["util"])
        if s["delay"] > 0 or s["shed"] > 0 or (s["cap"] and s["x"] >= 0.98 * s["cap"] - 1e-9 and s["x"] > 0):
            self.saturated_s += f
            self.bottlenecks[s["bottleneck"]] = self.bottlenecks.get(s["bottleneck"], 0.0) + f


def self_timeout(tiers) -> float:
    return tiers.sc.workload.timeout


def _stats(ok: float, lat: float, failed: float, window: float, pct: dict | None) -> dict:
    answered = ok + failed
    mean = lat / ok if ok > 0 else None
    pct = pct or {}
    return {"completed": int(round(ok)), "failed": int(round(failed)),
            "throughput_rps": ok / window if window > 0 else 0.0,
            "error_rate": failed / answered if answered > 0 else 0.0,
            "latency_s": {"mean": mean, "p50": pct.get("p50"), "p95": pct.get("p95"), "p99": pct.get("p99"),
                          "max": None}}


def percentiles(sim) -> dict | None:
    """p50/p95/p99 of the response where the model has them: one tier (CPU only, exponential
    demand, one request per process, no CPU limit below the processes: M/M/c) at one load."""
    sc, tiers, tot = sim.sc, sim.tiers, sim.totals
    exprs = tiers.exprs
    single = all(len(e) == 1 and e[0][0] == "cpu" for e in exprs)
    dists = [s.cpu for r in sc.workload.requests for s in r.steps if hasattr(s, "cpu")]
    same = len({e[0][1] for e in exprs}) == 1 if single else False
    exponential = all(d.dist == "exponential" for d in dists) and all(s.repeat == 1 for r in sc.workload.requests
                                                                    for s in r.steps)
    mmc_pod = tiers.k == 1 or tiers.p == 1 and tiers.k == 1
    if not (single and same and exponential and mmc_pod and tiers.cores >= tiers.p and len(tot.lam_pod) == 1
            and tot.saturated_s == 0 and sc.workload.arrivals is not None and sc.workload.arrivals.cv == 1.0):
        return None
    lam = next(iter(tot.lam_pod))
    mu = 1.0 / exprs[0][0][1]
    if lam <= 0:
        return None
    return {f"p{q}": mmc_response_quantile(q / 100.0, lam, mu, tiers.p) for q in (50, 95, 99)}


def fluid_summary(sim) -> dict:
    sc, tot = sim.sc, sim.totals
    window = sc.duration - sc.warmup
    pct = percentiles(sim)
    failed = tot.e503 + tot.e504 + tot.e500
    req = _stats(tot.ok, tot.lat, failed, window, pct)
    req["errors"] = {k: int(round(v)) for k, v in (("503", tot.e503), ("504", tot.e504), ("500", tot.e500)) if v >= 0.5}
    req["by_class"] = {c: _stats(a[0], a[1], a[2], window, None) for c, a in tot.by_class.items()}
    req["arrived"] = int(round(tot.arrived_all))
    req["in_flight_end"] = int(round(tot.in_flight_end))
    fluid = {"mode": "fluid", "step_s": sim.dt, "percentiles": pct,
             "saturated_s": tot.saturated_s, "bottlenecks_s": dict(tot.bottlenecks)}
    out = {"summary": {"requests": req}, "fluid": fluid}
    jobs_done = sum(j["rate"] for j in sim.jobs.values())
    out["jobs"] = {"completed": None, "failed": None, "latency_s": {"mean": None, "p99": None},
                   "backlog_max": int(round(max(sim.job_peak.values(), default=0.0))),
                   "backlog_end": int(round(sum(j["backlog"] for j in sim.jobs.values()))),
                   "rate_end_per_s": jobs_done}
    if sim.job_totals["done"] > 0:
        out["jobs"]["completed"] = int(round(sim.job_totals["done"]))
        out["jobs"]["failed"] = 0
        out["jobs"]["latency_s"]["mean"] = sim.job_totals["lat"] / sim.job_totals["done"]
    out["datastores"] = {name: {"kind": spec.kind, "utilization": {"mean": None, "max": tot.max_util.get(name)},
                                "connections_max": int(round(sim.conn_peak.get(name, 0.0))) or None}
                         for name, spec in sc.datastores.items()}
    return out


def caveats_for(sim, summary: dict) -> list[str]:
    sc, tiers, tot = sim.sc, sim.tiers, sim.totals
    out = [
        f"Fluid mode: every tier is solved as if the rate of each step (at most {sim.dt:g} s) had lasted; "
        "queues that build and drain within a step, and the randomness of a single run, are not seen.",
        "Load is split evenly over serving pods (an ideal balancer) and each pod's arrivals are taken as Poisson; "
        "per-pod imbalance from random or least-request picks, and the smoothing of round robin (each pod sees "
        "every n-th arrival, so a busy processor-sharing pod queues less than M/M/1-PS says), are not represented.",
    ]
    out += _hpa_caveats(sim)
    if summary["fluid"]["percentiles"] is None:
        out.append("Latency percentiles are not given: they have a closed form only for one tier "
                   "(an M/M/c pod at one load), and this run is a multi-tier chain or its load varies; "
                   "the mean latency is the sum of the tiers' means.")
    if tot.saturated_s > 0:
        where = ", ".join(f"{k} ({v:.0f} s)" for k, v in sorted(tot.bottlenecks.items(), key=lambda kv: -kv[1]))
        out.append(f"The system ran at or beyond saturation for {tot.saturated_s:.0f} s of the measured window "
                   f"(bottleneck: {where}): latency, the 503/504 split and tail behaviour under overload are "
                   "fluid approximations (a deterministic backlog held at the bottleneck tier, each request "
                   "class delayed in proportion to its work there; timeouts smoothed by an exponential "
                   "in-pod time).")
    if sim.closed:
        out.append("Closed users: throughput is the fixed point X = N / (Z + R(X)) with open-queue tier times, "
                   "not exact MVA; client retries and timed-out users re-thinking are not modelled.")
    if any(n[0] == "par" for e in tiers.exprs for n in e):
        out.append("Parallel steps: the wait for the slowest branch is E[max] of lognormal branches at no load, "
                   "scaled with each branch's mean under load.")
    if tiers.k == 1 and tiers.p > 1:
        out.append("Processes with concurrency 1 are an M/M/c queue: exact for exponential demand only.")
    limited = [name for name, d in sc.deployments.items()
               if sc.cluster.cpu_cfs_quota and d.resources.limits.cpu is not None and d.resources.limits.cpu < d.processes]
    if limited:
        out.append(f"CPU limits below one core per process ({', '.join(limited)}) are held as a fluid cap, not CFS "
                   "bandwidth control: throughput at saturation is the same, but the waits for the next period "
                   "(tail latency) are not seen and the throttling series are zero.")
    contention = node_contention(sc)
    if contention:
        out.append(f"Node CPU contention is not modelled ({contention}): when a node's pods want more cores than "
                   "it has, the discrete-event engine shares them by requests.cpu and the pods slow down together; "
                   "here every pod always has its cores.")
    if tiers.mean.calls:
        out.append("Connection pools: waits from Erlang C per process (Poisson check-outs, exponential holds); "
                   "pool timeouts, pre-ping recycling and connection opening are not modelled.")
    if sim.jobs:
        out.append("Worker jobs: a fluid backlog against slots/job time; retries, start-to-close timeouts and "
                   "job latency percentiles are not modelled.")
    if sc.workload.arrivals is not None and sc.workload.arrivals.cv != 1.0:
        out.append("Arrivals with cv != 1: the formulas assume Poisson arrivals.")
    if sim.oom:
        out.append(f"Worker pods would hold more jobs than fit in limits.memory ({', '.join(sorted(sim.oom))}): "
                   "the fluid model treats them as crash-looping (no job capacity) while that lasts.")
    if sim.mem_over:
        out.append(f"Pod memory exceeded limits.memory ({', '.join(sorted(sim.mem_over))}): the DES would OOMKill "
                   "and restart containers; the fluid model does not.")
    out.append("Not modelled in fluid mode: liveness-probe failures and the overload death spiral, OOMKills, "
               "CrashLoopBackOff, terminating pods' drain, per-node anti-affinity.")
    return out


def _hpa_caveats(sim) -> list[str]:
    """What the HPA saw: the metric noise (engine.fluid_noise) and the decisions at the tolerance edge."""
    if not sim.hpa_resources:
        return []
    out = []
    if sim.sc.cluster.control_loops == "independent":
        out.append("metrics-server reads each pod's counters at the scrape here: the kubelet's housekeeping "
                   "window (cluster.housekeeping_interval; samples up to two intervals old, between 10 and 35 s "
                   "apart) is modelled by the DES only, whose decisions come some 8 s later on average "
                   "(docs/fluid.md, The control plane).")
    if sim.noise_rng is None:
        return out + ["HPA metrics are the fluid means (metric noise off): a decision near the tolerance edge can "
                      "differ from the DES's, whose noisy metrics can tip it (docs/fluid.md, Metric noise)."]
    out.append("HPA metrics carry noise drawn from the queueing model at every scrape (the in-flight count's "
               "variance, compound-Poisson CPU over the scrape window), seeded from the run's seed; normal "
               "approximations, scrapes taken as independent.")
    for name, dep in sim.deps.items():
        if dep.edge_scrapes:
            out.append(f"{name}: at {dep.edge_scrapes} of {dep.scrapes} scrapes an HPA metric's mean sat "
                       "within 2 sd of the tolerance band's edge; the replicas there are one draw of the metric "
                       "noise (as one DES run is): other seeds can settle on another count.")
    return out


def write_samples(sim, now: float) -> None:
    """One sample interval, with the DES monitor's names (components/monitor.py and samplers)."""
    add = sim.recorder.samples.add
    w, s = sim.win, sim.state
    span = w["span"] or sim.sc.sample_interval
    for name, dep in sim.deps.items():
        pods, up, ready, serving = dep.counts(now)
        running = [p for p in dep.pods if p.running <= now]
        upped = [p for p in dep.pods if p.up <= now]
        cores = w["cpu"].get(name, 0.0) / span
        req_cpu = dep.cpu_req * len(running) or float("nan")
        mem = sum(dep.mem_per_pod if p.serving <= now else float(dep.spec.memory_base) for p in upped)
        req_mem = dep.mem_req * len(running) or float("nan")
        limit = dep.spec.resources.limits.memory
        frac = (dep.mem_per_pod / limit) if (limit and serving) else 0.0
        if limit and dep.mem_per_pod > limit:
            sim.mem_over.add(name)
        add(now, name, "replicas_desired", dep.spec_replicas)
        add(now, name, "pods", pods)
        add(now, name, "pods_ready", ready)
        add(now, name, "pods_pending", len(dep.pending()))
        add(now, name, "cpu_cores", cores)
        add(now, name, "cpu_utilization", cores / req_cpu)
        add(now, name, "memory_bytes", mem)
        add(now, name, "memory_utilization", mem / req_mem)
        add(now, name, "memory_limit_fraction_max", frac)
        ev = s.get("ev")
        if name == "api":
            add(now, name, "in_flight", ev["in_flight"] if ev else 0.0)
            add(now, name, "backlog", (ev["backlog"] if ev else 0.0) + sim.backlog)
        else:
            jobs = [j for j in s.get("workers", {}).values() if j["dep"] == name]
            add(now, name, "in_flight", sum(j["running"] for j in jobs))
            add(now, name, "backlog", 0.0)
        add(now, name, "throttled_fraction", 0.0)
        add(now, name, "throttled_s", 0.0)
        add(now, name, "cfs_periods", 0)
        add(now, name, "cfs_throttled_periods", 0)
        add(now, name, "throttled_periods_fraction", 0.0)
    ok = w["ok"] / span
    add(now, "ingress", "arrivals_rps", w["arr"] / span)
    add(now, "ingress", "throughput_rps", ok)
    for code in ("503", "504", "502", "500"):
        add(now, "ingress", f"errors_{code}_rps", w.get(f"e{code}", 0.0) / span)
    answered = w["ok"] + w["e503"] + w["e504"] + w["e500"]
    add(now, "ingress", "error_rate", (answered - w["ok"]) / answered if answered else 0.0)
    ev = s.get("ev")
    add(now, "ingress", "in_flight", ((ev["in_flight"] + ev["backlog"]) if ev else 0.0) + sim.backlog)
    if w["ok"] > 0:
        add(now, "ingress", "latency_mean_s", w["lat"] / w["ok"])
    for store, spec in sim.sc.datastores.items():
        st = (ev or {}).get("stores", {}).get(store) if ev else None
        ex = (ev or {}).get("ext", {}).get(store) if ev else None
        if KINDS[spec.kind].pooled:
            st = st or {"in_use": 0.0, "waiters": 0.0, "refused": 0.0, "util": 0.0, "in_service": 0.0, "calls": 0.0}
            sim.conn_peak[store] = max(sim.conn_peak.get(store, 0.0), st["in_use"])
            add(now, store, "connections_in_use", st["in_use"])
            add(now, store, "pool_waiters", st["waiters"])
            add(now, store, "refused", st["refused"] * st["calls"] * span)
            add(now, store, "utilization", st["util"])
            add(now, store, "queries_in_service", st["in_service"])
        elif KINDS[spec.kind].is_cache:
            add(now, store, "utilization", (st or {}).get("util", 0.0))
        else:
            ex = ex or {"in_flight": 0.0, "waiters": 0.0, "rejected": 0.0, "rate": 0.0}
            add(now, store, "in_flight", ex["in_flight"])
            add(now, store, "waiters", ex["waiters"])
            add(now, store, "rate_limited", ex["rejected"] * ex["rate"] * span)
    for job, j in s.get("workers", {}).items():
        dep = j["dep"]
        add(now, dep, "jobs/backlog", j["backlog"])
        add(now, dep, "jobs/running", j["running"])
        add(now, dep, "jobs/completed_rps", j["done"])
        add(now, dep, "jobs/failed_rps", 0.0)
        add(now, dep, "jobs/latency_mean_s", j["latency"])
        add(now, dep, "worker_queue_fraction", j["backlog"] / MAX_TASK_QUEUE_SIZE)
