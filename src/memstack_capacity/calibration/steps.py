"""Where a scenario states the times that calibration rewrites: each request's CPU steps and
datastore calls with their dotted keys, and the time a call takes beyond its stated mean.

It reads scenario models only; the estimates (:mod:`.estimates`) turn measurements into new
values for these keys.
"""

from __future__ import annotations

from memstack_capacity.scenario.workload import CallStep, CpuStep, ExternalStep, ParallelStep, RepeatStep

#: Distributions whose mean can be rescaled with their shape kept.
SCALABLE = ("constant", "exponential", "lognormal", "gamma")


def walk(steps, prefix: str, factor: float = 1.0, parallel: bool = False):
    """(dotted path, step, repeat factor, inside a parallel block) for every step, depth first."""
    for i, step in enumerate(steps):
        path = f"{prefix}[{i}]"
        repeat = getattr(step, "repeat", 1) or 1
        if isinstance(step, ParallelStep):
            yield path, step, factor * repeat, parallel
            yield from walk(step.parallel, f"{path}.parallel", factor * repeat, True)
        elif isinstance(step, RepeatStep):
            yield from walk(step.steps, f"{path}.steps", factor * step.repeat, parallel)
        else:
            yield path, step, factor * repeat, parallel


def cpu_steps(request) -> list[tuple[str, float, float]]:
    """(key of the mean, repeat factor, mean) of each CPU step whose distribution has a mean."""
    out = []
    for path, step, factor, _ in walk(request.steps, f"workload.requests[{request.name}].steps"):
        if isinstance(step, CpuStep) and step.cpu.dist in SCALABLE:
            out.append((f"{path}.cpu.mean", factor, float(step.cpu.mean)))
    return out


def scenario_cpu(request) -> float:
    """CPU seconds per request of a class as the scenario states it (means, repeats counted)."""
    total = 0.0
    for _, step, factor, _ in walk(request.steps, "s"):
        if isinstance(step, CpuStep):
            total += factor * step.cpu.expected()
    return total


def step_times(steps, datastores) -> tuple[float, float, float]:
    """(call time, external latency, fixed call overhead) of a step list: sequential sums, a
    parallel block's slowest branch. The overhead is what the model adds to a datastore call
    beyond its stated time: the network round trip, a pre-ping's round trip on a pooled
    connection, a key-value server's own op time."""
    calls = external = fixed = 0.0
    for step in steps:
        repeat = getattr(step, "repeat", 1) or 1
        if isinstance(step, CallStep):
            calls += repeat * (step.time.expected() if step.time is not None else 0.0)
            fixed += repeat * call_overhead(datastores.get(step.call))
        elif isinstance(step, ExternalStep):
            spec = datastores.get(step.external)
            latency = getattr(spec, "latency", None)
            external += repeat * (latency.expected() if latency is not None else 0.0)
        elif isinstance(step, RepeatStep):
            c, e, f = step_times(step.steps, datastores)
            calls, external, fixed = calls + step.repeat * c, external + step.repeat * e, fixed + step.repeat * f
        elif isinstance(step, ParallelStep):
            branches = [step_times([s], datastores) for s in step.parallel]
            slowest = max(branches, key=sum)
            calls, external, fixed = (calls + repeat * slowest[0], external + repeat * slowest[1],
                                      fixed + repeat * slowest[2])
    return calls, external, fixed


def call_overhead(spec) -> float:
    """The mean time a call to ``spec`` takes beyond its step's own time, on a reused connection
    (components/datastores: sql.py adds a round trip, and one more for ``pool_pre_ping``; kv.py
    the server's op time and a round trip). A new connection's ``connect_time`` is left out:
    pools reuse connections, so it is paid rarely."""
    if spec is None:
        return 0.0
    round_trip = float(getattr(spec, "round_trip", 0.0) or 0.0)
    pool = getattr(spec, "pool", None)
    pre_ping = round_trip if getattr(pool, "pool_pre_ping", False) else 0.0
    return round_trip + pre_ping + float(getattr(spec, "op_time", 0.0) or 0.0)


def call_steps(request) -> list[tuple[str, float]]:
    """(key of the mean, mean) of each datastore call's time whose distribution has a mean."""
    out = []
    for path, step, _, _ in walk(request.steps, f"workload.requests[{request.name}].steps"):
        if isinstance(step, CallStep) and step.time is not None and step.time.dist in SCALABLE:
            out.append((f"{path}.time.mean", float(step.time.mean)))
    return out
