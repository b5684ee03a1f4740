"""A node's cores shared by its pods in proportion to ``requests.cpu`` when they want more.

References:
- Kubernetes ``MilliCPUToShares`` (pkg/kubelet/cm/helpers_linux.go): ``cpu.shares =
  milliCPU × 1024 / 1000``, at least ``MinShares = 2``; its unit test cases are pinned below.
- Linux CFS group scheduling (Documentation/scheduler/sched-design-CFS.rst): runnable groups get
  CPU time in proportion to their weights; a group needing less leaves the rest to the others
  (weighted max–min fairness). Two pods weighted 1:3 on one busy core get 25 % and 75 %.
- CFS bandwidth control (Documentation/scheduler/sched-bwc.rst): a throttled group is not
  runnable until its period ends, so its share goes to the others meanwhile.
- Erlang C (M/M/c): a pod of four one-thread processes on a node of two cores serves at
  ``min(n, 2) μ`` with ``n`` requests in service — exactly the birth–death chain of M/M/2.

Each timeline below is worked out on paper in its docstring; the pods are driven directly so the
instants are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from factory import mean_and_se, measured, pod_scenario, run_seeds

from memstack_capacity import simulate
from memstack_capacity.components.cfs import CfsSettings
from memstack_capacity.components.clock import Clock
from memstack_capacity.components.cluster import Node
from memstack_capacity.components.nodecpu import cpu_shares, weighted_shares
from memstack_capacity.components.pods import Pod
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.findings import findings
from memstack_capacity.scenario.load import parse_scenario
from memstack_capacity.theory import queueing as theory

ALIGNED = CfsSettings(enforce=True, period=0.1, burst=0.0, phase="container_start", rng=None)


class Task:
    def __init__(self, name: str, work: float):
        self.name, self.t0, self.work, self.mem = name, 0.0, work, 0
        self.alive = True
        self.pod = self.proc = None


class Runtime:
    """The deployment and executor around one pod: runs each admitted task's one cpu step."""

    def __init__(self, clock: Clock, done: dict):
        self.clock, self.cluster, self.cfs, self.executor = clock, self, ALIGNED, self
        self.pod: Pod | None = None
        self.done = done

    def start(self, task: Task) -> None:
        self.pod.cpu_start(task.proc, task, task.work)

    def advance(self, task: Task) -> None:
        self.done[task.name] = self.clock.now
        self.pod.release(task)


def make_pod(clock: Clock, done: dict, name: str, *, request: str, limit: float | None = None, processes: int = 1):
    data = pod_scenario(1.0, 0.01, processes=processes)
    data["deployments"]["api"]["resources"] = {"requests": {"cpu": request, "memory": "64Mi"},
                                               "limits": {"cpu": limit if limit is not None else processes,
                                                          "memory": "64Gi"}}
    spec = parse_scenario(data).deployments["api"]
    runtime = Runtime(clock, done)
    runtime.pod = pod = Pod(clock, runtime, 0, name, spec)
    pod.container_up = True
    pod.phase = "Running"
    return pod


def on_node(cores: float, *pods) -> Node:
    node = Node("node-0", cores, 2**40)
    for pod in pods:
        node.cores.bind(pod)
    return node


def test_cpu_shares_follow_the_kubelet():
    """MilliCPUToShares and its test table: 0 → 2 (MinShares), 1m → 2, 2m → 2, 500m → 512, 1 → 1024."""
    assert [cpu_shares(c) for c in (None, 0.0, 0.001, 0.002, 0.01, 0.5, 1.0, 1.5, 4.0)] == \
        [2, 2, 2, 2, 10, 512, 1024, 1536, 4096]


def test_weighted_shares_water_fill():
    """1:3 on one core gives 25 %/75 %; a group wanting less than its share keeps only what it wants,
    and the others split the rest by weight."""
    assert weighted_shares(1.0, [1.0, 1.0], [256, 768]) == pytest.approx([0.25, 0.75])
    assert weighted_shares(1.0, [0.1, 1.0, 1.0], [1, 1, 1]) == pytest.approx([0.1, 0.45, 0.45])
    assert weighted_shares(4.0, [1.0, 3.0, 2.0], [1, 1, 2]) == pytest.approx([1.0, 1.0, 2.0])
    assert weighted_shares(8.0, [1.0, 3.0], [1, 5]) == [1.0, 3.0]  # room for everyone: nothing shared
    assert weighted_shares(2.0, [0.0, 3.0], [5, 1]) == [0.0, 2.0]  # an idle group takes nothing


def test_two_pods_weighted_1_to_3_share_a_busy_core():
    """One core; A requests 250m, B 750m; each has one job of 1 s of CPU at t = 0 and no limit.
    B runs at 0.75 core and finishes at 1/0.75 = 4/3 s; by then A has had 1/3 s and runs its other
    2/3 s alone at full speed: done at 2 s. The core was never idle: 2 CPU-seconds in 2 s."""
    clock, done = Clock(), {}
    a = make_pod(clock, done, "a", request="250m")
    b = make_pod(clock, done, "b", request="750m")
    node = on_node(1.0, a, b)
    a.submit(Task("a", 1.0))
    b.submit(Task("b", 1.0))
    assert node.cores.contended
    clock.run(until=10.0)
    assert done["b"] == pytest.approx(4 / 3, abs=1e-9)
    assert done["a"] == pytest.approx(2.0, abs=1e-9)
    assert a.usage_now() == pytest.approx(1.0, abs=1e-9) and b.usage_now() == pytest.approx(1.0, abs=1e-9)
    assert not node.cores.contended and node.cores.contended_time(clock.now) == pytest.approx(4 / 3, abs=1e-9)


def test_a_throttled_pod_leaves_its_share_to_the_others():
    """One core; A requests 250m (no limit), B 500m with ``limits.cpu: 500m`` (50 ms of quota per
    100 ms period, periods from t = 0): weights 1:2. A has 0.3 s of CPU to do, B 0.2 s. In each
    period B runs at 2/3 core until its 50 ms are spent, at 75 ms, while A gets 1/3 (25 ms); then B
    is throttled and A has the core for the period's last 25 ms: 50 ms each per period. After three
    periods each has 150 ms; in the fourth B spends its last 50 ms by 375 ms (done), A has 25 ms more
    by then and runs its last 125 ms alone: done at 500 ms. B was throttled 25 ms in each of the
    first three periods: 75 ms in all, 3 throttled periods of 4."""
    clock, done = Clock(), {}
    a = make_pod(clock, done, "a", request="250m")
    b = make_pod(clock, done, "b", request="500m", limit=0.5)
    on_node(1.0, a, b)
    a.submit(Task("a", 0.3))
    b.submit(Task("b", 0.2))
    clock.run(until=10.0)
    assert done["b"] == pytest.approx(0.375, abs=1e-9)
    assert done["a"] == pytest.approx(0.5, abs=1e-9)
    b.usage_now()
    assert b.throttled_s == pytest.approx(0.075, abs=1e-9)
    assert b.cfs_counts() == (4, 3)


def test_room_for_every_thread_changes_nothing():
    """Two cores, two one-thread pods of 1 s each: each has a core, both done at 1 s, never contended."""
    clock, done = Clock(), {}
    a = make_pod(clock, done, "a", request="250m")
    b = make_pod(clock, done, "b", request="750m", processes=2)
    node = on_node(2.0, a, b)
    assert node.cores.watched  # three threads could want two cores
    a.submit(Task("a", 1.0))
    b.submit(Task("b", 1.0))
    clock.run(until=10.0)
    assert done == {"a": 1.0, "b": 1.0}
    assert node.cores.contended_time(clock.now) == 0.0


def test_threads_of_one_pod_share_its_allocation():
    """One pod of four processes on two cores, four jobs of 1 s at t = 0: each thread gets half a
    core, all done at 2 s (four CPU-seconds on two cores)."""
    clock, done = Clock(), {}
    pod = make_pod(clock, done, "p", request="500m", processes=4)
    on_node(2.0, pod)
    for i in range(4):
        pod.submit(Task(f"t{i}", 1.0))
    clock.run(until=10.0)
    assert sorted(done.values()) == pytest.approx([2.0] * 4, abs=1e-9)


def test_four_processes_on_two_cores_are_an_mm2_queue():
    """Erlang C (Gross & Harris §2.3): with n requests in service the node gives min(n, 2) cores, so
    the pod is M/M/2 at ρ = 0.8: W = 1/μ + C(2, 1.6)/(2μ − λ) = 27.78 ms (M/M/4 would give 10.7 ms).
    Five seeds of 600 s at 160 req/s; the seeds' means must be within four standard errors of W
    (and the standard error under 3 % of it). The node's utilisation is λ/(2μ) = 0.8, and it is
    contended (more than two requests in service) with probability P(n > 2) = C(2, 1.6) × ρ = 0.569."""
    lam, mu = 160.0, 100.0
    data = pod_scenario(lam, 1 / mu, processes=4, concurrency=1)
    data["cluster"] = {"nodes": 1, "node": {"cpu": 2, "memory": "32Gi"}}
    results = run_seeds(data, range(1, 6))
    expected = theory.mmc(lam, mu, 2)
    assert expected.w_s == pytest.approx(0.027778, rel=1e-4)
    mean, se = mean_and_se([measured(r).latency_s.mean() for r in results])
    assert se < 0.03 * expected.w_s
    assert abs(mean - expected.w_s) < 4 * se
    warm = data["warmup"]
    util = [r.series["node-0/cpu_utilization"].loc[warm + 1:].mean() for r in results]
    assert np.mean(util) == pytest.approx(lam / (2 * mu), rel=0.02)
    contended = [r.series["node-0/cpu_contended_fraction"].loc[warm + 1:].mean() for r in results]
    p_wait = theory.erlang_c(2, lam / mu)
    assert p_wait * 0.8 == pytest.approx(0.569, abs=1e-3)
    assert np.mean(contended) == pytest.approx(p_wait * 0.8, abs=0.02)
    node = results[0].summary["nodes"]["by_node"]["node-0"]
    assert node["contended_fraction"] == pytest.approx(p_wait * 0.8, abs=0.03)
    assert node["cpu_utilization_max"] <= 1.0 + 1e-9  # never more than the node's cores
    said = [f.key for f in findings(results[0].scenario, results[0].summary, results[0].series)]
    assert "node_contention" in said


def test_engines_that_play_pods_alone_refuse_a_node_that_can_fill():
    """The per-pod kernel and the batched data plane advance each pod alone; a scenario whose node
    could run more threads than it has cores goes to the general engine (and the flow model says it
    leaves contention out)."""
    data = pod_scenario(100.0, 0.01, processes=4)
    data["cluster"] = {"nodes": 1, "node": {"cpu": 2, "memory": "32Gi"}}
    scenario = parse_scenario(data)
    for engine in ("kernel", "hybrid"):
        assert any("oversubscribe" in r for r in reasons(scenario, engine))
    assert reasons(scenario, "des") == []
    spread = pod_scenario(100.0, 0.01, processes=1, replicas=12)  # 12 one-thread pods over 6 nodes of 8 cores
    assert not any("oversubscribe" in r for r in reasons(parse_scenario(spread), "kernel"))


def test_a_node_crowded_during_the_run_sends_the_run_to_the_general_engine(capsys):
    """Two one-thread pods on two nodes of one core (requests 500m: two fit a node): one per node, so
    nothing can fill and the fast planes take the scenario. The pods are saturated (3 req/s of 0.5 s
    each), so the one a pod_kill deletes at 5 s is still draining its requests when the scheduler
    puts its replacement beside a pod still bound (least allocated, ties by name), and that node
    could run two threads on one core. Neither the compiled nor the batched data plane shares a
    node's cores, so ``auto`` (which takes the compiled plane) reruns on the general engine and says
    so on stderr; naming either plane is refused with the reason (a ScenarioError: exit 2 at the CLI)."""
    data = pod_scenario(6.0, 0.5, processes=1, replicas=2, duration=30.0, warmup=0.0)
    data["cluster"] = {"nodes": 2, "node": {"cpu": 1, "memory": "32Gi"}}
    data["events"] = [{"at": 5, "pod_kill": {"count": 1}}]
    scenario = parse_scenario(data)
    assert reasons(scenario, "hybrid") == [] and reasons(scenario, "fast") == []
    result = simulate(scenario, seed=1)
    assert "compiled data plane cannot share a node's cores" in capsys.readouterr().err
    assert result.record.engine == "des"
    on_des = simulate(scenario, seed=1, engine="des")
    assert result.summary["requests"] == on_des.summary["requests"]
    assert result.summary["nodes"] == on_des.summary["nodes"]
    for engine in ("hybrid", "fast"):
        with pytest.raises(ScenarioError, match="cannot share a node's cores"):
            simulate(scenario, seed=1, engine=engine)
