"""Wires a Scenario into components: the only module that knows them all.

The build is where a valid scenario meets what the simulator can do: a feature the
scenario uses that no component models yet is reported here as a ScenarioError
("not supported yet") before anything runs — never silently ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from memstack_capacity.components.balancer import Balancer
from memstack_capacity.components.clock import Clock
from memstack_capacity.components.cluster import Cluster
from memstack_capacity.components.flows import Executor, compile_steps
from memstack_capacity.components.ingress import Ingress
from memstack_capacity.components.monitor import Monitor
from memstack_capacity.components.recorder import Recorder, RequestStats
from memstack_capacity.components.workload import ClosedPopulation, OpenSource, RequestMix
from memstack_capacity.engine.rng import Streams
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.models import Scenario


@dataclass
class Model:
    """The built system for one run."""

    scenario: Scenario
    seed: int
    env: simpy.Environment
    recorder: Recorder
    executor: Executor
    cluster: Cluster
    runtimes: dict
    ingress: Ingress
    source: object
    monitor: Monitor
    extensions: dict = field(default_factory=dict)


#: Hooks that later layers of the model register: ``extension(model, streams) -> None``.
#: Each adds handlers, processes and samplers for the part it models (datastores, workers, HPA, events).
EXTENSIONS: list = []


def _load_extensions() -> None:
    """Import the modules that register the model's optional parts (each appends to EXTENSIONS)."""
    import memstack_capacity.engine.des.datastores  # noqa: F401
    import memstack_capacity.engine.des.workers  # noqa: F401  (before the HPA: it reads the queue length)
    import memstack_capacity.engine.des.hpa  # noqa: F401
    import memstack_capacity.engine.des.events  # noqa: F401  (last: it wraps the datastore handlers, swaps HPA specs)


def build(scenario: Scenario, seed: int) -> Model:
    env = Clock()
    streams = Streams(seed)
    recorder = Recorder()
    executor = Executor()
    cluster = Cluster(env, scenario.cluster, recorder)
    runtimes: dict = {}
    from memstack_capacity.components.deployments import DeploymentRuntime

    def task_failed(task, status, reason):
        if task.kind == "request":
            ingress.fail(task, status, reason)
        elif task.kind == "job":
            model.extensions["jobs"].fail(task, status, reason)

    for name, spec in scenario.deployments.items():
        runtimes[name] = DeploymentRuntime(env, name, spec, cluster, executor, recorder, task_failed)
    api = runtimes["api"]
    balancer = Balancer(api, scenario.api.load_balancing, streams("balancer/api"))
    ingress = Ingress(env, api, balancer, scenario.workload.timeout, recorder)
    ingress.stats = RequestStats(len(scenario.workload.requests), scenario.warmup)
    recorder.requests.every = request_log_stride(scenario)

    programs = [compile_steps(c.steps, streams, f"requests/{c.name}") for c in scenario.workload.requests]
    mix = RequestMix(scenario.workload.requests, programs, streams("workload/mix"))
    wl = scenario.workload
    if wl.users is not None:
        source = ClosedPopulation(env, wl.users, mix, ingress, streams("workload/users"), scenario.duration)
    else:
        source = OpenSource(env, wl.arrivals, mix, ingress, streams("workload/arrivals"), scenario.duration)
    monitor = Monitor(env, scenario.sample_interval, recorder, runtimes, ingress)

    def task_done(task):
        kind = task.kind
        if kind == "request":
            ingress.complete(task)
        elif kind == "probe":
            if not task.owner.triggered:
                task.owner.succeed()
        else:
            model.extensions["jobs"].complete(task)

    executor.on_task_done = task_done
    model = Model(scenario, seed, env, recorder, executor, cluster, runtimes, ingress, source, monitor)
    model.extensions["programs"] = programs
    _load_extensions()
    for extension in EXTENSIONS:
        extension(model, streams)
    _reject_unsupported(model)
    return model


#: Most rows the per-request log keeps (about 26 bytes each in memory); beyond, every N-th.
REQUEST_LOG_LIMIT = 4_000_000


def expected_requests(scenario: Scenario) -> float:
    """An upper estimate of the requests a run will see, from its load profile."""
    wl = scenario.workload
    if wl.arrivals is not None:
        points = [(p.at, p.rps) for p in wl.arrivals.profile]
        per_s_think = 1.0
    else:
        points = [(p.at, float(p.users)) for p in wl.users.profile]
        per_s_think = 1.0 / max(wl.users.think_time.expected(), 1e-3)
    total, t_prev, v_prev = 0.0, 0.0, points[0][1]
    for t, v in points + [(scenario.duration, points[-1][1])]:
        t = min(t, scenario.duration)
        if t > t_prev:
            total += (t - t_prev) * (v_prev + v) / 2.0
            t_prev = t
        v_prev = v
    factor = max((e.traffic_spike.factor for e in scenario.events if getattr(e, "traffic_spike", None)), default=1.0)
    return total * per_s_think * factor


def request_log_stride(scenario: Scenario) -> int:
    """Keep every request when they fit under REQUEST_LOG_LIMIT; otherwise every N-th."""
    return max(1, math.ceil(expected_requests(scenario) / REQUEST_LOG_LIMIT))


def _reject_unsupported(model: Model) -> None:
    problems = []
    missing = model.executor.unsupported_kinds(model.extensions["programs"] + model.extensions.get("job_programs", []))
    for kind in sorted(missing):
        problems.append(Problem("workload", f"`{kind}` steps are not supported yet by this version of the simulator"))
    handled = model.extensions.get("event_kinds", set())
    for i, event in enumerate(model.scenario.events):
        if event.kind not in handled:
            problems.append(Problem(f"events[{i}].{event.kind}", "this event kind is not supported yet"))
    for name, dep in model.scenario.deployments.items():
        if dep.hpa is not None and "hpa" not in model.extensions:
            problems.append(Problem(f"deployments.{name}.hpa", "autoscaling is not supported yet"))
        if dep.consumes and "jobs" not in model.extensions:
            problems.append(Problem(f"deployments.{name}.consumes", "the worker tier is not supported yet"))
    if problems:
        raise ScenarioError(problems, model.scenario.name)
