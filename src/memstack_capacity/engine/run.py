"""Run one scenario with one seed: build, start, advance the clock, hand back the record."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from memstack_capacity.components.recorder import Recorder
from memstack_capacity.engine.des.build import Model, build
from memstack_capacity.scenario.models import Scenario

#: The environment variable that picks the engine when ``run`` is not told (auto, des, kernel, hybrid).
ENGINE_VARIABLE = "MEMSTACK_ENGINE"

#: Simulated seconds between progress callbacks.
PROGRESS_STEP_S = 60.0


@dataclass
class DeploymentTotals:
    pod_seconds: float
    oom_kills: int
    restarts: int


@dataclass
class RunRecord:
    """What the engine hands to the results layer: plain data, no pandas."""

    scenario: Scenario
    seed: int
    recorder: Recorder
    arrived: int
    in_flight_end: int
    deployments: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    wall_s: float = 0.0
    request_stats: object = None  # RequestStats: exact counts and latency sketches per class
    engine: str = "des"  # which engine ran it: "kernel", "hybrid" or "des"


def run(scenario: Scenario, seed: int | None = None, progress=None, *, engine: str | None = None) -> RunRecord:
    """Simulate `scenario` with `seed` (the scenario's own when None).

    `progress`, if given, is called as ``progress(sim_time_s, duration_s)`` as the run advances.
    `engine`: ``"auto"`` (default; also ``MEMSTACK_ENGINE``) takes the fastest engine the
    scenario is eligible for — the per-pod kernel (engine/kernel.py), else the batched data
    plane (engine/hybrid.py), else the general engine; ``"des"`` forces the general engine;
    ``"kernel"`` and ``"hybrid"`` require theirs (ValueError listing the reasons when the
    scenario is not eligible).
    """
    seed = scenario.seed if seed is None else int(seed)
    started = time.perf_counter()
    from memstack_capacity.engine.hybrid import engine as hybrid
    from memstack_capacity.engine.kernel import engine as kernel

    choice = engine or os.environ.get(ENGINE_VARIABLE, "auto")
    problem = engine_problem(scenario, choice)
    if problem:
        raise ValueError(f"engine {problem}, got {choice!r}" if choice not in kernel.ENGINES else problem)
    if choice in ("auto", "kernel"):
        why = kernel.eligibility(scenario)
        if not why:
            model = kernel.run_model(scenario, seed)
            if progress is not None:
                t = 0.0
                while t < scenario.duration:
                    t = min(scenario.duration, t + PROGRESS_STEP_S)
                    progress(t, scenario.duration)
            return _finish(model, time.perf_counter() - started, "kernel")
    if choice in ("auto", "hybrid"):
        if not hybrid.eligibility(scenario):
            model = hybrid.run_model(scenario, seed, progress)
            return _finish(model, time.perf_counter() - started, "hybrid")
    model = build(scenario, seed)
    start_model(model)
    advance_to_horizon(model, progress)
    return _finish(model, time.perf_counter() - started)


def engine_problem(scenario: Scenario, choice: str) -> str | None:
    """Why `choice` cannot run `scenario` (an unknown engine, or one it is not eligible for), or None."""
    from memstack_capacity.engine.hybrid import engine as hybrid
    from memstack_capacity.engine.kernel import engine as kernel

    if choice not in kernel.ENGINES:
        return f"must be one of {', '.join(kernel.ENGINES)}"
    required = {"kernel": (kernel.eligibility, "the kernel"), "hybrid": (hybrid.eligibility, "the batched data plane")}
    if choice in required:
        eligibility, name = required[choice]
        why = eligibility(scenario)
        if why:
            return f"the scenario is not eligible for {name}: " + "; ".join(why)
    return None


def start_model(model: Model, open_source: bool = True) -> None:
    """Initial pods, the workload (unless a batched data plane draws it), the monitor, the extensions."""
    for name, runtime in model.runtimes.items():
        runtime.start(model.scenario.deployments[name].replicas)
    if open_source:
        model.source.start()
    model.env.process(model.monitor.run())
    for starter in model.extensions.get("starters", []):
        starter()


def advance_to_horizon(model: Model, progress=None) -> None:
    """Run the clock to the scenario's duration, calling ``progress(t, duration)`` every PROGRESS_STEP_S."""
    env, horizon = model.env, float(model.scenario.duration)
    t = 0.0
    while t < horizon:
        t = min(horizon, t + PROGRESS_STEP_S)
        env.run(until=t)
        if progress is not None:
            progress(t, horizon)


def _finish(model: Model, wall_s: float, engine: str = "des") -> RunRecord:
    now = model.env.now
    totals = {}
    for name, runtime in model.runtimes.items():
        runtime.close(now)
        totals[name] = DeploymentTotals(runtime.pod_seconds, runtime.oom_kills, runtime.restarts)
    extras = {}
    for key, finisher in model.extensions.get("finishers", {}).items():
        extras[key] = finisher(now)
    return RunRecord(
        scenario=model.scenario,
        seed=model.seed,
        recorder=model.recorder,
        arrived=model.ingress.arrived,
        in_flight_end=model.ingress.in_flight,
        deployments=totals,
        extras=extras,
        wall_s=wall_s,
        request_stats=model.ingress.stats,
        engine=engine,
    )
