"""The general engine's run: start the built model, advance its clock, read its record.

The general engine is the reference: every model feature runs here, one event at a
time. The other engines (engine/kernel, engine/hybrid) build the same model and advance
parts of it their own way; they reuse :func:`start_model`, :func:`advance_to_horizon` and
:func:`finish` so that a run ends the same way whichever engine ran it.
"""

from __future__ import annotations

import time

from memstack_capacity.engine.des.build import Model, build
from memstack_capacity.engine.record import DeploymentTotals, RunRecord
from memstack_capacity.scenario.models import Scenario

NAME = "des"

#: Simulated seconds between progress callbacks.
PROGRESS_STEP_S = 60.0


def run(scenario: Scenario, seed: int, progress=None) -> RunRecord:
    """Simulate `scenario` with `seed` on the general engine."""
    started = time.perf_counter()
    model = build(scenario, seed)
    start_model(model)
    advance_to_horizon(model, progress)
    model.monitor.sample_at_horizon()
    return finish(model, time.perf_counter() - started, NAME)


def start_model(model: Model, open_source: bool = True) -> None:
    """Initial pods, the workload (unless a batched data plane draws it), the monitor, then the
    control loops and the events, in this order (which orders events at equal times)."""
    for name, runtime in model.runtimes.items():
        runtime.start(model.scenario.deployments[name].replicas)
    if open_source:
        model.source.start()
    env = model.env
    env.process(model.monitor.run())
    if model.datastores is not None:
        model.datastores.start()
    if model.metrics_server is not None:
        env.process(model.metrics_server.run())
        for controller in model.hpa.values():
            env.process(controller.run())
    if model.node_autoscaler is not None:
        env.process(model.node_autoscaler.run())
    if model.events is not None:
        model.events.start()


def advance_to_horizon(model: Model, progress=None) -> None:
    """Run the clock to the scenario's duration, calling ``progress(t, duration)`` every PROGRESS_STEP_S.

    The clock stops before anything due at the duration itself: the caller takes the monitor's
    sample due then (``model.monitor.sample_at_horizon()``) once its books are up to date."""
    env, horizon = model.env, float(model.scenario.duration)
    t = 0.0
    while t < horizon:
        t = min(horizon, t + PROGRESS_STEP_S)
        env.run(until=t)
        if progress is not None:
            progress(t, horizon)


def finish(model: Model, wall_s: float, engine: str) -> RunRecord:
    """Close the books at the clock's time and hand back the run's record."""
    now = model.env.now
    totals = {}
    for name, runtime in model.runtimes.items():
        runtime.close(now)
        totals[name] = DeploymentTotals(runtime.pod_seconds, runtime.oom_kills, runtime.restarts,
                                        runtime.cpu_request_seconds, runtime.memory_request_seconds)
    datastores = model.datastores.finish(now) if model.datastores is not None else None
    jobs = model.jobs.finish(now) if model.jobs is not None else None
    return RunRecord(
        scenario=model.scenario,
        seed=model.seed,
        engine=engine,
        recorder=model.recorder,
        arrived=model.ingress.arrived,
        in_flight_end=model.ingress.in_flight,
        deployments=totals,
        request_stats=model.ingress.stats,
        jobs=jobs,
        datastores=datastores,
        nodes_requested_at=list(model.node_autoscaler.requested_at) if model.node_autoscaler is not None else [],
        wall_s=wall_s,
    )
