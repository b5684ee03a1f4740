"""metrics-server: what the HPA can see of a pod's CPU and memory.

Every ``metrics_resolution`` seconds it scrapes each running container's cumulative CPU
counter and its working set. The CPU it reports is the average rate between the last two
scrapes (so a pod needs two scrapes before it has a CPU sample), with ``timestamp`` the
last scrape and ``window`` the time between them; memory is the working set at the last
scrape (hpa-spec.md §9). A restarted container starts its counters afresh.

Imperfect metrics (off unless the scenario asks, ``cluster.metrics_errors``): a pod's
stats can be missing from a scrape ("no metrics returned" — a kubelet that timed out, a
container the summary API skipped). metrics-server keeps only the pods of its latest scrape,
so a miss drops the pod's point: it has no memory sample until the next good scrape and no
CPU sample until two in a row. Usage carries multiplicative noise (GC, sidecars, the node),
drawn per pod and scrape with mean 1 and the given coefficient of variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PodScrape:
    t_prev: float | None = None
    cpu_prev: float = 0.0
    t_last: float | None = None
    cpu_last: float = 0.0
    memory_bytes: int | None = None
    incarnation: int = -1
    cpu_rate: float | None = None
    window: float = 0.0


class MetricsServer:
    """Scrapes every pod of the given deployments on a fixed period."""

    def __init__(self, env, resolution_s: float, runtimes: dict, errors=None, rng=None, first_scrape: float = 0.0):
        self.env = env
        self.resolution_s = resolution_s
        self.first_scrape = first_scrape  # when the first scrape runs (components.hpa.phases)
        self.runtimes = runtimes
        self.scrapes: dict = {}
        #: ``cluster.metrics_errors`` (None: perfect metrics) and the stream its draws come from.
        self.errors = errors
        self.rng = rng
        self.missed = 0  # pod scrapes that returned nothing

    def run(self):
        if self.first_scrape > 0.0:
            yield self.env.timeout(self.first_scrape)
        while True:
            self.scrape()
            yield self.env.timeout(self.resolution_s)

    def scrape(self) -> None:
        now = self.env.now
        for runtime in self.runtimes.values():
            for pod in runtime.pods:
                if pod.phase != "Running" or not pod.container_up:
                    self.scrapes.pop(pod, None)
                    continue
                if self.errors is not None and self._missing():
                    self.scrapes.pop(pod, None)
                    continue
                state = self.scrapes.get(pod)
                if state is None or state.incarnation != pod.restarts:
                    state = PodScrape(incarnation=pod.restarts)
                    self.scrapes[pod] = state
                cpu = pod.usage_now()
                state.t_prev, state.cpu_prev = state.t_last, state.cpu_last
                state.t_last, state.cpu_last = now, cpu
                state.memory_bytes = pod.mem
                if state.t_prev is not None and now > state.t_prev:
                    state.window = now - state.t_prev
                    state.cpu_rate = (cpu - state.cpu_prev) / state.window
                if self.errors is not None:
                    self._add_noise(state)
        for pod in [p for p in self.scrapes if p.phase == "Gone"]:
            del self.scrapes[pod]

    def _missing(self) -> bool:
        if self.errors.missing_probability > 0.0 and self.rng.random() < self.errors.missing_probability:
            self.missed += 1
            return True
        return False

    def _add_noise(self, state: PodScrape) -> None:
        """Scale this scrape's CPU rate and working set by independent lognormal factors of mean 1."""
        cv_cpu, cv_mem = self.errors.cpu_noise_cv, self.errors.memory_noise_cv
        if cv_cpu > 0.0 and state.cpu_rate is not None:
            state.cpu_rate *= _lognormal_factor(self.rng, cv_cpu)
        if cv_mem > 0.0:
            state.memory_bytes = int(round(state.memory_bytes * _lognormal_factor(self.rng, cv_mem)))

    def sample(self, pod):
        """(cpu cores or None, window, timestamp, memory bytes or None) as the metrics API serves it."""
        state = self.scrapes.get(pod)
        if state is None:
            return None, 0.0, 0.0, None
        return state.cpu_rate, state.window, state.t_last, state.memory_bytes


def _lognormal_factor(rng, cv: float) -> float:
    """A lognormal draw with mean 1 and coefficient of variation ``cv``."""
    sigma2 = math.log1p(cv * cv)
    return float(rng.lognormal(-0.5 * sigma2, math.sqrt(sigma2)))
