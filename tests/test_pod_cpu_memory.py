"""One pod's CPU and memory, by hand: processor sharing under a CPU limit, and the OOMKill's instant.

The theory tests check the pod's averages; these pin the two paths an average can hide.
Each case is worked out on paper in its docstring, and the pod is driven directly (no load
balancer, no workload) so the instants are exact:

- processor sharing within a process while the pod is held to ``limits.cpu`` by CFS bandwidth
  control (busy processes run a core each until the period's quota, ``limit × period``, is
  spent, then wait for the next period; a process's core is shared equally by its requests
  in a ``cpu`` step);
- the OOMKill: the container dies when ``memory_base`` plus what its in-flight requests hold
  *exceeds* ``limits.memory`` (cgroup v2 ``memory.max``: usage equal to the limit is allowed),
  counting the request being admitted — at the instant of that admission.
"""

from __future__ import annotations

import pytest
from factory import pod_scenario

from memstack_capacity.components.cfs import CfsSettings
from memstack_capacity.components.clock import Clock
from memstack_capacity.components.pods import Pod
from memstack_capacity.scenario.load import parse_scenario

MI = 2**20


class Task:
    """What a pod needs of a request: arrival, memory, liveness, and where it runs."""

    def __init__(self, name: str, t0: float, work: float = 0.0, mem: int = 0):
        self.name, self.t0, self.work, self.mem = name, t0, work, mem
        self.alive = True
        self.pod = self.proc = None


class Runtime:
    """The deployment and executor around one pod: runs each admitted task's one cpu step."""

    def __init__(self, clock: Clock, cfs: CfsSettings):
        self.clock = clock
        self.cluster = self
        self.cfs = cfs
        self.executor = self
        self.pod: Pod | None = None
        self.done: dict[str, float] = {}
        self.deaths: list[tuple[float, str, int]] = []

    def start(self, task: Task) -> None:
        if task.work:
            self.pod.cpu_start(task.proc, task, task.work)

    def advance(self, task: Task) -> None:
        self.done[task.name] = self.clock.now
        self.pod.release(task)

    def container_died(self, pod: Pod, reason: str) -> None:
        self.deaths.append((self.clock.now, reason, pod.mem))


#: The kubelet's defaults, with each container's periods starting when it starts (so at t = 0 here).
ALIGNED = CfsSettings(enforce=True, period=0.1, burst=0.0, phase="container_start", rng=None)


def make_pod(*, processes: int, concurrency: int, cpu_limit: float, memory_base="0", memory_limit="64Gi", cfs=ALIGNED):
    data = pod_scenario(1.0, 0.01, processes=processes, concurrency=concurrency, cpu_limit=cpu_limit)
    api = data["deployments"]["api"]
    api["memory_base"] = memory_base
    api["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}
    spec = parse_scenario(data).deployments["api"]
    clock = Clock()
    runtime = Runtime(clock, cfs)
    runtime.pod = Pod(clock, runtime, 0, "api-0", spec)
    return clock, runtime, runtime.pod


def test_processor_sharing_within_processes_held_to_the_cpu_limit():
    """Two processes, ``limits.cpu: 500m`` (a quota of 50 ms per 100 ms period, periods from t = 0);
    at t = 0 A (1.0 s of CPU) and C (0.5 s) go to process 0, B (0.75 s) to process 1 (admission:
    the process with the fewest in flight, the first on a tie).

    Both processes busy spend the quota in 25 ms: per period B gets 25 ms, A and C 12.5 ms each.
    B has its 0.75 s after 30 periods, at 2.9 + 0.025 = 2.925 s; A and C have 0.625 and 0.125 s
    left, and the quota is spent until 3.0 s. Then process 0 alone runs 50 ms a period, 25 ms
    each: C's 0.125 s take 5 periods, to 3.4 + 0.05 = 3.45 s; A's last 0.5 s, alone from 3.5 s,
    10 periods, to 4.4 + 0.05 = 4.45 s. (A fluid cap at 0.5 core would end them at 3, 3.5 and
    4.5 s.) 2.25 core-seconds; throttled 75 ms in each of the first 30 periods and 50 ms in 14 of
    the next 15 (not the last: nothing waits after A): 2.95 s; 45 periods, 44 throttled.
    """
    clock, runtime, pod = make_pod(processes=2, concurrency=2, cpu_limit=0.5)
    assert not pod.independent
    for task in (Task("A", 0.0, 1.0), Task("B", 0.0, 0.75), Task("C", 0.0, 0.5)):
        assert pod.submit(task)
    assert [p.inflight for p in pod.procs] == [2, 1]
    clock.run(until=10.0)
    assert runtime.done == pytest.approx({"A": 4.45, "B": 2.925, "C": 3.45}, abs=1e-9)
    assert pod.usage_now() == pytest.approx(2.25, abs=1e-9)
    assert pod.throttled_s == pytest.approx(2.95, abs=1e-9) and pod.busy_s == pytest.approx(4.45, abs=1e-9)
    assert pod.cfs_counts() == (45, 44)


def test_cpu_limits_not_enforced():
    """``cpu-cfs-quota: false``: the same requests run as with no limit (one core per process)."""
    off = CfsSettings(enforce=False, period=0.1, burst=0.0, phase="container_start", rng=None)
    clock, runtime, pod = make_pod(processes=2, concurrency=2, cpu_limit=0.5, cfs=off)
    assert pod.independent and pod.bandwidth is None
    for task in (Task("A", 0.0, 1.0), Task("B", 0.0, 0.75), Task("C", 0.0, 0.5)):
        assert pod.submit(task)
    clock.run(until=10.0)
    assert runtime.done == pytest.approx({"A": 1.5, "B": 0.75, "C": 1.0}, abs=1e-12)
    assert pod.throttled_s == 0.0 and pod.cfs_counts() == (0, 0)


def test_processor_sharing_with_a_limit_that_cannot_bind():
    """The same three requests under ``limits.cpu: 2`` (one core per process, each process alone):
    B runs at a full core and ends at 0.75 s; A and C share process 0's core, 0.5 each, so C ends
    at 1.0 s and A, alone for its last 0.5 s, at 1.5 s. 2.25 core-seconds, nothing throttled."""
    clock, runtime, pod = make_pod(processes=2, concurrency=2, cpu_limit=2.0)
    assert pod.independent
    for task in (Task("A", 0.0, 1.0), Task("B", 0.0, 0.75), Task("C", 0.0, 0.5)):
        assert pod.submit(task)
    clock.run(until=10.0)
    assert runtime.done == pytest.approx({"A": 1.5, "B": 0.75, "C": 1.0}, abs=1e-12)
    assert pod.usage_now() == pytest.approx(2.25, abs=1e-12)
    assert pod.throttled_s == 0.0


def test_a_new_request_joins_the_share_at_its_arrival():
    """One process, no limit: A (1 s) alone until D (0.2 s) arrives at 0.6 s with A 0.4 s short.
    Shared, each at 0.5: D ends at 0.6 + 0.4 = 1.0 s with A 0.2 s short, which A, alone, runs by 1.2 s."""
    clock, runtime, pod = make_pod(processes=1, concurrency=4, cpu_limit=1.0)
    assert pod.submit(Task("A", 0.0, 1.0))
    clock.run(until=0.6)
    assert pod.submit(Task("D", 0.6, 0.2))
    clock.run(until=5.0)
    assert runtime.done == pytest.approx({"A": 1.2, "D": 1.0}, abs=1e-12)


@pytest.mark.parametrize(
    ("base", "killed_at", "mem_at_kill"),
    [
        ("100Mi", 1.0, 220 * MI),  # 100 + 60 = 160 ≤ 200; the second: 220 > 200
        ("80Mi", 2.0, 260 * MI),  # 80 + 60 + 60 = 200 = the limit, allowed; the third: 260 > 200
    ],
)
def test_the_oomkill_comes_with_the_admission_that_crosses_the_limit(base, killed_at, mem_at_kill):
    """``limits.memory: 200Mi``; requests of 60Mi, each holding its memory while in flight (no CPU,
    so none ends), admitted at t = 0, 1, 2. The container dies at the admission that takes the
    working set past the limit — counting that request — and at no other instant."""
    clock, runtime, pod = make_pod(processes=1, concurrency=10, cpu_limit=1.0, memory_base=base, memory_limit="200Mi")
    for t in (0.0, 1.0, 2.0):
        if t:
            clock.run(until=t)
        if runtime.deaths:
            break
        pod.submit(Task(f"r{t:g}", t, mem=60 * MI))
    assert runtime.deaths == [(killed_at, "oom_killed", mem_at_kill)]
    assert pod.mem_peak == mem_at_kill


# ---- background CPU under a binding quota ----------------------------------------------------------
def make_background_pod(background: float, cpu_limit: float = 0.5):
    data = pod_scenario(1.0, 0.01, processes=1, concurrency=1, cpu_limit=cpu_limit)
    api = data["deployments"]["api"]
    api["background_cpu"] = background
    api["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": cpu_limit, "memory": "64Gi"}}
    spec = parse_scenario(data).deployments["api"]
    clock = Clock()
    runtime = Runtime(clock, ALIGNED)
    runtime.pod = pod = Pod(clock, runtime, 0, "api-0", spec)
    pod.set_container_up(True)
    return clock, runtime, pod


def test_background_cpu_spends_the_quota_beside_the_request():
    """``limits.cpu: 500m`` (50 ms per 100 ms period from t = 0) and ``background_cpu: 100m``: while
    the lone 130 ms request runs, the container spends its runtime at 1.1 cores, so each period's
    50 ms last 50/1.1 = 45.45 ms, of which the request gets 45.45 ms and the background 4.55 ms.
    After two periods the request has 90.91 ms; the third period's 39.09 ms finish it at
    200 + 39.09 = 239.09 ms (the background alone, 100m, never spends a quota of 500m after that).
    Throttled: 2 × (100 − 45.45) = 109.09 ms. At 1 s the usage is 130 ms of the request plus the
    background's 100m over the 1 s less its throttled time: 130 + 0.1 × (1000 − 109.09) ms."""
    clock, runtime, pod = make_background_pod(0.1)
    pod.submit(Task("lone", 0.0, work=0.13))
    clock.run(until=1.0)
    assert runtime.done["lone"] == pytest.approx(0.2 + 0.13 - 0.1 / 1.1, abs=1e-9)
    assert pod.usage_now() == pytest.approx(0.13 + 0.1 * (1.0 - 2 * (0.1 - 0.05 / 1.1)), abs=1e-9)
    assert pod.throttled_s == pytest.approx(2 * (0.1 - 0.05 / 1.1), abs=1e-9)


def test_background_cpu_alone_is_held_to_the_limit():
    """``background_cpu: 800m`` under ``limits.cpu: 500m``: each period's 50 ms of quota last 62.5 ms at
    0.8 cores, then the container waits 37.5 ms. Over ten periods the background gets 0.5 s (the
    limit, not its 0.8 s), 0.375 s throttled, every period active and throttled."""
    clock, runtime, pod = make_background_pod(0.8)
    clock.run(until=1.0)
    assert pod.usage_now() == pytest.approx(0.5, abs=1e-9)
    assert pod.throttled_s == pytest.approx(0.375, abs=1e-9)
    assert pod.cfs_counts() == (10, 10)
