"""``engine="fluid"``: the scenario solved as a time-stepped flow model (docs/fluid.md).

Between control events (metrics-server scrapes, HPA syncs, pod transitions, samples) the
rates are held and every tier is solved pointwise-stationary (:mod:`engine.fluid_tiers`);
overload builds a fluid backlog at the API (dB/dt = arrivals − capacity) and at the worker
queue. The control plane is the DES's: the same lifecycle delays, the same metrics-server
view and the real HPA ``reconcile`` (:mod:`engine.fluid_pods`); the metrics it reads carry
the noise a single run's would, drawn from the queueing model (:mod:`engine.fluid_noise`).
The result is a :class:`~memstack_capacity.engine.record.RunRecord` with the same samples and
scaling rows as the DES, an empty request log, and the request statistics in its ``flow``.
"""

from __future__ import annotations

import math
import time

from memstack_capacity.components.hpa.calc import ControllerConfig
from memstack_capacity.components.recorder import Recorder
from memstack_capacity.components.workload import PiecewiseLinearRate
from memstack_capacity.engine.capabilities import require
from memstack_capacity.engine.fluid import noise
from memstack_capacity.engine.fluid.flow import Demand, compile_steps, cpu_moments, pod_chain, redis_hit_ratios
from memstack_capacity.engine.fluid.pods import VCluster, VDeployment, VHPA
from memstack_capacity.engine.fluid.report import Totals, caveats_for, fluid_summary
from memstack_capacity.engine.fluid.tiers import RHO_MAX, Tiers
from memstack_capacity.components.hpa.phases import loop_phases
from memstack_capacity.engine.rng import stream
from memstack_capacity.engine.record import FlowFigures, RunRecord
from memstack_capacity.scenario.kinds import KINDS

def default_step(scenario) -> float:
    """The longest step: 1 s for runs up to about 6 h, then longer, up to the metrics resolution.
    Shorter steps are taken anyway at every control event (scrape, sync, pod transition, sample)."""
    return float(min(max(1.0, scenario.duration / 20000.0), scenario.cluster.metrics_resolution))


NAME = "fluid"


def run(scenario, seed: int, progress=None) -> RunRecord:
    """Solve `scenario` with the flow model at its default step, with metric noise."""
    return run_fluid(scenario, seed, progress)


def run_fluid(scenario, seed: int | None = None, progress=None, step: float | None = None,
              metric_noise: bool = True) -> RunRecord:
    """Solve `scenario` with the fluid model. `seed` (the scenario's when None) seeds the only
    randomness, the noise of the metrics the HPA sees (engine.fluid_noise): the run is
    deterministic for a given seed. `metric_noise=False` gives the HPA the means."""
    seed = scenario.seed if seed is None else int(seed)
    started = time.perf_counter()
    require(scenario, NAME)
    sim = FluidSim(scenario, step or default_step(scenario), seed, metric_noise)
    sim.run(progress)
    return sim.record(seed, time.perf_counter() - started)


def _profile(scenario):
    """(rate or users profile with traffic spikes folded in, is_closed)."""
    from memstack_capacity.components.spikes import fold_spike

    wl = scenario.workload
    closed = wl.users is not None
    points = ([(float(p.at), float(p.users)) for p in wl.users.profile] if closed
              else [(float(p.at), float(p.rps)) for p in wl.arrivals.profile])
    for e in scenario.events:
        if e.kind == "traffic_spike":
            s = e.traffic_spike
            points = fold_spike(points, float(e.at), s.factor, s.duration, s.ramp)
    return PiecewiseLinearRate(points), closed


class FluidSim:
    def __init__(self, scenario, step: float, seed: int | None = None, metric_noise: bool = True):
        self.sc, self.dt = scenario, float(step)
        self.recorder = Recorder()
        stores = scenario.datastores
        wl = scenario.workload
        exprs = [compile_steps(r.steps, stores) for r in wl.requests]
        weights = [r.weight for r in wl.requests]
        job_exprs = {j.name: compile_steps(j.steps, stores) for j in wl.jobs}
        hit = redis_hit_ratios(exprs + list(job_exprs.values()), weights + [1e-9] * len(job_exprs), stores)
        self.tiers = Tiers(scenario, exprs, weights, job_exprs, hit)
        # E[D²] of the CPU demand of a request (over the class mix) and of each job
        moments = [cpu_moments(e, hit) for e in exprs]
        self.cpu_m2 = sum(w * (v + m * m) for w, (m, v) in zip(self.tiers.w, moments))
        self.job_cpu_m2 = {}
        for job, e in job_exprs.items():
            m, v = cpu_moments(e, hit)
            self.job_cpu_m2[job] = v + m * m
        self.job_mem = {jc.name: float(jc.memory) for jc in wl.jobs}
        self.profile, self.closed = _profile(scenario)
        self.think = wl.users.think_time.expected() if self.closed else 0.0
        self.cluster = VCluster(scenario.cluster)
        self.deps = {n: VDeployment(n, d, self.cluster, self.recorder) for n, d in scenario.deployments.items()}
        seed = scenario.seed if seed is None else int(seed)
        self.noise_rng = ({n: stream(seed, f"fluid/metrics/{n}") for n in self.deps} if metric_noise else None)
        self.hpa_resources: dict = {}  # deployment -> {cpu|memory: (averageUtilization, averageValue)}
        self._noise_cache = None
        self.consumer = {job: n for n, d in scenario.deployments.items() for job in d.consumes}
        config = ControllerConfig(sync_period_s=scenario.cluster.hpa_sync_period)
        autoscaled = [n for n, d in scenario.deployments.items() if d.hpa is not None]
        self.phases = loop_phases(scenario.cluster, autoscaled, stream(seed, "control-loops/phases"))
        self.hpas = []
        for n, d in scenario.deployments.items():
            if d.hpa is not None:
                ext = {"queue_length": (lambda n=n: [self.job_backlog(n)])} if scenario.worker_names() else {}
                self.hpas.append(VHPA(self.deps[n], d.hpa, config, self.recorder, ext, self.phases.sync_at[n]))
                self.hpa_resources[n] = {m.resource.name: (m.resource.target.averageUtilization,
                                                           float(m.resource.target.averageValue or 0.0))
                                         for m in d.hpa.metrics if m.type == "Resource"}
        self.tolerance = config.tolerance
        self.backlog = 0.0  # requests waiting at the API beyond the stationary queue
        self.jobs = {j: {"backlog": 0.0, "rate": 0.0, "running": 0.0, "time": 0.0} for j in job_exprs}
        self.t_prev = 0.0
        self.totals = Totals([r.name for r in wl.requests])
        self.state: dict = {}
        self.win = self._new_window()
        self.next_scrape = self.phases.scrape_at
        self.next_sample = scenario.sample_interval
        self.mem_over: set = set()
        self.oom: set = set()
        self._ev_cache = None
        self._key = None
        self.conn_peak: dict = {}
        self.job_peak: dict = {}
        self.job_totals = {"done": 0.0, "lat": 0.0}

    def job_backlog(self, dep: str) -> float:
        return sum(j["backlog"] for name, j in self.jobs.items() if self.consumer.get(name) == dep)

    # ---- the loop --------------------------------------------------------------------------------
    def run(self, progress) -> None:
        sc = self.sc
        for name, dep in self.deps.items():
            dep.start(sc.deployments[name].replicas)
        t, horizon, last_progress = 0.0, float(sc.duration), 0.0
        while t < horizon - 1e-9:
            self._control(t)
            t1 = min(t + self.dt, horizon, self.next_scrape, self.next_sample,
                     *(h.next_sync for h in self.hpas), *(d.next_transition(t) for d in self.deps.values()))
            if t1 <= t + 1e-9:
                t1 = min(t + 1e-6, horizon)
            self._advance(t, t1)
            t = t1
            if t >= self.next_sample - 1e-9:
                self._sample(self.next_sample)
                self.next_sample += sc.sample_interval
            if progress is not None and t - last_progress >= 60.0:
                progress(t, horizon)
                last_progress = t
        if progress is not None:
            progress(horizon, horizon)

    def _control(self, t: float) -> None:
        pending = []
        for dep in self.deps.values():
            dep.retry_pending(t)
            pending += [(dep.cpu_req, dep.mem_req) for _ in dep.pending()]
        self.cluster.tick(t, pending)
        if t >= self.next_scrape - 1e-9:
            for name, dep in self.deps.items():
                dep.scrape(t, *noise.metric_noise(self, name, dep, t))
            self.next_scrape += self.sc.cluster.metrics_resolution
        for h in self.hpas:
            if t >= h.next_sync - 1e-9:
                h.sync(t)

    def _advance(self, t: float, t1: float) -> None:
        dt = t1 - t
        mid = 0.5 * (t + t1)
        tiers, api = self.tiers, self.deps["api"]
        _, _, _, n_api = api.counts(mid)
        job_load, job_rate = self._job_load()
        cap, bottleneck = tiers.capacity(n_api, max(self.t_prev, 1e-9), job_load, job_rate)
        level = self.profile.rate(mid)
        self._key = (n_api, job_rate)
        shed = 0.0  # arrivals refused with 503 (no endpoints or the pods' accept queues full)
        if n_api == 0:
            arrivals, x, ev, delay = (level / max(self.think, 1e-9) if self.closed else level), 0.0, None, 0.0
            shed = arrivals
        elif self.closed:
            arrivals, x, ev, delay = self._closed(level, n_api, cap, job_load, job_rate)
        else:
            arrivals = level
            x_max = RHO_MAX * cap
            if self.backlog <= 0 and arrivals <= x_max:
                x = arrivals
            else:
                x = min(x_max, arrivals + self.backlog / dt)
                self.backlog = max(0.0, self.backlog + (arrivals - x) * dt)
            ev = self._evaluate(x, n_api, job_load, job_rate)
            delay = self.backlog / x if x > 0 else 0.0
            room = n_api * (tiers.p * tiers.k + self.sc.api.backlog) - ev["in_flight"] - ev["backlog"]
            if self.backlog > room:
                shed = (self.backlog - max(room, 0.0)) / dt
                self.backlog = max(room, 0.0)
                delay = self.backlog / x if x > 0 else 0.0
        state = {"t": mid, "t0": t, "t1": t1, "n_api": n_api, "arrivals": arrivals, "x": x, "ev": ev, "delay": delay, "shed": shed,
                 "cap": cap, "bottleneck": bottleneck, "shares": None, "delay_f": None}
        if ev is not None and (self.backlog > 0 or delay > 0):
            state["shares"], state["delay_f"] = self._backlog_split(ev, bottleneck)
        if ev is not None:
            self.t_prev = ev["t_in"]
            state.update(self._answer(ev, x, delay, dt))
        else:
            state.update(ok=0.0, e504=0.0, e500=0.0, lat=0.0)
        self._workers(state, dt)
        self._account(state, t, t1)
        self.state = state

    def _backlog_split(self, ev: dict, bottleneck: str):
        """(β_c, f_c): the fluid backlog's class shares and each class's part of its queue delay.

        Beyond capacity the requests wait at the bottleneck tier (the DES admits them and they
        queue there). In processor sharing a request's time there grows in proportion to its
        work there (M/G/1-PS: E[T | s] = s/(1 − ρ)), so class c waits ``delay·f_c`` with
        ``f_c = b_c / Σ w b`` (b_c its time at that tier, ``Σ w_c f_c = 1``: the mean delay is
        unchanged) and holds ``β_c = w_c b_c / Σ w b`` of the backlog. A class that never uses
        the bottleneck does not wait. When the admission slots bind (or nothing is known),
        the backlog splits as the requests in flight and every class waits the same."""
        key = self.tiers.tier_of.get(bottleneck)
        if key is None or key[0] == "slots":
            return None, None
        b = self.tiers.tier_times(ev["ctx"], key)
        total = sum(w * bc for w, bc in zip(self.tiers.w, b))
        if total <= 0:
            return None, None
        return [w * bc / total for w, bc in zip(self.tiers.w, b)], [bc / total for bc in b]

    def _evaluate(self, x: float, n_api: int, job_load: Demand, job_rate: float) -> dict:
        """tiers.evaluate, reused while the pods and job load are unchanged and x moved < 0.2 %
        (the x-proportional figures are rescaled)."""
        cached = self._ev_cache
        if cached is not None and cached[0] == self._key and x > 0 and abs(x - cached[1]) <= 0.002 * cached[1]:
            ev, f = dict(cached[2]), x / cached[1]
            for key in ("in_flight", "backlog", "cpu_cores"):
                ev[key] *= f
            return ev
        ev = self.tiers.evaluate(x, n_api, job_load, job_rate, self.t_prev)
        self._ev_cache = (self._key, x, ev)
        return ev

    def _closed(self, users: float, n_api: int, cap: float, job_load: Demand, job_rate: float):
        """Throughput of `users` thinking Z between requests: X = N / (Z + R(X)), by bisection."""
        tiers = self.tiers
        hi = RHO_MAX * cap
        if self.think > 0:
            hi = min(hi, users / self.think)
        if users <= 0 or hi <= 0:
            return 0.0, 0.0, tiers.evaluate(0.0, n_api, job_load, job_rate, self.t_prev), 0.0
        ev_hi = tiers.evaluate(hi, n_api, job_load, job_rate, self.t_prev)
        if hi * (self.think + ev_hi["t_mean"]) <= users:  # saturated: the rest of the users queue
            waiting = users - hi * (self.think + ev_hi["t_mean"])
            self.backlog = waiting
            return hi, hi, ev_hi, waiting / hi
        lo, ev = 0.0, ev_hi
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            ev = tiers.evaluate(mid, n_api, job_load, job_rate, self.t_prev)
            if mid * (self.think + ev["t_mean"]) > users:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-6 * hi:
                break
        self.backlog = 0.0
        return lo, lo, ev, 0.0

    def _answer(self, ev: dict, x: float, delay: float, dt: float) -> dict:
        """Split the completions into OK, 504 (over the client timeout) and 500 (pools, 429s)."""
        timeout, t_in = self.sc.workload.timeout, ev["t_mean"]
        slack = timeout - delay
        late = 1.0 if slack <= 0 else (math.exp(-slack / t_in) if t_in > 0 else 0.0)
        late = min(1.0, late)
        errors = ev["errors"]
        ok = x * (1.0 - late) * (1.0 - errors)
        return {"ok": ok, "e504": x * late, "e500": x * (1.0 - late) * errors, "lat": min(t_in + delay, timeout)}

    def _job_load(self) -> tuple[Demand, float]:
        total = sum(j["rate"] for j in self.jobs.values())
        load = Demand()
        if total <= 0:
            return load, 0.0
        for name, j in self.jobs.items():
            dm, w = self.tiers.job_demand[name], j["rate"] / total
            load.cpu += w * dm.cpu
            for attr in ("calls", "server", "cache_ops", "ext"):
                acc = getattr(load, attr)
                for key, v in getattr(dm, attr).items():
                    acc[key] = acc.get(key, 0.0) + w * v
        return load, total

    def _workers(self, state: dict, dt: float) -> None:
        tiers, ev = self.tiers, state["ev"]
        ok = state["ok"]
        enq = {}
        for e_w, dm in zip(tiers.w, tiers.demand):
            for job, n in dm.enq.items():
                enq[job] = enq.get(job, 0.0) + ok * e_w * n / max(1.0 - (ev or {}).get("errors", 0.0), 1e-9)
        state["workers"] = {}
        for job, j in self.jobs.items():
            lam = enq.get(job, 0.0)
            dep = self.deps[self.consumer[job]]
            spec = dep.spec
            _, _, _, n = dep.counts(state["t"])
            dcpu = tiers.job_demand[job].cpu
            slots = n * spec.processes * spec.concurrency
            factor = 1.0
            if n and dcpu > 0 and lam > 0:
                rate = min(lam, RHO_MAX * n * spec.cpu_capacity / dcpu)
                _, t_cpu = pod_chain(rate / n, dcpu, spec.processes, spec.cpu_capacity)
                factor = t_cpu / dcpu
            ctx = ev["ctx"] if ev is not None else {"call": {}, "cache": {}, "ext": {}}
            ctx = {**ctx, "call": {s: ctx["call"].get(s, (0.0, 1.0)) for s in tiers.stores},
                   "cache": {s: ctx["cache"].get(s, 0.0) for s in tiers.stores},
                   "ext": {s: ctx["ext"].get(s, getattr(tiers.stores[s], "latency", None).expected()
                                               if KINDS[tiers.stores[s].kind].is_external else 0.0) for s in tiers.stores}}
            t_job = max(tiers.job_time(job, ctx, factor), 1e-9)
            cap = slots / t_job
            if n and dcpu > 0:
                cap = min(cap, n * spec.cpu_capacity / dcpu)
            mem_job = float(next(jc.memory for jc in self.sc.workload.jobs if jc.name == job))
            limit = spec.resources.limits.memory
            if n and limit and mem_job > 0:
                fits = (limit - float(spec.memory_base)) / mem_job  # jobs a pod holds before an OOMKill
                want = min(spec.processes * spec.concurrency, (lam * t_job + j["backlog"]) / n)
                if want > fits:  # the slots fill past the memory limit: OOMKill, CrashLoopBackOff
                    cap = 0.0
                    self.oom.add(dep.name)
            x = min(cap, lam + j["backlog"] / dt)
            j["backlog"] = max(0.0, j["backlog"] + (lam - x) * dt)
            j["rate"], j["running"], j["time"] = x, x * t_job, t_job + (j["backlog"] / cap if cap > 0 else 0.0)
            self.job_peak[job] = max(self.job_peak.get(job, 0.0), j["backlog"])
            measured = max(0.0, state["t1"] - max(state["t0"], self.sc.warmup))
            self.job_totals["done"] += x * measured
            self.job_totals["lat"] += x * j["time"] * measured
            state["workers"][job] = {"arrivals": lam, "done": x, "latency": j["time"], "dep": dep.name,
                                     "cpu": x * dcpu, "running": x * t_job, "backlog": j["backlog"]}

    def _new_window(self) -> dict:
        return {"arr": 0.0, "ok": 0.0, "e503": 0.0, "e504": 0.0, "e500": 0.0, "lat": 0.0, "cpu": {}, "span": 0.0}

    def _account(self, s: dict, t: float, t1: float) -> None:
        dt = t1 - t
        w = self.win
        w["span"] += dt
        w["arr"] += s["arrivals"] * dt
        w["ok"] += s["ok"] * dt
        w["e503"] += s["shed"] * dt
        w["e504"] += s["e504"] * dt
        w["e500"] += s["e500"] * dt
        w["lat"] += s["ok"] * s["lat"] * dt
        cpu = {"api": s["x"] * self.tiers.mean.cpu}
        for job in s["workers"].values():
            cpu[job["dep"]] = cpu.get(job["dep"], 0.0) + job["cpu"]
        for name, dep in self.deps.items():
            c = cpu.get(name, 0.0)
            w["cpu"][name] = w["cpu"].get(name, 0.0) + c * dt
            _, _, _, serving = dep.counts(s["t"])
            if serving:
                dep.cpu_integral += c / serving * dt
            dep.pod_seconds += len(dep.pods) * dt
            if name == "api" and s["ev"] is not None and serving:
                # requests queued downstream (a datastore) are admitted and hold their memory too
                per_pod = min((s["ev"]["in_flight"] + self.backlog) / serving, self.tiers.p * self.tiers.k)
                dep.mem_per_pod = float(dep.spec.memory_base) + per_pod * self._mem_per_request(s)
                dep.mem_serving = serving
            elif name != "api":
                running = sum(j["running"] for j in s["workers"].values() if j["dep"] == name)
                mem = sum(float(jc.memory) for jc in self.sc.workload.jobs if self.consumer.get(jc.name) == name)
                n_jobs = max(1, sum(1 for jc in self.sc.workload.jobs if self.consumer.get(jc.name) == name))
                dep.mem_per_pod = float(dep.spec.memory_base) + (running / serving if serving else 0.0) * mem / n_jobs
                dep.mem_serving = serving
        self.totals.add(self.sc.warmup, t, t1, s, self.tiers)

    def _mem_per_request(self, s: dict) -> float:
        """Mean memory of a request in the pods: in flight weighted by w_c·T_c, the backlog by β_c."""
        tiers = self.tiers
        if self.backlog <= 0:
            ev = s["ev"]
            num = sum(w * t * m for w, t, m in zip(tiers.w, ev["times"], tiers.mem))
            den = sum(w * t for w, t in zip(tiers.w, ev["times"]))
            return num / den if den > 0 else 0.0
        mix = noise.in_pod_mix(tiers, s["ev"], s["x"], self.backlog, s["shares"])
        return noise.memory_moments(mix, tiers.mem)[0]

    def _sample(self, now: float) -> None:
        from memstack_capacity.engine.fluid.report import write_samples

        write_samples(self, now)
        self.win = self._new_window()

    def record(self, seed: int, wall_s: float) -> RunRecord:
        deployments = {n: d.totals() for n, d in self.deps.items()}
        summary = fluid_summary(self)
        details = summary["fluid"]
        details["caveats"] = caveats_for(self, summary)
        return RunRecord(scenario=self.sc, seed=seed, engine=NAME, recorder=self.recorder,
                         arrived=int(round(self.totals.arrived_all)), in_flight_end=int(round(self.totals.in_flight_end)),
                         deployments=deployments, jobs=summary["jobs"] if self.jobs else None,
                         datastores=summary["datastores"] if self.sc.datastores else None,
                         flow=FlowFigures(requests=summary["summary"]["requests"], details=details),
                         nodes_requested_at=list(self.cluster.requested_at), wall_s=wall_s)
