"""Every tier's throughput ceiling, computed once: the summary carries it, the report and findings read it.

The utilisation law (throughput ≤ servers / demand per request) applied to every tier a
request touches, from the scenario's mean step times:

- the API's CPU: max pods × usable cores per pod / CPU-seconds per request;
- each datastore server with ``cores``: cores / server-seconds per request (jobs included);
- each PostgreSQL connection limit: usable ``max_connections`` / connection-seconds per request;
- each external API with a ``rate_limit``: the limit / calls per request (jobs included);
- the workers: job slots at max pods (held to what fits in the memory limit) / job-seconds per request.

A ceiling depends on the scenario alone, so every run of it (and every replication) has the
same list. Each also says how much of its resource a given load needs (:func:`needed`), which
is what the report proposes to lift it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from memstack_capacity.scenario.kinds import kind_of
from memstack_capacity.scenario.workload import CallStep, CpuStep, EnqueueStep, ExternalStep, ParallelStep, RepeatStep

__all__ = ["Ceiling", "binding", "ceilings", "demands", "from_summary", "needed", "ready_fraction", "to_summary",
           "NEVER_RAN"]  # fmt: skip

#: A deployment whose pods were Ready less than this fraction of the time never really ran.
NEVER_RAN = 0.01


@dataclass(frozen=True)
class Ceiling:
    """One tier's throughput ceiling in requests per second and how it was derived.

    ``amount`` of ``unit`` (e.g. 8 cores) serves ``rps``; a load of ``x`` req/s needs
    ``x × amount / rps`` of it (:func:`needed`). ``setting`` is the scenario field to change.
    """

    tier: str  # "api_cpu", "datastore", "connections", "external", "workers"
    name: str  # what the report calls it
    rps: float
    how: str
    path: str = "requests"  # "requests": answers slow and fail beyond it; "jobs": the job backlog grows
    amount: float = 0.0
    unit: str = ""
    setting: str = ""


def _mean(dist) -> float:
    return 0.0 if dist is None else float(dist.expected())


def _walk(steps, k: float, out: dict) -> None:
    for step in steps:
        r = k * step.repeat
        if isinstance(step, CpuStep):
            out["cpu"] = out.get("cpu", 0.0) + r * _mean(step.cpu)
        elif isinstance(step, CallStep):
            out[("call", step.call)] = out.get(("call", step.call), 0.0) + r * _mean(step.time)
        elif isinstance(step, ExternalStep):
            out[("ext", step.external)] = out.get(("ext", step.external), 0.0) + r
        elif isinstance(step, EnqueueStep):
            out[("job", step.enqueue)] = out.get(("job", step.enqueue), 0.0) + r
        elif isinstance(step, ParallelStep):
            _walk(step.parallel, r, out)
        elif isinstance(step, RepeatStep):
            _walk(step.steps, r, out)


def demands(scenario) -> tuple[dict, dict]:
    """Per request (weighted mean over classes) and per job class: CPU-s, call-s per store, external calls, jobs."""
    total = sum(c.weight for c in scenario.workload.requests) or 1.0
    per_req: dict = {}
    for c in scenario.workload.requests:
        _walk(c.steps, c.weight / total, per_req)
    per_job = {}
    for j in scenario.workload.jobs:
        d: dict = {}
        _walk(j.steps, 1.0, d)
        per_job[j.name] = d
    return per_req, per_job


def _job_duration(scenario, d: dict) -> float:
    ext = {n: s for n, s in (scenario.datastores or {}).items() if kind_of(s).is_external}
    t = d.get("cpu", 0.0) + sum(v for k, v in d.items() if isinstance(k, tuple) and k[0] == "call")
    return t + sum(v * _mean(ext[k[1]].latency) for k, v in d.items() if isinstance(k, tuple) and k[0] == "ext"
                   and k[1] in ext)  # fmt: skip


def _worker_ceiling(scenario, wname: str, dep, jobs_per_req: dict, per_job: dict) -> Ceiling | None:
    consumed = [j for j in dep.consumes if jobs_per_req.get(j)]
    work = sum(jobs_per_req[j] * _job_duration(scenario, per_job[j]) for j in consumed)
    if not consumed or work <= 0:
        return None
    slots = dep.processes * dep.concurrency
    mem = max((j.memory for j in scenario.workload.jobs if j.name in consumed), default=0)
    lim = dep.resources.limits.memory
    note = ""
    if mem and lim:
        fits = max(0, int((lim - dep.memory_base) // mem))
        if fits < slots:
            slots, note = fits, f" (only {fits} jobs of {mem / 2**20:.0f} Mi fit in the memory limit)"
    pods = dep.max_replicas
    return Ceiling("workers", f"the `{wname}` job slots", pods * slots / work,
                   f"{pods} pods × {slots} job slots{note} / {work:.3g} job-seconds per request", "jobs",
                   pods, "pods", f"deployments.{wname}.hpa.maxReplicas")  # fmt: skip


def ceilings(scenario) -> list[Ceiling]:
    """Every tier's ceiling, lowest first."""
    per_req, per_job = demands(scenario)
    jobs_per_req = {k[1]: v for k, v in per_req.items() if isinstance(k, tuple) and k[0] == "job"}
    # Everything a request causes, its jobs' work included.
    total = {k: v for k, v in per_req.items() if k != "cpu"}
    for job, n in jobs_per_req.items():
        for k, v in per_job.get(job, {}).items():
            if isinstance(k, tuple) and k[0] != "job":
                total[k] = total.get(k, 0.0) + n * v
    out = []
    api = scenario.deployments["api"]
    cpu = per_req.get("cpu", 0.0)
    if cpu > 0:
        pods, usable = api.max_replicas, api.cpu_capacity
        out.append(Ceiling("api_cpu", "the API's CPU", pods * usable / cpu,
                           f"{pods} pods × {usable:g} usable core(s) / {cpu * 1000:.2f} ms of CPU per request",
                           "requests", pods, "pods", "deployments.api.hpa.maxReplicas"))  # fmt: skip
    for name, spec in (scenario.datastores or {}).items():
        kind = kind_of(spec)
        d = per_req.get(("call", name), 0.0)
        cores = getattr(spec, "cores", None)
        if d > 0 and cores and not kind.is_cache:
            out.append(Ceiling("datastore", f"the `{name}` server", cores / d,
                               f"{cores} cores / {d * 1000:.2f} ms of queries per request", "requests",
                               cores, "cores", f"datastores.{name}.cores"))  # fmt: skip
        if d > 0 and kind.queue_pool:
            usable = spec.max_connections - spec.superuser_reserved_connections
            out.append(Ceiling("connections", f"`{name}`'s connection limit", usable / d,
                               f"{usable} connections / {d * 1000:.2f} ms held per request", "requests",
                               usable, "connections", f"datastores.{name}.max_connections"))  # fmt: skip
        calls, all_calls = per_req.get(("ext", name), 0.0), total.get(("ext", name), 0.0)
        if kind.is_external and all_calls > 0 and spec.rate_limit:
            path = "requests" if calls > 0 else "jobs"
            out.append(Ceiling("external", f"the `{name}` rate limit", spec.rate_limit / all_calls,
                               f"{spec.rate_limit * 60:g}/min / {all_calls:.3g} calls per request", path,
                               spec.rate_limit * 60, "calls/min", f"datastores.{name}.rate_limit"))  # fmt: skip
    for wname, dep in scenario.deployments.items():
        c = _worker_ceiling(scenario, wname, dep, jobs_per_req, per_job)
        if c is not None:
            out.append(c)
    return sorted(out, key=lambda c: c.rps)


def needed(c: Ceiling, rps: float) -> float:
    """How much of the ceiling's resource ``rps`` requests per second need (rounded up to a whole unit)."""
    return math.ceil(rps * c.amount / c.rps - 1e-9) if c.rps > 0 else math.inf


def binding(cs: list[Ceiling], path: str = "requests") -> Ceiling | None:
    """The lowest ceiling on ``path`` ("requests" or "jobs"): the one that binds."""
    return next((c for c in cs if c.path == path), None)


def to_summary(scenario) -> list[dict]:
    """The ``summary["ceilings"]`` list, lowest first: one plain dict per :class:`Ceiling`."""
    return [asdict(c) for c in ceilings(scenario)]


def from_summary(summary: dict) -> list[Ceiling]:
    """The ceilings a summary carries, as :class:`Ceiling` objects (``[]`` when it has none)."""
    return [Ceiling(**c) for c in summary.get("ceilings") or []]


def ready_fraction(summary: dict, deployment: str) -> float | None:
    """Ready pods over desired replicas, time-averaged after the warm-up (``None`` without data)."""
    d = (summary.get("deployments") or {}).get(deployment) or {}
    ready = (d.get("pods_ready") or {}).get("mean")
    desired = (d.get("replicas") or {}).get("mean")
    if ready is None or not desired:
        return None
    return float(ready) / float(desired)
