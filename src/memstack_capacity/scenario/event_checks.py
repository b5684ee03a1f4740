"""Events checked against the scenario they act on: what they name, what a config change does.

Two checks, both run when a scenario is loaded (so their messages name the file) and again
by the engine's build (a scenario made in code reaches it without the loader):

* :func:`event_reference_problems`, on plain data like the other cross references: each
  deployment, datastore and node an event names must exist (a cache_flush needs a cache);
* :func:`config_change_plan`, on a validated scenario: each ``config_change`` is applied in
  time order, and what it changes becomes an action for the running system, or a problem
  at ``events[i].config_change.set.<key>`` when it cannot change there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.kinds import kind_of
from memstack_capacity.scenario.overrides import split_path

#: Pod-template fields: changing one makes a new ReplicaSet (a rollout).
TEMPLATE_FIELDS = {"processes", "concurrency", "backlog", "resources", "memory_base", "image_pull", "startup",
                   "endpoint_delay", "terminationGracePeriodSeconds", "readinessProbe", "livenessProbe",
                   "anti_affinity"}
#: Fields of the Deployment (or its PDB) that change without new pods.
LIVE_FIELDS = {"strategy", "pdb"}
#: The events whose payload names a datastore, and the key that names it (None: the payload is the name).
_STORE_EVENTS = {"cache_flush": None, "datastore_slowdown": "datastore", "datastore_outage": "datastore"}


def node_name(index: int) -> str:
    """The name of the cluster's node number ``index`` (from 0), as events name nodes."""
    return f"node-{index}"


def _is_node(name: str, count: int) -> bool:
    """Whether ``name`` is one of the ``count`` nodes the cluster starts with."""
    index = name.removeprefix(node_name(0)[:-1])
    return index != name and index.isdigit() and node_name(int(index)) == name and int(index) < count


def _have(names) -> str:
    return ", ".join(sorted(map(str, names))) or "none"


def _named_nodes(kind: str, payload: object) -> list:
    """The node names a node_failure or drain event gives (its shorthand forms included)."""
    if kind == "drain":
        if isinstance(payload, str):
            return [payload]
        node = payload.get("node") if isinstance(payload, Mapping) else None
        return [node] if isinstance(node, str) else []
    if kind == "node_failure" and isinstance(payload, Mapping) and isinstance(payload.get("nodes"), list):
        return [n for n in payload["nodes"] if isinstance(n, str)]
    return []


def event_reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Deployments, datastores and nodes that events name and the scenario does not have.

    Works on plain data (raw YAML or ``model_dump()``) and skips what is malformed, which
    field validation reports. Nodes are the cluster's at the start (``node-0`` ...).
    """
    events = data.get("events")
    deployments = data.get("deployments") if isinstance(data.get("deployments"), Mapping) else {}
    stores = data.get("datastores") if isinstance(data.get("datastores"), Mapping) else {}
    cluster = data.get("cluster") if isinstance(data.get("cluster"), Mapping) else {}
    count = cluster.get("nodes", 6)
    problems: list[Problem] = []
    for i, event in enumerate(events if isinstance(events, list) else []):
        if not isinstance(event, Mapping):
            continue
        for kind, payload in event.items():
            where = f"events[{i}].{kind}"
            if kind in ("pod_kill", "rolling_update"):
                dep = payload if isinstance(payload, str) else (
                    payload.get("deployment", "api") if isinstance(payload, Mapping) else None)
                if isinstance(dep, str) and deployments and dep not in deployments:
                    problems.append(Problem(f"{where}.deployment", f"names no deployment (have: {_have(deployments)})",
                                            dep, True))
            elif kind in _STORE_EVENTS:
                key = _STORE_EVENTS[kind]
                store = payload if key is None else (payload.get(key) if isinstance(payload, Mapping) else None)
                field = where if key is None else f"{where}.{key}"
                if not isinstance(store, str):
                    continue
                if store not in stores:
                    problems.append(Problem(field, f"names no datastore (have: {_have(stores)})", store, True))
                elif kind == "cache_flush" and not kind_of(stores[store]).is_cache:
                    problems.append(Problem(field, f"`{store}` is not a Redis datastore (cache_flush empties a "
                                            "cache)", store, True))
            for node in _named_nodes(kind, payload):
                if isinstance(count, int) and not _is_node(node, count):
                    have = "none" if count < 1 else f"{node_name(0)} … {node_name(count - 1)}"
                    problems.append(Problem(where, f"names no node (have: {have})", node, True))
    return problems


def config_change_plan(scenario) -> tuple[dict, list[Problem]]:
    """``({event index: [(action, deployment, value)]}, problems)`` for every config_change, in time order.

    An action is ``("hpa", dep, new HPA spec)``, ``("scale", dep, replicas)``, ``("spec", dep,
    new Deployment)`` (strategy, PDB) or ``("rollout", dep, new Deployment)`` (the pod template).
    Each problem's field is ``events[i].config_change.set.<key>`` and carries the value given.
    """
    actions: dict = {}
    problems: list[Problem] = []
    current = scenario
    order = sorted(range(len(scenario.events)), key=lambda i: scenario.events[i].at)
    for i in order:
        event = scenario.events[i]
        if event.kind != "config_change":
            continue
        where = f"events[{i}].config_change.set"
        changes = event.config_change.set
        try:
            new = current.with_overrides(changes, label=lambda path, where=where: f"{where}.{path}")
        except ScenarioError as exc:
            problems.extend(_located(exc.problems, where, changes))
            continue
        todo: list = []
        rollout_deps: set = set()
        for key, value in changes.items():
            parts = split_path(key)
            field = f"{where}.{key}"
            if len(parts) < 3 or parts[0] != "deployments" or parts[1] not in scenario.deployments:
                problems.append(Problem(field, "cannot change on a running system (only deployments' hpa, replicas, "
                                        "strategy, pdb and pod-template fields can)", value, True))
                continue
            dep, name = str(parts[1]), str(parts[2])
            if name == "hpa":
                if current.deployments[dep].hpa is None or new.deployments[dep].hpa is None:
                    problems.append(Problem(field, "cannot add or remove an HPA on a running system", value, True))
                else:
                    todo.append(("hpa", dep, new.deployments[dep].hpa))
            elif name == "replicas":
                todo.append(("scale", dep, new.deployments[dep].replicas))
            elif name in LIVE_FIELDS:
                todo.append(("spec", dep, new.deployments[dep]))
            elif name in TEMPLATE_FIELDS:
                rollout_deps.add(dep)
            else:
                problems.append(Problem(field, f"`{name}` cannot change on a running system (it is not part of the "
                                        "pod template, the HPA or the Deployment)", value, True))
        todo.extend(("rollout", dep, new.deployments[dep]) for dep in sorted(rollout_deps))
        actions[i] = todo
        current = new
    return actions, problems


def _located(found: list[Problem], where: str, changes: Mapping) -> list[Problem]:
    """Problems of a config change's scenario, placed under ``events[i].config_change.set``.

    A path problem already names its key there; a value problem names the scenario field
    it landed on, which is put under the event too.
    """
    out = []
    for problem in found:
        field = problem.field if problem.field.startswith(where) else f"{where}.{problem.field}"
        out.append(Problem(field, problem.message, problem.value, problem.has_value))
    return out


def config_change_problems(scenario) -> list[Problem]:
    """What is wrong with the scenario's config changes (empty when they all can apply)."""
    if not any(event.kind == "config_change" for event in scenario.events):
        return []
    return config_change_plan(scenario)[1]
