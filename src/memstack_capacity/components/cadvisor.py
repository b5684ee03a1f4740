"""The kubelet's cAdvisor: each container's CPU counter and working set as of its last housekeeping.

What a real cluster does. metrics-server (0.6 and later) reads the kubelet's
``/metrics/resource``: per container the cumulative ``container_cpu_usage_seconds_total``
and the working set, each stamped with the time cAdvisor collected it
(``pkg/kubelet/metrics/collectors/resource_metrics.go``: ``NewLazyMetricWithTimestamp(s.CPU.Time…)``).
The kubelet takes them from cAdvisor's in-memory cache without asking for fresh stats
(``pkg/kubelet/stats``: ``getCadvisorContainerInfo`` asks for ``Count: 2`` and no ``MaxAge``,
so no on-demand housekeeping). That cache is filled by cAdvisor's per-container
housekeeping (google/cadvisor ``manager/container.go``, v0.52, the version the kubelet
vendors):

* ``housekeeping()`` arms its timer at 0 when the container is added, so the first sample is
  taken when the container appears, then ``houseKeepingTimer.Reset(nextHousekeepingInterval())``
  after each sample;
* ``nextHousekeepingInterval()``: with dynamic housekeeping, if the last two samples are
  equal (``StatsEq``: CPU, memory, …) and the interval is below the maximum, the interval
  doubles (capped at the maximum); otherwise it goes back to the baseline; then
  ``jitter(interval, 1.0)`` = ``interval + rand.Float64() × interval``, uniform on
  ``[interval, 2 × interval)``;
* the kubelet sets the baseline to 10 s (``pkg/kubelet/cadvisor/cadvisor_linux.go``:
  ``defaultHousekeepingInterval = 10 * time.Second``, flag ``--housekeeping-interval``), the
  maximum to 15 s (``maxHousekeepingInterval``) and dynamic housekeeping on
  (``allowDynamicHousekeeping = true``).

The simulator does the same per container: a sample (time, cumulative core-seconds, working
set) when the container comes up, then one at each jittered interval, with the dynamic
rule on the two latest samples (equal CPU counter and working set: an idle container; with
the kubelet's 10 s and 15 s an idle container alternates 15 s and 10 s before jitter, since at
the maximum the rule's first branch fails and its second resets the baseline). Each
sample is one control-plane event, so the batched data plane has played the pod up to that
instant (``Clock.before_step``). Each container incarnation draws its jitter from its own
stream (``kubelet/housekeeping/<pod>/<restarts>``), so one container's schedule never
depends on another's. A container already up at t = 0 (the initial pods, running for an
hour) is met in its stationary cycle: its first sample in the run comes after the forward
recurrence time of the jittered interval (:func:`residual`); the run has no usage before 0
to report, so it has no earlier sample.

The simulator's container starts (for metrics) when it comes up, after the image pull and
the application's start-up: that is when metrics-server first scrapes it, and a restarted
container starts a fresh cycle and counter there.
"""

from __future__ import annotations

import math

#: ``pkg/kubelet/cadvisor/cadvisor_linux.go``: maxHousekeepingInterval and allowDynamicHousekeeping.
KUBELET_MAX_HOUSEKEEPING_S = 15.0
KUBELET_DYNAMIC_HOUSEKEEPING = True
#: google/cadvisor ``manager/container.go``: ``jitter(cd.housekeepingInterval, 1.0)``.
JITTER_FACTOR = 1.0


class ContainerStats:
    """One container incarnation's housekeeping: its latest sample and the one before."""

    __slots__ = ("pod", "incarnation", "start", "base", "interval", "rng", "t", "cpu", "memory", "before", "t_before")

    def __init__(self, pod, start: float, base: float, interval: float, rng):
        self.pod = pod
        self.incarnation = pod.restarts
        self.start = start  # the container's start time (metrics-server's StartTime)
        self.base = base  # the pod's CPU counter when the container started: this counter's zero
        self.interval = interval  # cAdvisor's housekeepingInterval, before jitter
        self.rng = rng
        self.t: float | None = None  # the latest sample: when, core-seconds (the pod's counter), bytes
        self.cpu = 0.0
        self.memory = 0
        self.before: tuple | None = None  # (cpu, memory) of the sample before the latest
        self.t_before: float | None = None  # when that sample was taken

    def kubelet_rate(self) -> float | None:
        """The kubelet's ``usageNanoCores`` (in cores): cAdvisor's rate between its last two samples.

        kubernetes ``pkg/kubelet/stats/helper.go`` (``cadvisorInfoToCPUandMemoryStats``) serves
        ``cstat.CpuInst.Usage.Total`` of the latest sample, and google/cadvisor
        ``info/v2/conversion.go`` (``InstCpuStats(last, cur)``) computes it as the counter's
        increase over the time between the sample before and that one; with one sample there is
        no ``CpuInst`` (None).
        """
        if self.t_before is None:
            return None
        return (self.cpu - self.before[0]) / (self.t - self.t_before)


class Housekeeping:
    """cAdvisor's per-container housekeeping on every node (see the module docstring)."""

    def __init__(self, env, interval_s: float, stream_for, max_interval_s: float = KUBELET_MAX_HOUSEKEEPING_S,
                 dynamic: bool = KUBELET_DYNAMIC_HOUSEKEEPING):
        self.env = env
        self.interval_s = float(interval_s)
        self.max_interval_s = float(max_interval_s)
        self.dynamic = dynamic
        self.stream_for = stream_for  # name -> numpy Generator (engine/rng.py's stream for the run's seed)
        self.containers: dict = {}  # pod -> ContainerStats of its current container
        self.samples = 0

    def container_up(self, pod) -> None:
        """`pod`'s container came up: start its housekeeping (a container up before t = 0 mid-cycle)."""
        now = self.env.now
        rng = self.stream_for(f"kubelet/housekeeping/{pod.name}/{pod.restarts}")
        if pod.started_at < 0.0:  # up since before the run
            c = ContainerStats(pod, pod.started_at, pod.usage_now(), self.interval_s, rng)
            first = residual(rng, self.interval_s)
        else:
            c = ContainerStats(pod, now, pod.usage_now(), self.interval_s, rng)
            self._sample(c)
            first = self.next_interval(c)
        self.containers[pod] = c
        self.env.process(self._housekeep(c, first))

    def stats(self, pod) -> ContainerStats | None:
        """The latest housekeeping of `pod`'s current container (its ``t`` is None before the first)."""
        return self.containers.get(pod)

    def _housekeep(self, c: ContainerStats, delay: float):
        pod = c.pod
        while True:
            yield self.env.timeout(delay)
            if self.containers.get(pod) is not c:
                return  # a newer container of the pod has its own housekeeping
            if not pod.container_up or pod.phase == "Gone":
                del self.containers[pod]
                return
            self._sample(c)
            delay = self.next_interval(c)

    def _sample(self, c: ContainerStats) -> None:
        if c.t is not None:
            c.before, c.t_before = (c.cpu, c.memory), c.t
        c.t, c.cpu, c.memory = self.env.now, c.pod.usage_now(), int(c.pod.mem)
        self.samples += 1

    def next_interval(self, c: ContainerStats) -> float:
        """``nextHousekeepingInterval``: the dynamic rule on the last two samples, then the jitter."""
        if self.dynamic and c.before is not None:
            if c.before == (c.cpu, c.memory) and c.interval < self.max_interval_s:
                c.interval = min(2.0 * c.interval, self.max_interval_s)
            elif c.interval != self.interval_s:
                c.interval = self.interval_s
        return jitter(c.rng, c.interval)


def jitter(rng, interval: float) -> float:
    """cAdvisor's ``jitter(interval, 1.0)``: uniform on [interval, 2 × interval)."""
    return interval + float(rng.random()) * JITTER_FACTOR * interval


def residual(rng, interval: float) -> float:
    """Time to the next sample of a container observed at a random instant of its cycle.

    The intervals X are uniform on [I, 2I) (jitter factor 1), so the forward recurrence time
    has density (1 − F(x)) / E[X] (renewal theory): a length-biased interval, whose density is
    x / (E[X] · I) on [I, 2I) — drawn as I·√(1 + 3u) — cut at a uniform point. Its mean is
    E[X²] / (2 E[X]) = (7I²/3) / (3I) = 7I/9.
    """
    length = interval * math.sqrt(1.0 + 3.0 * float(rng.random()))
    return float(rng.random()) * length
