"""Which tier limits throughput: ceilings from the scenario, onsets from the run.

:func:`ceilings` applies the utilisation law (throughput ≤ servers / demand per request)
to every tier a request touches, from the scenario's mean step times:

- the API's CPU: max pods × usable cores per pod / CPU-seconds per request;
- each datastore server with ``cores``: cores / server-seconds per request (jobs included);
- each PostgreSQL connection limit: usable ``max_connections`` / connection-seconds per request;
- each external API with a ``rate_limit``: the limit / calls per request (jobs included);
- the workers: job slots at max pods (held to what fits in the memory limit) / job-seconds per request.

:func:`onsets` reads the run: when each tier first saturated. :func:`first_to_break`
puts both in one sentence for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from memstack_capacity.scenario.kinds import kind_of
from memstack_capacity.scenario.workload import CallStep, CpuStep, EnqueueStep, ExternalStep, ParallelStep, RepeatStep


@dataclass(frozen=True)
class Ceiling:
    """One tier's throughput ceiling in requests per second and how it was derived."""

    tier: str  # "api_cpu", "datastore", "connections", "external", "workers"
    name: str  # what the report calls it
    rps: float
    how: str
    path: str = "requests"  # "requests": answers slow and fail beyond it; "jobs": the job backlog grows


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
                           f"{pods} pods × {usable:g} usable core(s) / {cpu * 1000:.2f} ms of CPU per request"))
    for name, spec in (scenario.datastores or {}).items():
        kind = kind_of(spec)
        d = per_req.get(("call", name), 0.0)
        cores = getattr(spec, "cores", None)
        if d > 0 and cores and not kind.is_cache:
            out.append(Ceiling("datastore", f"the `{name}` server", cores / d,
                               f"{cores} cores / {d * 1000:.2f} ms of queries per request"))
        if d > 0 and kind.queue_pool:
            usable = spec.max_connections - spec.superuser_reserved_connections
            out.append(Ceiling("connections", f"`{name}`'s connection limit", usable / d,
                               f"{usable} connections / {d * 1000:.2f} ms held per request"))
        calls, all_calls = per_req.get(("ext", name), 0.0), total.get(("ext", name), 0.0)
        if kind.is_external and all_calls > 0 and spec.rate_limit:
            path = "requests" if calls > 0 else "jobs"
            out.append(Ceiling("external", f"the `{name}` rate limit", spec.rate_limit / all_calls,
                               f"{spec.rate_limit * 60:g}/min / {all_calls:.3g} calls per request", path))
    for wname, dep in scenario.deployments.items():
        consumed = [j for j in dep.consumes if jobs_per_req.get(j)]
        if not consumed:
            continue
        work = sum(jobs_per_req[j] * _job_duration(scenario, per_job[j]) for j in consumed)
        if work <= 0:
            continue
        slots = dep.processes * dep.concurrency
        mem = max((j.memory for j in scenario.workload.jobs if j.name in consumed), default=0)
        lim = dep.resources.limits.memory
        note = ""
        if mem and lim:
            fits = max(0, int((lim - dep.memory_base) // mem))
            if fits < slots:
                slots, note = fits, f" (only {fits} jobs of {mem / 2**20:.0f} Mi fit in the memory limit)"
        pods = dep.max_replicas
        out.append(Ceiling("workers", f"the `{wname}` workers", pods * slots / work,
                           f"{pods} pods × {slots} job slots{note} / {work:.3g} job-seconds per request", "jobs"))
    return sorted(out, key=lambda c: c.rps)


def _first(mask: pd.Series, after: float) -> float | None:
    """When ``mask`` first held, provided it held at some point after the warm-up (``after``)."""
    mask = mask.fillna(False).astype(bool)
    if not mask[mask.index >= after].any():
        return None
    return float(mask[mask].index[0])


def onsets(scenario, summary: dict, series: pd.DataFrame) -> list[tuple[float, str, str]]:
    """``(time, tier name, evidence)`` for every tier the run saturated, earliest first."""
    if series is None or series.empty:
        return []
    warm = scenario.warmup
    out = []

    def col(name):
        return series[name].astype(float) if name in series.columns else None

    api = scenario.deployments["api"]
    cores, ready = col("api/cpu_cores"), col("api/pods_ready")
    if cores is not None and ready is not None:
        usable = api.cpu_capacity
        busy = cores / (ready.where(ready > 0) * usable)
        t = _first(busy >= 0.9, warm)
        if t is not None:
            out.append((t, "the API's CPU", f"pods ≥ 90 % of their usable CPU from {t / 60:.1f} min"))
    for store in scenario.datastores or {}:
        util = col(f"{store}/utilization")
        if util is not None:
            t = _first(util >= 0.9, warm)
            if t is not None:
                out.append((t, f"the `{store}` server", f"≥ 90 % busy from {t / 60:.1f} min"))
        failed = [c for c in (col(f"{store}/pool_timeouts"), col(f"{store}/refused")) if c is not None]
        if failed:
            t = _first(sum(failed) > 0, warm)
            if t is not None:
                out.append((t, f"the `{store}` connection pool", f"pool timeouts or refused connections from {t / 60:.1f} min"))
    for wname, dep in scenario.deployments.items():
        backlog = col(f"{wname}/jobs/backlog") if dep.consumes else None
        if backlog is None or len(backlog) < 4 or backlog.iloc[-1] <= 0:
            continue
        zero = backlog[backlog <= 0]
        t = float(zero.index[-1]) if len(zero) else float(backlog.index[0])
        half = len(backlog) // 2
        if backlog.iloc[half:].mean() > max(2 * backlog.iloc[:half].mean(), 10):
            kills = (summary.get("deployments", {}).get(wname, {}) or {}).get("oom_kills") or 0
            why = f", {kills:g} OOMKills" if kills else ""
            out.append((t, f"the `{wname}` workers", f"job backlog growing from {t / 60:.1f} min{why}"))
    # Earliest first; at the same sample a server before the pool queued behind it, workers last.
    rank = {"server": 0, "CPU": 0, "pool": 1, "workers": 2}
    return sorted(out, key=lambda o: (o[0], min((v for k, v in rank.items() if k in o[1]), default=3)))


def first_to_break(scenario, summary: dict, series: pd.DataFrame) -> str:
    """One sentence: the tier that broke first in the run (or would as load grows), with its ceiling."""
    cs = ceilings(scenario)
    seen = onsets(scenario, summary, series)
    by_name = {c.name: c for c in cs}
    if seen:
        t, name, evidence = seen[0]
        c = by_name.get(name)
        ceiling = f"; its ceiling is {c.how} ≈ {c.rps:.0f} req/s" if c is not None else ""
        rest = [n for _, n, _ in seen[1:]]
        then = f" Then: {', '.join(rest)}." if rest else ""
        return f"**First to break: {name}** ({evidence}{ceiling}).{then}"
    if cs:
        c = cs[0]
        return (f"**Nothing saturated in this run.** As load grows, the first tier to break would be {c.name} "
                f"at ≈ {c.rps:.0f} req/s ({c.how}).")
    return "**Nothing saturated in this run.**"


def sustainable_throughput(scenario, summary: dict, series: pd.DataFrame) -> str:
    """Where the sustainable throughput comes from, for the capacity table."""
    cs = ceilings(scenario)
    seen = {n for _, n, _ in onsets(scenario, summary, series)}
    parts = []
    for path, label in (("requests", ""), ("jobs", "background jobs keep up only below ")):
        c = next((c for c in cs if c.path == path), None)
        if c is None:
            continue
        state = "reached in this run" if c.name in seen else "not reached in this run"
        parts.append(f"{label}≈ {c.rps:.0f} req/s, set by {c.name}: {c.how} ({state})")
    if not parts:
        return "no ceiling derivable from the scenario"
    return "; ".join(parts) + " — utilisation law, ceiling = servers / demand per request"


__all__ = ["Ceiling", "ceilings", "demands", "first_to_break", "onsets", "sustainable_throughput"]
