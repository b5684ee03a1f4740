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

That is metrics-server 0.5 and later, which computes the CPU rate itself from the cumulative
counters. ``cluster.metrics_cpu_window`` gives the older pipeline (metrics-server 0.3/0.4, the
kubelet's summary API): the kubelet served ``usageNanoCores``, the rate between cAdvisor's last
two housekeeping samples of the container (kubernetes ``pkg/kubelet/stats/helper.go``:
``UsageNanoCores = &cstat.CpuInst.Usage.Total`` of the latest sample; google/cadvisor
``info/v2/conversion.go``: ``InstCpuStats(last, cur)``, Δcounter / Δtime of the two samples),
and metrics-server copied it (kubernetes-sigs/metrics-server 0.3 ``pkg/sources/summary/summary.go``:
``decodeCPU`` reads ``UsageNanoCores``; a pod with a container missing it is dropped from the
batch, so a container with one sample is not served), stamped with the sample's time
(``getScrapeTime``), each scrape's batch replacing the last (``pkg/provider/sink/sinkprov.go``:
``Receive``) and served with a fixed window of 30 s (``kubernetesCadvisorWindow``). So a pod's
CPU changes only when a scrape sees a new sample, and it describes the 10–20 s before that
sample, not the time since the previous scrape:

* ``housekeeping`` (with ``independent`` loops): exactly that, from :mod:`.cadvisor`'s samples;
* a duration ``d`` (with ``aligned`` loops): the idealised kubelet whose window ends at the
  scrape: CPU = (c(t) − c(t − d)) / d, served once the container's counter was read at
  ``t − d`` (a container that came up later has no rate yet), window ``d``, memory at the scrape.

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
from collections import deque
from dataclasses import dataclass

#: metrics-server ``pkg/storage/pod.go``: freshContainerMinMetricsResolution.
FRESH_CONTAINER_MIN_S = 10.0
#: metrics-server 0.3 ``pkg/provider/sink/sinkprov.go``: kubernetesCadvisorWindow, the window it serves.
KUBELET_RATE_WINDOW_S = 30.0
#: Two instants closer than this are the same (scrape times are sums of periods).
SAME_INSTANT_S = 1e-6


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
                 housekeeping=None, cpu_window=None):
        self.env = env
        #: The kubelets' cAdvisor (:class:`.cadvisor.Housekeeping`) whose samples are scraped; None:
        #: each pod is read at the scrape's instant (``control_loops: aligned``).
        self.housekeeping = housekeeping
        #: ``cluster.metrics_cpu_window``: None (the rate between two scrapes' points), ``housekeeping``
        #: (the kubelet's rate between its last two samples) or seconds (the rate over that window).
        if cpu_window == "housekeeping" and housekeeping is None:
            raise ValueError("the kubelet's rate (housekeeping) needs the kubelets' housekeeping")
        if isinstance(cpu_window, float) and housekeeping is not None:
            raise ValueError("a CPU window in seconds reads the pods at the scrape, not the kubelets' samples")
        self.kubelet_rate = cpu_window == "housekeeping"
        self.cpu_window_s = cpu_window if isinstance(cpu_window, float) else None
        self._window_starts: dict = {}  # pod -> deque of (t, incarnation, counter) read d before a scrape
        self.resolution_s = resolution_s
        self.first_scrape = first_scrape  # when the first scrape runs (components.hpa.phases)
        self.runtimes = runtimes
        self.scrapes: dict = {}
        #: ``cluster.metrics_errors`` (None: perfect metrics) and the stream its draws come from.
        self.errors = errors
        self.rng = rng
        self.missed = 0  # pod scrapes that returned nothing

    def run(self):
        if self.cpu_window_s is not None:
            self.env.process(self._read_window_starts())
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
                    if self.kubelet_rate:
                        self._store_kubelet_rate(pod, self.housekeeping.stats(pod))
                    else:
                        self._store(pod, self.housekeeping.stats(pod))
                    continue
                state = self.scrapes.get(pod)
                if state is None or state.incarnation != pod.restarts:
                    state = PodScrape(incarnation=pod.restarts)
                    self.scrapes[pod] = state
                cpu = pod.usage_now()
                if self.cpu_window_s is not None:
                    self._store_windowed(pod, state, now, cpu)
                    continue
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
        for pod in [p for p in self._window_starts if p.phase == "Gone"]:
            del self._window_starts[pod]

    def _read_window_starts(self):
        """Read every running container's counter ``cpu_window_s`` before each scrape (aligned loops)."""
        d, k = self.cpu_window_s, 0
        while True:
            at = self.first_scrape + k * self.resolution_s - d
            k += 1
            if at < self.env.now - SAME_INSTANT_S:
                continue  # before the run (or already past): that scrape has no window start
            yield self.env.timeout(max(0.0, at - self.env.now))
            for runtime in self.runtimes.values():
                for pod in runtime.pods:
                    if pod.phase == "Running" and pod.container_up:
                        self._window_starts.setdefault(pod, deque()).append((at, pod.restarts, pod.usage_now()))

    def _store_windowed(self, pod, state: PodScrape, now: float, cpu: float) -> None:
        """The rate over the ``cpu_window_s`` ending now, from the counter read at its start."""
        state.t_last, state.cpu_last, state.memory_bytes = now, cpu, pod.mem
        state.cpu_rate, state.window = None, 0.0
        starts = self._window_starts.get(pod)
        start = now - self.cpu_window_s
        while starts and starts[0][0] < start - SAME_INSTANT_S:
            starts.popleft()
        if starts and abs(starts[0][0] - start) <= SAME_INSTANT_S and starts[0][1] == state.incarnation:
            _, _, before = starts.popleft()
            state.t_prev, state.cpu_prev = start, before
            state.window = self.cpu_window_s
            state.cpu_rate = (cpu - before) / self.cpu_window_s
        if self.errors is not None:
            self._add_noise(state)

    def _store_kubelet_rate(self, pod, stats) -> None:
        """metrics-server 0.3 with the kubelet's ``usageNanoCores``: the latest sample's rate, replaced
        at each scrape; no rate (one sample) → the pod is not in the batch (see the module docstring)."""
        rate = None if stats is None or stats.t is None else stats.kubelet_rate()
        if rate is None:
            self.scrapes.pop(pod, None)
            return
        held = self.scrapes.get(pod)
        if held is not None and held.incarnation == stats.incarnation and held.t_last == stats.t:
            return  # the same sample again: the same values (and the same noise draw)
        state = PodScrape(t_prev=stats.t_before, cpu_prev=stats.before[0], t_last=stats.t, cpu_last=stats.cpu,
                          memory_bytes=stats.memory, incarnation=stats.incarnation, cpu_rate=rate,
                          window=KUBELET_RATE_WINDOW_S)
        self.scrapes[pod] = state
        if self.errors is not None:
            self._add_noise(state)

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
