"""metrics-server: what the HPA can see of a pod's CPU and memory.

Every ``metrics_resolution`` seconds it scrapes each running container's cumulative CPU
counter and its working set, and reports CPU as the average rate between the two points it
holds, with ``timestamp`` the later point and ``window`` the time between them (hpa-spec.md
§9). A restarted container starts its counters afresh.

Where the points come from depends on ``cluster.control_loops``:

* ``independent`` (the default, as a cluster does it): from the kubelet, i.e. cAdvisor's
  latest housekeeping sample of the container, stamped with the time it was taken
  (:mod:`.cadvisor`). metrics-server's storage (kubernetes-sigs/metrics-server
  ``pkg/storage/pod.go``, ``Store`` and ``GetMetrics``) then keeps, per container, the new
  point as ``last`` and, as ``prev``, the stored ``last`` when the new point is later, or the
  stored ``prev`` when the kubelet served the same sample again (so the rate is unchanged);
  a point whose container started after the stored one (a restart) keeps no ``prev``. A
  fresh container — its point taken at least 10 s (``freshContainerMinMetricsResolution``)
  but less than one resolution after its start — gets a ``prev`` at its start with a zero
  counter. A pod is served only with both points (``GetMetrics`` skips a pod with no
  ``prev``, memory included), CPU = (c_last − c_prev) / (t_last − t_prev)
  (``pkg/storage/types.go: resourceUsage``), memory = the working set of ``last``. So the CPU
  is up to one housekeeping interval stale, its window varies, and a new container is
  served once scrapes have seen two of its samples.
* ``aligned`` (the best case, which the hand-derived controller tests use): at the instant
  of the scrape, so every scrape is a new point; memory is served from the first scrape.

Imperfect metrics (off unless the scenario asks, ``cluster.metrics_errors``): a pod's
stats can be missing from a scrape ("no metrics returned" — a kubelet that timed out, a
container the summary API skipped). metrics-server keeps only the pods of its latest scrape,
so a miss drops the pod's points: it has no sample until it has two points again (aligned:
memory at the next good scrape, CPU after two in a row). Usage carries multiplicative noise
(GC, sidecars, the node), drawn per pod and new point with mean 1 and the given coefficient
of variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: metrics-server ``pkg/storage/pod.go``: freshContainerMinMetricsResolution.
FRESH_CONTAINER_MIN_S = 10.0


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

    def __init__(self, env, resolution_s: float, runtimes: dict, errors=None, rng=None, first_scrape: float = 0.0,
                 housekeeping=None):
        self.env = env
        #: The kubelets' cAdvisor (:class:`.cadvisor.Housekeeping`) whose samples are scraped; None:
        #: each pod is read at the scrape's instant (``control_loops: aligned``).
        self.housekeeping = housekeeping
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
                if self.housekeeping is not None:
                    self._store(pod, self.housekeeping.stats(pod))
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

    def _store(self, pod, stats) -> None:
        """metrics-server's ``Store`` for one container's point from the kubelet (see the module docstring)."""
        if stats is None or stats.t is None:
            self.scrapes.pop(pod, None)  # no sample of this container yet: the kubelet has no point for it
            return
        state = self.scrapes.get(pod)
        if state is None or state.incarnation != stats.incarnation:
            state = PodScrape(incarnation=stats.incarnation)
            self.scrapes[pod] = state
        t = stats.t
        if state.t_last is not None and t <= state.t_last:
            return  # the same sample again: both points kept, the same values served
        age = t - stats.start
        if FRESH_CONTAINER_MIN_S <= age < self.resolution_s:
            state.t_prev, state.cpu_prev = stats.start, stats.base
        else:
            state.t_prev, state.cpu_prev = state.t_last, state.cpu_last
        state.t_last, state.cpu_last = t, stats.cpu
        if state.t_prev is None:
            state.cpu_rate, state.window, state.memory_bytes = None, 0.0, None
            return
        state.window = t - state.t_prev
        state.cpu_rate = (stats.cpu - state.cpu_prev) / state.window
        state.memory_bytes = stats.memory
        if self.errors is not None:
            self._add_noise(state)

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
        if state is None or (state.cpu_rate is None and state.memory_bytes is None):
            return None, 0.0, 0.0, None
        return state.cpu_rate, state.window, state.t_last, state.memory_bytes


def _lognormal_factor(rng, cv: float) -> float:
    """A lognormal draw with mean 1 and coefficient of variation ``cv``."""
    sigma2 = math.log1p(cv * cv)
    return float(rng.lognormal(-0.5 * sigma2, math.sqrt(sigma2)))
