"""Which engine may run a scenario: one table, feature → engines that model it exactly.

Every engine runs the same model; they differ in what they can advance without one event
per request. ``des`` (the general engine, the reference) runs everything; ``kernel`` (each
API pod advanced on its own, no event per request) and ``hybrid`` (the batched data plane
under the general control plane) need the API's pods to be independent; ``fluid`` (a flow
model, docs/fluid.md) approximates and is used only when asked for. From this table come
``engine="auto"``'s choice (:data:`AUTO_ORDER`: the first engine that models every feature
the scenario uses), the refusal message when a named engine cannot run a scenario, and the
table in docs/performance.md (:func:`markdown_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import simpy

from memstack_capacity.components import rollout
from memstack_capacity.components.cluster import Cluster
from memstack_capacity.components.recorder import Recorder
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.infrastructure import Event
from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.models import Scenario
from memstack_capacity.scenario.workload import CallStep, CpuStep

#: Every engine, in the order the table shows them.
ENGINES = ("des", "fast", "hybrid", "kernel", "fluid")
#: What ``engine="auto"`` tries, fastest first; the general engine runs everything.
AUTO_ORDER = ("kernel", "fast", "hybrid", "des")
#: What each engine is called in messages and docs.
TITLES = {"des": "the general engine", "fast": "the compiled data plane", "hybrid": "the batched data plane", "kernel": "the per-pod kernel",
          "fluid": "the flow model"}

GENERAL = frozenset({"des", "fluid"})  # the engines that model the pods' coupling
COMPILED = GENERAL | {"fast"}  # ... and what the compiled data plane models of it so far


@dataclass(frozen=True)
class Feature:
    """A model feature, the engines that model it, and how to tell a scenario uses it.

    ``used(scenario)`` is None when the scenario does not use the feature, else a short
    detail naming where it does (for the messages).
    """

    name: str
    engines: frozenset
    used: Callable[[Scenario], str | None]


def _closed_users(sc):
    return "workload.users" if sc.workload.users is not None else None


def _jobs(sc):
    return "workload.jobs: " + ", ".join(j.name for j in sc.workload.jobs) if sc.workload.jobs else None


def _datastores(sc):
    return "datastores: " + ", ".join(sc.datastores) if sc.datastores else None


def _redis(sc):
    """Redis that a step calls (a declared cache no step calls is only sampled, idle)."""
    called = _called_stores([*(c.steps for c in sc.workload.requests), *(j.steps for j in sc.workload.jobs)])
    caches = [n for n, d in sc.datastores.items() if KINDS[d.kind].is_cache and n in called]
    return "datastores: " + ", ".join(caches) + " (called by a step)" if caches else None


def _called_stores(step_lists) -> set:
    called: set = set()
    todo = [s for steps in step_lists for s in steps]
    while todo:
        step = todo.pop()
        if isinstance(step, CallStep):
            called.add(step.call)
            todo.extend(step.miss or [])
        todo.extend(getattr(step, "steps", None) or [])
        todo.extend(getattr(step, "parallel", None) or [])
    return called


def _task_queues(sc):
    """More than one Temporal task queue (jobs consumed by different sets of deployments)."""
    consumers = {tuple(n for n, d in sc.deployments.items() if j.name in d.consumes) for j in sc.workload.jobs}
    return f"{len(consumers)} task queues" if len(consumers) > 1 else None


def _sessions(sc):
    held = [f"datastores.{n}.session" for n, d in sc.datastores.items() if getattr(d, "session", False)]
    return ", ".join(held) or None


def _node_autoscaler(sc):
    return "cluster.node_autoscaler" if sc.cluster.node_autoscaler is not None else None


def _other_deployments(sc):
    others = [n for n in sc.deployments if n != "api"]
    return "deployments: " + ", ".join(others) if others else None


def _api_consumes(sc):
    return "deployments.api.consumes" if sc.api.consumes else None


def _stateful_balancing(sc):
    policy = sc.api.load_balancing
    return f"deployments.api.load_balancing: {policy}" if policy not in ("round_robin", "random") else None


def _cpu_limit_couples(sc):
    """Whether the API's CFS quota can bind: a limit below one core per process plus the background."""
    api = sc.api
    limit = api.resources.limits.cpu
    if limit is None:
        return None
    want = api.processes + (api.background_cpu or 0.0)
    return f"limits.cpu {limit:g} < processes {api.processes} + background_cpu" if limit < want else None


def _multi_step_requests(sc):
    names = [c.name for c in sc.workload.requests
             if len(c.steps) != 1 or not isinstance(c.steps[0], CpuStep) or c.steps[0].repeat != 1]
    return "workload.requests: " + ", ".join(names) if names else None


def _oom_possible(sc):
    """Memory is held only by admitted requests (the backlog holds none): at most processes × concurrency."""
    api = sc.api
    limit = api.resources.limits.memory
    if limit is None:
        return None
    worst = api.memory_base + api.processes * api.concurrency * max((c.memory for c in sc.workload.requests), default=0)
    return "memory_base + processes × concurrency × memory > limits.memory" if worst > limit else None


def _api_hpa(sc):
    return "deployments.api.hpa" if sc.api.hpa is not None else None


def _non_resource_metrics(sc):
    used = [f"deployments.{name}.hpa.metrics: " + ", ".join(kinds) for name, d in sc.deployments.items()
            if d.hpa is not None and (kinds := sorted({m.type for m in d.hpa.metrics} - {"Resource"}))]
    return "; ".join(used) or None


def _probes(sc):
    api = sc.api
    return "deployments.api probes" if api.readinessProbe is not None or api.livenessProbe is not None else None


def _no_replicas(sc):
    return "deployments.api.replicas: 0" if sc.api.replicas < 1 else None


def _unplaceable(sc):
    """Whether the cluster cannot schedule every initial API pod at t = 0 (the scheduler's own check)."""
    api = sc.api
    cluster = Cluster(simpy.Environment(), sc.cluster, Recorder(), share_cores=False)
    owner = object()
    for _ in range(api.replicas):
        pod = _PodShape()
        pod.cpu_request, pod.mem_request = api.resources.requests.cpu, api.resources.requests.memory
        pod.spec, pod.runtime, pod.node = api, owner, None
        if cluster.place(pod) is None:
            return "the cluster cannot schedule every initial API pod"
    return None


class _PodShape:
    """What Cluster.place reads of a pod."""


def _metrics_errors(sc):
    errors = sc.cluster.metrics_errors
    if errors is None or not (errors.missing_probability or errors.cpu_noise_cv or errors.memory_noise_cv):
        return None
    return "cluster.metrics_errors"


def _metrics_cpu_window(sc):
    window = sc.cluster.metrics_cpu_window
    if window is None:
        return None
    return f"cluster.metrics_cpu_window: {window if isinstance(window, str) else f'{window:g}s'}"


def _background_cpu(sc):
    burning = [f"deployments.{name}.background_cpu" for name, d in sc.deployments.items() if d.background_cpu]
    return ", ".join(burning) or None


def node_contention(sc):
    """Whether a node could hold pods whose threads want more cores than it has (then they share
    the cores by ``requests.cpu``, :mod:`memstack_capacity.components.nodecpu`). The scheduler
    spreads each deployment's identical pods evenly (preferred anti-affinity ranks by the pods
    already there; otherwise the least-allocated node wins), so a node holds at most
    ⌈pods / nodes⌉ of a deployment — all of them on the fewest nodes a failure or drain leaves."""
    nodes = sc.cluster.nodes - sum(_nodes_taken(e) for e in sc.events)
    if nodes < 1:
        return "node_failure / drain events leave no node"
    surge = any(e.kind == "rolling_update" for e in sc.events)
    threads = 0.0
    for d in sc.deployments.values():
        most = d.max_replicas + (rollout.max_surge(d.strategy, d.max_replicas) if surge else 0)
        per_node = 1 if d.anti_affinity == "required" else -(-most // nodes)
        threads += per_node * (d.processes + (d.background_cpu or 0.0))
    if threads > sc.cluster.node.cpu:
        return f"up to {threads:g} runnable threads on a node of {sc.cluster.node.cpu:g} cores"
    return None


def _nodes_taken(event) -> int:
    """How many nodes a node_failure or drain event takes out of the pool."""
    if event.kind not in ("node_failure", "drain"):
        return 0
    spec = event.node_failure if event.kind == "node_failure" else event.drain
    names = getattr(spec, "nodes", None) or ([spec.node] if getattr(spec, "node", None) else [])
    return len(names) or spec.count


def _event(kind: str):
    def used(sc):
        at = [f"{e.at:g}s" for e in sc.events if e.kind == kind]
        return f"events: {kind} at " + ", ".join(at) if at else None
    return used


_EVENT_ENGINES = {"traffic_spike": frozenset({"des", "fast", "hybrid", "fluid"}),
                  "pod_kill": frozenset({"des", "fast", "hybrid"}), "drain": frozenset({"des", "fast", "hybrid"}),
                  "rolling_update": frozenset({"des", "fast", "hybrid"}), "node_failure": frozenset({"des", "fast"}),
                  "datastore_slowdown": frozenset({"des", "fast"}), "datastore_outage": frozenset({"des", "fast"}),
                  "config_change": frozenset({"des", "fast"})}

#: The table: what each engine models. A feature absent from a scenario does not restrict it.
FEATURES: tuple[Feature, ...] = (
    Feature("closed users", COMPILED, _closed_users),
    Feature("background jobs and the worker tier", COMPILED, _jobs),
    Feature("jobs on more than one task queue", GENERAL, _task_queues),
    Feature("deployments other than the API", COMPILED, _other_deployments),
    Feature("the API consuming jobs", GENERAL, _api_consumes),
    Feature("datastores, pools and external APIs", COMPILED, _datastores),
    Feature("Redis", GENERAL, _redis),
    Feature("a connection held for a whole request (`session: true`)", GENERAL, _sessions),
    Feature("requests of several steps", COMPILED, _multi_step_requests),
    Feature("load balancing that reads pod state", GENERAL, _stateful_balancing),
    Feature("a CPU limit shared by the processes", GENERAL, _cpu_limit_couples),
    Feature("OOMKills", COMPILED, _oom_possible),
    Feature("the node autoscaler", GENERAL, _node_autoscaler),
    Feature("HPA on the API (Resource metrics)", frozenset({"des", "fast", "hybrid", "fluid"}), _api_hpa),
    Feature("HPA on Pods or External metrics", GENERAL, _non_resource_metrics),
    Feature("CPU burnt without serving (background_cpu)", frozenset({"des", "hybrid"}), _background_cpu),
    Feature("missing or noisy resource metrics", frozenset({"des", "fast", "hybrid"}), _metrics_errors),
    Feature("the kubelet's CPU rate window (metrics-server before 0.5)", frozenset({"des", "fast", "hybrid", "kernel"}),
            _metrics_cpu_window),
    Feature("nodes whose cores the pods can oversubscribe", GENERAL, node_contention),
    Feature("readiness and liveness probes", frozenset({"des", "fast", "hybrid", "fluid"}), _probes),
    Feature("no API pod at the start", frozenset({"des", "fast", "hybrid", "fluid"}), _no_replicas),
    Feature("initial pods that cannot all be scheduled", frozenset({"des", "fast", "hybrid", "fluid"}), _unplaceable),
    *(Feature(f"`{kind}` events", _EVENT_ENGINES.get(kind, frozenset({"des"})), _event(kind)) for kind in Event.KINDS),
)


def reasons(scenario: Scenario, engine: str) -> list[str]:
    """What `scenario` uses that `engine` does not model (empty when it can run it), its deployments
    as each ``config_change`` event leaves them included (a change can bring in a feature)."""
    out = _reasons_of(scenario, engine)
    for at, changed in _config_changed(scenario):
        out += [why for r in _reasons_of(changed, engine) if (why := f"{r} after the config_change at {at:g}s") not in out
                and r not in out]
    return out


def _reasons_of(scenario: Scenario, engine: str) -> list[str]:
    return [f"{f.name} ({detail})" for f in FEATURES
            if engine not in f.engines and (detail := f.used(scenario)) is not None]


def _config_changed(scenario: Scenario) -> list[tuple[float, Scenario]]:
    """The scenario as each ``config_change`` event leaves it, in time order (the build reports a
    change that does not apply; it is skipped here)."""
    out, current = [], scenario
    for event in sorted(scenario.events, key=lambda e: e.at):
        if event.kind != "config_change":
            continue
        try:
            current = current.with_overrides(event.config_change.set)
        except (ScenarioError, ValueError):
            continue
        out.append((float(event.at), current))
    return out


@dataclass(frozen=True)
class Choice:
    """The engine that will run a scenario, and why a faster one could not (for ``auto``)."""

    engine: str
    passed_over: dict  # faster engine -> its reasons


def require(scenario: Scenario, engine: str) -> None:
    """Raise a ScenarioError (field ``engine``) naming what `scenario` uses that `engine` does not model."""
    why = reasons(scenario, engine)
    if why:
        raise ScenarioError([Problem("engine", f"{TITLES[engine]} does not model " + "; ".join(why), engine, True)],
                            scenario.name)


def choose(scenario: Scenario, requested: str = "auto") -> Choice:
    """The engine for `scenario`: `requested` itself, or for ``auto`` the first of AUTO_ORDER that can.

    An unknown engine is a ValueError naming the allowed ones; a named engine that does not
    model something the scenario uses is a ScenarioError (:func:`require`).
    """
    if requested != "auto" and requested not in ENGINES:
        raise ValueError(f"engine must be one of auto, {', '.join(ENGINES)} (got {requested!r})")
    if requested != "auto":
        require(scenario, requested)
        return Choice(requested, {})
    passed_over = {}
    for engine in AUTO_ORDER:
        why = reasons(scenario, engine)
        if not why:
            return Choice(engine, passed_over)
        passed_over[engine] = why
    raise AssertionError("the general engine models every feature")


def fallback_note(choice: Choice) -> str | None:
    """A line for stderr when ``auto`` had to take the slow general engine, saying why; else None."""
    if choice.engine != "des" or not choice.passed_over:
        return None
    fast = choice.passed_over.get("fast") or []
    return ("note: running on the general engine (one event per request; slow on long runs): the fast engines "
            "do not model " + "; ".join(fast))


def markdown_table() -> str:
    """The capability table as Markdown, for docs/performance.md."""
    head = "| feature | " + " | ".join(ENGINES) + " |"
    rule = "|---|" + "---|" * len(ENGINES)
    rows = [f"| {f.name} | " + " | ".join("yes" if e in f.engines else "—" for e in ENGINES) + " |" for f in FEATURES]
    return "\n".join([head, rule, *rows])
