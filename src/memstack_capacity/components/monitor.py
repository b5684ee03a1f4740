"""Samples the system every ``sample_interval``: what a Prometheus scrape would see.

Per deployment: spec and ready replicas, live pods, CPU used (cores, the average over
the interval) and utilisation against requests (as the HPA computes it), memory
working set and its utilisation against requests and limits, in-flight, backlog, and
CFS throttling: the share of the pods' time throttled, the seconds throttled in the
interval (summed over pods, as ``increase(container_cpu_cfs_throttled_seconds_total)``)
the CFS periods with a runnable thread and those throttled, summed over pods
(``increase`` of ``container_cpu_cfs_periods_total`` and
``container_cpu_cfs_throttled_periods_total``), and their ratio. For the ingress: arrivals, answers, errors by status and the
latency percentiles of the interval. Level metrics are instantaneous; rates are
averages over the interval.
"""

from __future__ import annotations

import numpy as np

from memstack_capacity.components.recorder import STATUS_LABELS


class Monitor:
    """One simpy process writing long-format samples into the recorder."""

    def __init__(self, env, interval: float, recorder, runtimes: dict, ingress, extra_samplers=()):
        self.env = env
        self.interval = interval
        self.samples = recorder.samples
        self.runtimes = runtimes
        self.ingress = ingress
        self.extra = list(extra_samplers)
        self.before_sample: list = []  # callables run first at each sample (a batched data plane flushes)
        self._cpu_prev: dict = {}
        self._throttle_prev: dict = {}
        self._periods_prev: dict = {}
        self._arrived_prev = 0
        self.next_due: float | None = None  # when the next sample is due (a sample at the horizon is taken at the end)

    def run(self):
        while True:
            self.next_due = self.env.now + self.interval
            yield self.env.timeout(self.interval)
            self.sample()

    def sample_at_horizon(self) -> None:
        """The sample due exactly when the clock stops (at t = duration), which the clock's stop
        would otherwise drop: the last interval's figures, taken after everything before it."""
        if self.next_due == self.env.now:
            self.sample()

    def sample(self) -> None:
        for flush in self.before_sample:
            flush()
        now = self.env.now
        add = self.samples.add
        for name, rt in self.runtimes.items():
            self._sample_deployment(now, name, rt, add)
        self._sample_requests(now, add)
        for sampler in self.extra:
            sampler(now, add)

    def _sample_deployment(self, now: float, name: str, rt, add) -> None:
        pods = rt.live_pods()
        running = [p for p in pods if p.phase == "Running"]
        usage = {p: p.usage_now() for p in rt.pods}
        # Pods that disappeared took their counters with them; count only pods seen both times.
        prev = self._cpu_prev.get(name, {})
        used = sum(usage[p] - prev.get(p, 0.0) for p in rt.pods if p.phase != "Gone")
        self._cpu_prev[name] = usage
        throttle_prev = self._throttle_prev.get(name, {})
        throttled = sum(p.throttled_s - throttle_prev.get(p, 0.0) for p in running)
        self._throttle_prev[name] = {p: p.throttled_s for p in rt.pods}
        periods_prev = self._periods_prev.get(name, {})
        periods = {p: p.cfs_counts() for p in rt.pods}
        d_periods = sum(periods[p][0] - periods_prev.get(p, (0, 0))[0] for p in running)
        d_throttled = sum(periods[p][1] - periods_prev.get(p, (0, 0))[1] for p in running)
        self._periods_prev[name] = periods
        cores = used / self.interval
        req_cpu = sum(p.cpu_request for p in running) or float("nan")
        mem = sum(p.mem for p in running if p.container_up)
        req_mem = sum(p.mem_request for p in running) or float("nan")
        mem_limit_frac = max((p.mem / p.mem_limit for p in running if p.container_up), default=0.0)
        add(now, name, "replicas_desired", rt.spec_replicas)
        add(now, name, "pods", len(pods))
        add(now, name, "pods_ready", rt.ready_count())
        add(now, name, "pods_pending", sum(1 for p in pods if p.node is None))
        add(now, name, "cpu_cores", cores)
        add(now, name, "cpu_utilization", cores / req_cpu)
        add(now, name, "memory_bytes", mem)
        add(now, name, "memory_utilization", mem / req_mem)
        add(now, name, "memory_limit_fraction_max", mem_limit_frac)
        add(now, name, "in_flight", sum(p.inflight for p in running))
        add(now, name, "backlog", sum(len(p.backlog) for p in running))
        add(now, name, "throttled_fraction", throttled / (self.interval * len(running)) if running else 0.0)
        add(now, name, "throttled_s", throttled)
        add(now, name, "cfs_periods", d_periods)
        add(now, name, "cfs_throttled_periods", d_throttled)
        add(now, name, "throttled_periods_fraction", d_throttled / d_periods if d_periods else 0.0)

    def _sample_requests(self, now: float, add) -> None:
        counts = self.ingress.interval_status
        self.ingress.interval_status = [0] * len(counts)
        lat = self.ingress.window
        self.ingress.window = []
        dt = self.interval
        add(now, "ingress", "arrivals_rps", (self.ingress.arrived - self._arrived_prev) / dt)
        self._arrived_prev = self.ingress.arrived
        ok = counts[0]
        add(now, "ingress", "throughput_rps", ok / dt)
        for code, label in enumerate(STATUS_LABELS[1:], start=1):
            add(now, "ingress", f"errors_{label}_rps", counts[code] / dt)
        answered = sum(counts)
        add(now, "ingress", "error_rate", (answered - ok) / answered if answered else 0.0)
        add(now, "ingress", "in_flight", self.ingress.in_flight)
        if lat:
            arr = np.asarray(lat)
            p50, p95, p99 = np.percentile(arr, [50, 95, 99])
            add(now, "ingress", "latency_mean_s", float(arr.mean()))
            add(now, "ingress", "latency_p50_s", p50)
            add(now, "ingress", "latency_p95_s", p95)
            add(now, "ingress", "latency_p99_s", p99)
