"""Events checked and prepared at build time: references, and what a config change does.

Every event's references are checked (deployments, datastores, nodes); config changes are
resolved against the scenario into actions, and any key that cannot change on a running
system is a ScenarioError naming it. Traffic spikes are folded into the workload's profile
by the build (:mod:`memstack_capacity.components.spikes`).
"""

from __future__ import annotations

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.overrides import split_path

#: Pod-template fields: changing one makes a new ReplicaSet (a rollout).
TEMPLATE_FIELDS = {"processes", "concurrency", "backlog", "resources", "memory_base", "image_pull", "startup",
                   "endpoint_delay", "terminationGracePeriodSeconds", "readinessProbe", "livenessProbe",
                   "anti_affinity"}
#: Fields of the Deployment (or its PDB) that change without new pods.
LIVE_FIELDS = {"strategy", "pdb"}


def prepare_events(scenario, node_names: set) -> dict:
    """The config-change actions by event index, after checking every event's references."""
    if not scenario.events:
        return {}
    problems = check_references(scenario, node_names)
    actions = config_actions(scenario, problems)
    if problems:
        raise ScenarioError(problems, scenario.name)
    return actions


def check_references(scenario, nodes: set) -> list[Problem]:
    """What each event names that the scenario does not have."""
    problems = []
    deployments = set(scenario.deployments)
    stores = scenario.datastores
    for i, event in enumerate(scenario.events):
        where, spec = f"events[{i}].{event.kind}", event.payload
        dep = getattr(spec, "deployment", None)
        if dep is not None and dep not in deployments:
            problems.append(Problem(f"{where}.deployment", f"names no deployment (have: {', '.join(sorted(deployments))})", dep))
        store = spec if event.kind == "cache_flush" else getattr(spec, "datastore", None)
        if event.kind in ("cache_flush", "datastore_slowdown", "datastore_outage"):
            if store not in stores:
                problems.append(Problem(where, f"names no datastore (have: {', '.join(sorted(stores)) or 'none'})", store))
            elif event.kind == "cache_flush" and not KINDS[stores[store].kind].is_cache:
                problems.append(Problem(where, f"`{store}` is not a Redis datastore", store))
        named = list(getattr(spec, "nodes", []) or []) + ([spec.node] if getattr(spec, "node", None) else [])
        for name in named:
            if name not in nodes:
                problems.append(Problem(where, f"names no node (have: {', '.join(sorted(nodes))})", name))
    return problems


def config_actions(scenario, problems: list) -> dict:
    """{event index: [(action, deployment, value)]} for every config_change, in time order."""
    actions: dict = {}
    current = scenario
    order = sorted(range(len(scenario.events)), key=lambda i: scenario.events[i].at)
    for i in order:
        event = scenario.events[i]
        if event.kind != "config_change":
            continue
        where = f"events[{i}].config_change.set"
        changes = event.config_change.set
        try:
            new = current.with_overrides(changes, source=f"events[{i}]")
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        todo: list = []
        rollout_deps: set = set()
        for key in changes:
            parts = split_path(key)
            if len(parts) < 3 or parts[0] != "deployments" or parts[1] not in scenario.deployments:
                problems.append(Problem(f"{where}.{key}", "cannot change on a running system (only deployments' "
                                        "hpa, replicas, strategy, pdb and pod-template fields can)", key))
                continue
            dep, field = str(parts[1]), str(parts[2])
            if field == "hpa":
                if current.deployments[dep].hpa is None or new.deployments[dep].hpa is None:
                    problems.append(Problem(f"{where}.{key}", "cannot add or remove an HPA on a running system", key))
                else:
                    todo.append(("hpa", dep, new.deployments[dep].hpa))
            elif field == "replicas":
                todo.append(("scale", dep, new.deployments[dep].replicas))
            elif field in LIVE_FIELDS:
                todo.append(("spec", dep, new.deployments[dep]))
            elif field in TEMPLATE_FIELDS:
                rollout_deps.add(dep)
            else:
                problems.append(Problem(f"{where}.{key}", f"`{field}` cannot change on a running system "
                                        "(it is not part of the pod template, the HPA or the Deployment)", key))
        todo.extend(("rollout", dep, new.deployments[dep]) for dep in sorted(rollout_deps))
        actions[i] = todo
        current = new
    return actions
