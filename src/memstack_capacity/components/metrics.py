"""metrics-server: what the HPA can see of a pod's CPU and memory.

Every ``metrics_resolution`` seconds it scrapes each running container's cumulative CPU
counter and its working set. The CPU it reports is the average rate between the last two
scrapes (so a pod needs two scrapes before it has a CPU sample), with ``timestamp`` the
last scrape and ``window`` the time between them; memory is the working set at the last
scrape (hpa-spec.md §9). A restarted container starts its counters afresh.
"""

from __future__ import annotations

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

    def __init__(self, env, resolution_s: float, runtimes: dict):
        self.env = env
        self.resolution_s = resolution_s
        self.runtimes = runtimes
        self.scrapes: dict = {}

    def run(self):
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
        for pod in [p for p in self.scrapes if p.phase == "Gone"]:
            del self.scrapes[pod]

    def sample(self, pod):
        """(cpu cores or None, window, timestamp, memory bytes or None) as the metrics API serves it."""
        state = self.scrapes.get(pod)
        if state is None:
            return None, 0.0, 0.0, None
        return state.cpu_rate, state.window, state.t_last, state.memory_bytes
