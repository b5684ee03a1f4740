"""Completions late in a long run, when a job's remaining time is below the clock's resolution.

At t = 16 384 s a double resolves 3.6e-12 s; a job with 1.5e-12 s of CPU left (above the 1e-12 tolerance, below half an ulp) would be scheduled
at ``now + 1.5e-12 == now`` and, if it were not treated as due, fire at the same instant forever
(a 24-hour run once stalled exactly so). Each completion path must finish such a job at once.
"""

from __future__ import annotations

from heapq import heappop
from types import SimpleNamespace

from memstack_capacity.components.cfs import CfsSettings
from memstack_capacity.components.clock import Clock
from memstack_capacity.components.flows import Flow, Task
from memstack_capacity.components.pods import Pod
from memstack_capacity.components.datastores.pools import PSServer
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario

LATE = 16384.0


def _bounded_run(env: Clock, until: float, max_events: int = 10_000) -> int:
    """Step the data-plane heap one callback at a time; fail instead of hanging when events
    keep firing without the clock moving."""
    count = 0
    while env.dp_heap and env.dp_heap[0][0] < until:
        count += 1
        assert count < max_events, f"stuck at t={env._now!r}: the same instant fires again and again"
        env._now, _, fn, arg = heappop(env.dp_heap)
        fn(arg)
    return count


def _pod(env, cpu_limit: float):
    spec = parse_scenario(pod_scenario(1.0, 0.01, processes=2, cpu_limit=cpu_limit, duration=60.0, warmup=1.0)).api
    done = []
    cfs = CfsSettings(enforce=True, period=0.1, burst=0.0, phase="container_start", rng=None)
    runtime = SimpleNamespace(executor=SimpleNamespace(advance=done.append), container_died=lambda *a: None,
                              cluster=SimpleNamespace(cfs=cfs))
    return Pod(env, runtime, 0, "api-0", spec), done


def _start(pod, work: float):
    task = Task("request", 0, pod.env.now, None, 0, ())
    task.pod, task.proc = pod, pod.procs[0]
    flow = Flow(task, (), None)
    pod.cpu_start(pod.procs[0], flow, work)
    return flow


def test_independent_process_finishes_a_sub_ulp_job():
    env = Clock(initial_time=LATE)
    pod, done = _pod(env, cpu_limit=2.0)  # limit >= processes: independent clocks
    flow = _start(pod, 1.5e-12)
    _bounded_run(env, LATE + 1.0)
    assert done == [flow]


def test_coupled_processes_finish_a_sub_ulp_job():
    env = Clock(initial_time=LATE)
    pod, done = _pod(env, cpu_limit=1.0)  # 2 processes held to 1 core: the pod-level timer
    flow = _start(pod, 1.5e-12)
    _bounded_run(env, LATE + 1.0)
    assert done == [flow]


def test_database_server_finishes_a_sub_ulp_query():
    env = Clock(initial_time=LATE)
    server = PSServer(env, cores=2)
    done = []
    server.submit(1.5e-12, done.append, "q")
    _bounded_run(env, LATE + 1.0)
    assert done == ["q"]
