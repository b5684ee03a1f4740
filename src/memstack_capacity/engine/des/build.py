"""Assembles a Scenario into components: the one place that knows them all and wires them.

Every call one component makes to another is set up here, in plain code: the executor's
step handlers (CPU, datastores, the job queue), what happens when a task fails or ends
(the ingress or the job queue answers; session connections go back), what a dead
container takes with it (its processes' pools), the monitor's samplers. A step kind no
component serves is a ScenarioError before anything runs, never silently ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from memstack_capacity.components.balancer import Balancer
from memstack_capacity.components.cadvisor import Housekeeping
from memstack_capacity.components.cfs import CfsSettings
from memstack_capacity.components.clock import Clock
from memstack_capacity.components.cluster import Cluster, NodeAutoscaler
from memstack_capacity.components.datastores.runtime import Datastores
from memstack_capacity.components.deployments import DeploymentRuntime
from memstack_capacity.components.events import EventRunner
from memstack_capacity.components.flows import CALL, ENQUEUE, EXTERNAL, Executor, compile_steps
from memstack_capacity.components.hpa.calc import ControllerConfig
from memstack_capacity.components.hpa.controller import HPAController
from memstack_capacity.components.hpa.phases import loop_phases
from memstack_capacity.components.ingress import Ingress
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.components.monitor import Monitor
from memstack_capacity.components.nodecpu import NodeSampler
from memstack_capacity.components.recorder import Recorder, RequestStats
from memstack_capacity.components.spikes import fold_spikes
from memstack_capacity.components.workers import WorkerTier
from memstack_capacity.components.workload import ClosedPopulation, OpenSource, RequestMix
from memstack_capacity.engine.des.events import prepare_events
from memstack_capacity.engine.rng import Streams, stream
from memstack_capacity.engine.scale import REQUEST_LOG_LIMIT, expected_requests
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.models import Scenario
from memstack_capacity.scenario.workload import RatePoint, UsersPoint


@dataclass
class Model:
    """The built system for one run: every part, by name."""

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
    programs: list
    datastores: Datastores | None = None
    jobs: WorkerTier | None = None
    job_programs: list = field(default_factory=list)
    metrics_server: MetricsServer | None = None
    hpa: dict = field(default_factory=dict)
    node_autoscaler: NodeAutoscaler | None = None
    events: EventRunner | None = None
    folded_profile: list | None = None  # the load profile with traffic spikes folded in (None without spikes)
    node_sampler: NodeSampler | None = None


def build(scenario: Scenario, seed: int) -> Model:
    """Assemble the model of `scenario`: every component, and every call one makes to another."""
    env = Clock()
    streams = Streams(seed)
    recorder = Recorder()
    executor = Executor()
    cluster = Cluster(env, scenario.cluster, recorder, CfsSettings.from_cluster(scenario.cluster, streams("cluster/cfs-phase")))
    model: Model  # the failure and completion paths below reach the tiers built after the deployments

    def task_failed(task, status, reason):
        if task.kind == "request":
            ingress.fail(task, status, reason)
        elif task.kind == "job":
            model.jobs.fail(task, status, reason)
        if model.datastores is not None:
            model.datastores.task_failed(task)

    def procs_gone(procs):
        if model.datastores is not None:
            model.datastores.procs_gone(procs)

    runtimes = {name: DeploymentRuntime(env, name, spec, cluster, executor, recorder, task_failed, procs_gone)
                for name, spec in scenario.deployments.items()}
    api = runtimes["api"]
    balancer = Balancer(api, scenario.api.load_balancing, streams("balancer/api"))
    ingress = Ingress(env, api, balancer, scenario.workload.timeout, recorder)
    ingress.stats = RequestStats(len(scenario.workload.requests), scenario.warmup)
    recorder.requests.every = request_log_stride(scenario)

    programs = [compile_steps(c.steps, streams, f"requests/{c.name}") for c in scenario.workload.requests]
    mix = RequestMix(scenario.workload.requests, programs, streams("workload/mix"))
    folded = folded_profile(scenario)
    source = _source(env, scenario, folded, mix, ingress, streams)
    monitor = Monitor(env, scenario.sample_interval, recorder, runtimes, ingress)
    model = Model(scenario, seed, env, recorder, executor, cluster, runtimes, ingress, source, monitor, programs,
                  folded_profile=folded)

    model.datastores = _datastores(model, streams)  # even with none: summary.json then has "datastores": {}
    if scenario.workload.jobs:
        _worker_tier(model, streams)
    executor.on_task_done = _task_done_path(model)
    _autoscalers(model, streams)
    if scenario.cluster.node_autoscaler is not None:
        model.node_autoscaler = NodeAutoscaler(env, cluster, scenario.cluster.node_autoscaler)
    actions = prepare_events(scenario)
    if scenario.events:
        model.events = EventRunner(env, scenario.events, cluster, runtimes, recorder, hpa=model.hpa,
                                   datastores=model.datastores, config_actions=actions)
    model.node_sampler = NodeSampler(cluster.nodes, scenario.sample_interval)
    monitor.extra.append(model.node_sampler.sample)
    _reject_unsupported(model)
    return model


def folded_profile(scenario: Scenario) -> list | None:
    """The workload's load profile with its traffic spikes folded in; None when it has none."""
    if not any(e.kind == "traffic_spike" for e in scenario.events):
        return None
    wl = scenario.workload
    if wl.users is not None:
        points = [(float(p.at), float(p.users)) for p in wl.users.profile]
    else:
        points = [(float(p.at), float(p.rps)) for p in wl.arrivals.profile]
    return fold_spikes(points, scenario.events)


def _source(env, scenario: Scenario, folded: list | None, mix, ingress, streams):
    """Closed users or an open source, following the folded profile when there are spikes.

    Closed users are added or retired at each whole-number crossing of the folded profile.
    """
    wl = scenario.workload
    if wl.users is not None:
        spec = wl.users
        if folded is not None:
            profile = [UsersPoint.model_construct(at=t, users=int(round(v))) for t, v in folded]
            spec = spec.model_copy(update={"profile": profile})
        return ClosedPopulation(env, spec, mix, ingress, streams("workload/users"), scenario.duration)
    spec = wl.arrivals
    if folded is not None:
        spec = spec.model_copy(update={"profile": [RatePoint.model_construct(at=t, rps=v) for t, v in folded]})
    return OpenSource(env, spec, mix, ingress, streams("workload/arrivals"), scenario.duration)


def _datastores(model: Model, streams) -> Datastores:
    """The stores serve ``call`` and ``external`` steps (one dict lookup by store name) and are sampled."""
    ds = Datastores(model.env, model.scenario, model.executor, streams, model.scenario.sample_interval)
    executor = model.executor
    executor.routes.update(ds.routes())
    executor.handlers[CALL] = executor.route
    executor.handlers[EXTERNAL] = executor.route
    model.monitor.extra.append(ds.sample)
    return ds


def _worker_tier(model: Model, streams) -> None:
    """One Temporal task queue per set of deployments that consume a job; ``enqueue`` steps feed it."""
    scenario = model.scenario
    jobs = scenario.workload.jobs
    model.job_programs = [compile_steps(j.steps, streams, f"jobs/{j.name}") for j in jobs]
    tier = WorkerTier(model.env, jobs, model.job_programs, model.recorder, warmup=scenario.warmup)
    consumers: dict[str, tuple] = {}
    for dep_name, dep in scenario.deployments.items():
        for job in dep.consumes:
            consumers[job] = consumers.get(job, ()) + (dep_name,)
    groups: dict[tuple, list] = {}
    for job in jobs:  # validation guarantees every job has a consumer
        groups.setdefault(consumers.get(job.name, ()), []).append(job.name)
    for deps, names in groups.items():
        if deps:
            tier.add_queue("+".join(deps), [model.runtimes[d] for d in deps], names)
    model.executor.handlers[ENQUEUE] = tier.enqueue_step
    model.monitor.extra.append(tier.sample)
    model.jobs = tier


def _task_done_path(model: Model):
    """What happens when a task's program ends: session connections go back first, then its answer."""
    ingress = model.ingress

    def task_done(task):
        kind = task.kind
        if kind == "request":
            ingress.complete(task)
        elif kind == "probe":
            if not task.owner.triggered:
                task.owner.succeed()
        else:
            model.jobs.complete(task)

    ds = model.datastores
    if ds is None or not ds.sessions:
        return task_done

    def task_done_with_sessions(task):
        ds.task_done(task)
        task_done(task)

    return task_done_with_sessions


def _autoscalers(model: Model, streams: Streams) -> None:
    """metrics-server and one HPA controller per autoscaled deployment (the queue length as an External metric)."""
    scenario = model.scenario
    autoscaled = {n: d for n, d in scenario.deployments.items() if d.hpa is not None}
    if not autoscaled:
        return
    config = ControllerConfig(sync_period_s=scenario.cluster.hpa_sync_period)
    errors = scenario.cluster.metrics_errors
    phases = loop_phases(scenario.cluster, autoscaled, streams("control-loops/phases"))
    housekeeping = _housekeeping(model)
    model.metrics_server = MetricsServer(model.env, scenario.cluster.metrics_resolution, model.runtimes, errors,
                                         streams("metrics-server/errors") if errors is not None else None,
                                         first_scrape=phases.scrape_at, housekeeping=housekeeping,
                                         cpu_window=scenario.cluster.metrics_cpu_window)
    jobs = model.jobs
    for name, dep in autoscaled.items():
        external = {}
        if jobs is not None:
            external["queue_length"] = lambda name=name: [jobs.queue_length(name)]
        model.hpa[name] = HPAController(model.env, name, model.runtimes[name], dep.hpa, model.metrics_server,
                                        config, model.recorder, external, first_sync=phases.sync_at[name])


def _housekeeping(model: Model) -> Housekeeping | None:
    """With independent control loops metrics-server reads the kubelets' cAdvisor samples; every
    container's housekeeping draws from its own stream (``kubelet/housekeeping/<pod>/<restarts>``)."""
    cluster = model.scenario.cluster
    if cluster.control_loops != "independent":
        return None
    seed = model.seed
    housekeeping = Housekeeping(model.env, cluster.housekeeping_interval, lambda name: stream(seed, name))
    for runtime in model.runtimes.values():
        runtime.containers_watch = housekeeping
    return housekeeping


def request_log_stride(scenario: Scenario) -> int:
    """Keep every request when they fit under REQUEST_LOG_LIMIT; otherwise every N-th."""
    return max(1, math.ceil(expected_requests(scenario) / REQUEST_LOG_LIMIT))


def _reject_unsupported(model: Model) -> None:
    """A step kind that no component serves is an error before anything runs, never ignored."""
    missing = model.executor.unsupported_kinds(model.programs + model.job_programs)
    problems = [Problem("workload", f"`{kind}` steps are not supported yet by this version of the simulator")
                for kind in sorted(missing)]
    if problems:
        raise ScenarioError(problems, model.scenario.name)
