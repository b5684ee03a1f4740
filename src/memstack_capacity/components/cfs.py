"""CFS bandwidth control of one container: a CPU quota per period, and throttling when it is spent.

What Linux does (Documentation/scheduler/sched-bwc.rst): a cgroup gets ``quota`` CPU-seconds
of runtime per ``period``. Its threads run on as many cores as they can get until the runtime
is spent; then the whole group is throttled until the period ends, when the runtime is refilled
— to at most ``quota + burst`` (``cpu.cfs_burst_us``: unused runtime a group may carry over).
The kubelet sets ``quota = limits.cpu × period``, with ``period`` its ``--cpu-cfs-quota-period``
(100 ms by default), and no burst. A lone 130 ms request under a 500m limit therefore runs
50 ms, waits 50 ms, runs 50 ms, waits, runs 30 ms: 230 ms, not the 260 ms of a fluid cap.

Here a busy process is one runnable thread on its own core, so ``b`` busy processes spend the
runtime at ``b`` CPU-seconds per second; between two changes of ``b`` the arithmetic is exact.
Period boundaries sit at ``phase + k × period``: the kernel's period timer runs on its own
clock, so a container's phase against its requests is arbitrary (drawn per container), or
the container's start for the aligned case the closed forms use.
"""

from __future__ import annotations

import math

#: CPU-seconds short of a job's work that still count as done within a period: the rounding of
#: summing a period's shares (0.1 − 3 × 0.025 is not 0.025) must not push a completion into
#: the next period, a whole throttled gap later. The pod's completion check has the same slack.
_WORK_TOL = 1e-12


class Bandwidth:
    """One container's CFS runtime: what is left in the current period, and the period counters.

    ``nr_periods`` counts periods in which the container had a runnable thread and
    ``nr_throttled`` those in which it was throttled (cgroup ``cpu.stat``; cAdvisor's
    ``container_cpu_cfs_periods_total`` and ``container_cpu_cfs_throttled_periods_total``).
    """

    __slots__ = ("period", "quota", "cap", "phase", "k", "runtime", "nr_periods", "nr_throttled",
                 "_last_active", "_last_throttled")  # fmt: skip

    def __init__(self, limit: float, period: float, burst: float, phase: float, now: float):
        self.period = period
        self.quota = limit * period
        self.cap = self.quota + burst
        self.phase = phase
        self.k = self._index(now)
        self.runtime = self.quota
        self.nr_periods = 0
        self.nr_throttled = 0
        self._last_active = self.k - 1
        self._last_throttled = self.k - 1

    def _end(self, k: int) -> float:
        """When period ``k`` ends (and ``k + 1`` starts)."""
        return self.phase + (k + 1) * self.period

    def _index(self, t: float) -> int:
        """The period that holds instant ``t``; an instant on a boundary belongs to the period it ends."""
        k = math.floor((t - self.phase) / self.period)
        while self._end(k) < t:
            k += 1
        while self._end(k - 1) >= t:
            k -= 1
        return k

    def _binds(self, rate: float) -> bool:
        return self.quota < rate * self.period

    def idle(self, t: float) -> None:
        """Nothing ran up to ``t``: every period boundary since refilled the runtime."""
        k = self._index(t)
        if k > self.k:
            self.runtime = min(self.runtime + (k - self.k) * self.quota, self.cap)
            self.k = k

    def run(self, t0: float, t: float, busy: int, speed: float = 1.0, extra: float = 0.0) -> tuple[float, float]:
        """``busy`` threads were runnable from ``t0`` to ``t``, each running at ``speed`` cores while
        the container is not throttled (1 unless the node's cores are shared, :mod:`.nodecpu`), and
        the container's background work wanted ``extra`` cores beside them; returns the CPU-seconds
        each thread got and the time the container spent throttled (the background got ``extra``
        cores for the rest of the time)."""
        rate = busy * speed + extra
        served = throttled = 0.0
        k, runtime, cur = self.k, self.runtime, t0
        while True:
            end = self._end(k)
            stop = t if t <= end else end
            if stop > cur:
                if k != self._last_active:
                    self._last_active = k
                    self.nr_periods += 1
                ran = min(stop - cur, runtime / rate) if runtime > 0.0 else 0.0
                served += ran * speed
                runtime = 0.0 if ran == runtime / rate else runtime - ran * rate
                if cur + ran < stop:
                    throttled += stop - (cur + ran)
                    if k != self._last_throttled:
                        self._last_throttled = k
                        self.nr_throttled += 1
            if t <= end:
                break
            cur, k, runtime = end, k + 1, min(runtime + self.quota, self.cap)
            if not self._binds(rate) and t > self._end(k):
                k, runtime = self._unthrottled_periods(k, runtime, t, rate)
                served += (self._end(k - 1) - cur) * speed
                cur = self._end(k - 1)
        self.k, self.runtime = k, runtime
        return served, throttled

    def _unthrottled_periods(self, k: int, runtime: float, t: float, rate: float) -> tuple[int, float]:
        """Skip the whole periods before ``t`` in which threads spending ``rate`` CPU-seconds per
        second cannot spend the runtime: each one is active, none throttled, and the runtime grows
        by ``quota − rate × period``."""
        last = self._index(t)
        n = last - k
        self.nr_periods += n
        self._last_active = last - 1
        runtime = min(runtime + n * (self.quota - rate * self.period), self.cap)
        return last, runtime

    def due(self, t0: float, work: float, busy: int, speed: float = 1.0, extra: float = 0.0) -> float:
        """When each of ``busy`` runnable threads, at ``speed`` cores each while not throttled (the
        background spending ``extra`` more), will have had ``work`` more CPU-seconds, from ``t0``."""
        rate = busy * speed + extra
        k, runtime, cur = self.k, self.runtime, t0
        while True:
            end = self._end(k)
            if runtime > 0.0:
                can = min(end - cur, runtime / rate)
                if can * speed >= work - _WORK_TOL:
                    return cur + min(work / speed, can)
                work -= can * speed
                runtime = 0.0 if can == runtime / rate else runtime - can * rate
            cur, k, runtime = end, k + 1, min(runtime + self.quota, self.cap)
            if not self._binds(rate):
                return cur + work / speed

    def throttled_from(self, t: float) -> bool:
        """Whether the container is throttled just after ``t`` (its runtime brought up to ``t``)."""
        if t >= self._end(self.k):
            return False  # a period boundary: the runtime is refilled
        return self.runtime <= _WORK_TOL

    def next_change(self, t: float, busy: int, speed: float, extra: float = 0.0) -> float:
        """When the container next starts or stops being throttled, ``busy`` threads running at
        ``speed`` and the background at ``extra`` from ``t`` (its runtime brought up to ``t``); inf
        when it never binds."""
        rate = busy * speed + extra
        k, runtime, cur = self.k, self.runtime, t
        if cur >= self._end(k):
            k, runtime = k + 1, min(runtime + self.quota, self.cap)
        if runtime <= _WORK_TOL:
            return self._end(k)
        while True:
            end = self._end(k)
            out = cur + runtime / rate
            if out < end:
                return out if out > cur else end
            if not self._binds(rate):
                return math.inf
            runtime = min(runtime - (end - cur) * rate + self.quota, self.cap)
            cur, k = end, k + 1


class CfsSettings:
    """The cluster's CFS settings, and the phase of each new container's period timer."""

    def __init__(self, enforce: bool, period: float, burst: float, phase: str, rng):
        self.enforce = enforce
        self.period = period
        self.burst = burst
        self.phase = phase
        self.rng = rng

    @classmethod
    def from_cluster(cls, spec, rng) -> CfsSettings:
        return cls(spec.cpu_cfs_quota, spec.cpu_cfs_quota_period, spec.cpu_cfs_burst, spec.cpu_cfs_phase, rng)

    def limit(self, limit_cores: float | None) -> float:
        """The CPU limit the container is held to: none without one or when quotas are not enforced."""
        return math.inf if limit_cores is None or not self.enforce else limit_cores

    def bandwidth(self, limit: float, processes: int, now: float, background: float = 0.0) -> Bandwidth | None:
        """A new container's runtime; None when its quota cannot bind (a limit of at least one core per
        process, plus what the container burns in the background)."""
        if limit >= processes + background:
            return None
        phase = self.rng.uniform(0.0, self.period) if self.phase == "random" else now % self.period
        return Bandwidth(limit, self.period, self.burst, phase, now)
