"""Engine extension: events in time, the node autoscaler, and what config changes may touch.

At build time: every event's references are checked (deployments, datastores, nodes);
traffic spikes are folded into the workload profile (exact for an open source, whose
piecewise-linear rate the inverse-intensity sampler follows exactly; for closed users a
user is added or retired at each whole-number crossing of the folded profile); config
changes are resolved against the scenario into actions, and any key that cannot change
on a running system is a ScenarioError naming it.
"""

from __future__ import annotations

import bisect

from memstack_capacity.components.cluster import NodeAutoscaler
from memstack_capacity.components.events import EventRunner
from memstack_capacity.components.flows import CALL, EXTERNAL
from memstack_capacity.components.workload import ClosedPopulation, OpenSource
from memstack_capacity.engine.des import build
from memstack_capacity.engine.rng import stream
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.infrastructure import Event
from memstack_capacity.scenario.kinds import KINDS
from memstack_capacity.scenario.overrides import split_path

#: Pod-template fields: changing one makes a new ReplicaSet (a rollout).
TEMPLATE_FIELDS = {"processes", "concurrency", "backlog", "resources", "memory_base", "image_pull", "startup",
                   "endpoint_delay", "terminationGracePeriodSeconds", "readinessProbe", "livenessProbe",
                   "anti_affinity"}
#: Fields of the Deployment (or its PDB) that change without new pods.
LIVE_FIELDS = {"strategy", "pdb"}
#: Pieces a ramp of a spike is cut into when the base profile is not constant there.
RAMP_PIECES = 8


def events_extension(model, streams) -> None:
    scenario = model.scenario
    model.extensions["event_kinds"] = set(Event.KINDS)
    autoscaler_spec = scenario.cluster.node_autoscaler
    if autoscaler_spec is not None:
        autoscaler = NodeAutoscaler(model.env, model.cluster, autoscaler_spec)
        model.extensions["node_autoscaler"] = autoscaler
        model.extensions.setdefault("starters", []).append(lambda: model.env.process(autoscaler.run()))
    if not scenario.events:
        return
    problems = check_references(model)
    actions = config_actions(scenario, problems, model)
    if problems:
        raise ScenarioError(problems, scenario.name)
    spikes = [e for e in scenario.events if e.kind == "traffic_spike"]
    if spikes:
        fold_spikes(model, spikes)
    runner = EventRunner(model, actions)
    model.extensions["events"] = runner


    def start():
        # wrapped at the start, when every extension has registered its handlers (whatever the import order)
        handlers = model.executor.handlers
        for kind in (CALL, EXTERNAL):
            if kind in handlers:
                handlers[kind] = runner.wrap_handler(handlers[kind])
        runner.start()

    model.extensions.setdefault("starters", []).append(start)


def check_references(model) -> list[Problem]:
    scenario = model.scenario
    problems = []
    deployments = set(scenario.deployments)
    stores = scenario.datastores
    nodes = {n.name for n in model.cluster.nodes}
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


def config_actions(scenario, problems: list, model) -> dict:
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


# ---- traffic spikes ------------------------------------------------------------------------------
def _value(points: list, t: float, right: bool) -> float:
    """A piecewise-linear profile (steps where times repeat) at t, from the left or the right."""
    times = [p[0] for p in points]
    if right:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return points[0][1]
        if i >= len(points):
            return points[-1][1]
        j = i - 1
    else:
        i = bisect.bisect_left(times, t)
        if i == 0:
            return points[0][1]
        if i >= len(points):
            return points[-1][1]
        j = i - 1
    (t0, v0), (t1, v1) = points[j], points[j + 1]
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def fold_spike(points: list, at: float, factor: float, duration: float, ramp: float) -> list:
    """Multiply a piecewise-linear profile by the spike's multiplier (1 → factor → 1)."""
    mult = [(at, 1.0), (at + ramp, factor), (at + duration - ramp, factor), (at + duration, 1.0)]
    times = {p[0] for p in points} | {m[0] for m in mult}
    for a, b in ((at, at + ramp), (at + duration - ramp, at + duration)):
        if b > a:
            times |= {a + (b - a) * k / RAMP_PIECES for k in range(1, RAMP_PIECES)}
    out: list = []
    for t in sorted(times):
        left = _value(points, t, False) * _mult(mult, at, t, False)
        right = _value(points, t, True) * _mult(mult, at, t, True)
        out.append((t, left))
        if abs(right - left) > 1e-12:
            out.append((t, right))
    if points[0][0] > 0 and out[0][0] > 0:
        out.insert(0, (0.0, out[0][1]))
    return out


def _mult(mult: list, at: float, t: float, right: bool) -> float:
    if t < at or (t == at and not right):
        return 1.0
    return _value(mult, t, right)


def fold_spikes(model, spikes: list) -> None:
    scenario, wl = model.scenario, model.scenario.workload
    old = model.source
    if wl.users is not None:
        points = [(float(p.at), float(p.users)) for p in wl.users.profile]
    else:
        points = [(float(p.at), float(p.rps)) for p in wl.arrivals.profile]
    for event in sorted(spikes, key=lambda e: e.at):
        s = event.traffic_spike
        points = fold_spike(points, float(event.at), float(s.factor), float(s.duration), float(s.ramp))
    seed = model.seed
    if wl.users is not None:
        from memstack_capacity.scenario.workload import UsersPoint

        profile = [UsersPoint.model_construct(at=t, users=int(round(v))) for t, v in points]
        spec = wl.users.model_copy(update={"profile": profile})
        model.source = ClosedPopulation(model.env, spec, old.mix, old.ingress, stream(seed, "workload/users"),
                                        scenario.duration)
    else:
        from memstack_capacity.scenario.workload import RatePoint

        profile = [RatePoint.model_construct(at=t, rps=v) for t, v in points]
        spec = wl.arrivals.model_copy(update={"profile": profile})
        model.source = OpenSource(model.env, spec, old.mix, old.ingress, stream(seed, "workload/arrivals"),
                                  scenario.duration)
    model.extensions["folded_profile"] = points


if events_extension not in build.EXTENSIONS:
    build.EXTENSIONS.append(events_extension)
