"""Which tier limits throughput: the summary's ceilings, onsets from the run, and what to change.

The ceilings (utilisation law, one per tier) are computed once, in
:mod:`memstack_capacity.results.ceilings`, and carried by ``summary["ceilings"]``; this
module only reads them. :func:`onsets` reads the run: when each tier first saturated.
:func:`first_to_break` puts both in one sentence, :func:`binding_text` says which ceiling
binds, what the target load needs of it and the change that lifts it.
"""

from __future__ import annotations

import pandas as pd

from memstack_capacity.outputs.units import percent, rps

from memstack_capacity.results.ceilings import (NEVER_RAN, Ceiling, binding, ceilings, demands, from_summary, needed,
                                                ready_fraction)


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
            out.append((t, f"the `{wname}` job slots", f"job backlog growing from {t / 60:.1f} min{why}"))
    # Earliest first; at the same sample a server before the pool queued behind it, workers last.
    rank = {"server": 0, "CPU": 0, "pool": 1, "job slots": 2}
    return sorted(out, key=lambda o: (o[0], min((v for k, v in rank.items() if k in o[1]), default=3)))


def never_ran(scenario, summary: dict) -> list[tuple[str, float]]:
    """``(deployment, Ready fraction)`` for each deployment whose pods were Ready < 1 % of the time."""
    out = []
    for name in scenario.deployments:
        f = ready_fraction(summary, name)
        if f is not None and f < NEVER_RAN:
            out.append((name, f))
    return out


def _never_ran(scenario, summary: dict) -> str:
    parts = []
    for name, f in never_ran(scenario, summary):
        if scenario.deployments[name].consumes:
            kills = ((summary.get("deployments") or {}).get(name) or {}).get("oom_kills") or 0
            why = f", OOMKilled {kills:g} times" if kills else ""
            parts.append(f" In this run the `{name}` pods were Ready {percent(f)} of the time{why}: the job slots above "
                         f"were not there to use (see OOMKills).")
    return "".join(parts)


def summary_ceilings(scenario, summary: dict) -> list[Ceiling]:
    """The summary's ceilings, lowest first (the same computation for a summary written before it carried them)."""
    return from_summary(summary) or ceilings(scenario)


def _rps(x: float) -> str:
    """A ceiling: approximate by nature, so whole req/s above 10."""
    return f"{x:.0f} req/s" if x >= 10 else f"{x:.3g} req/s"


def _amount(c: Ceiling, x: float) -> str:
    unit = c.unit[:-1] if x == 1 and c.unit in ("cores", "pods", "connections") else c.unit
    return f"{x:g} {unit}"


def first_to_break(scenario, summary: dict, series: pd.DataFrame) -> str:
    """One sentence: the tier that broke first in the run (or would as load grows), with its ceiling.

    When that tier's path (requests or jobs) is capped lower by another tier, the sentence says
    so, so that the two ceilings never read as two answers to one question.
    """
    cs = summary_ceilings(scenario, summary)
    seen = onsets(scenario, summary, series)
    by_name = {c.name: c for c in cs}
    if seen:
        t, name, evidence = seen[0]
        c = by_name.get(name)
        ceiling = f"; its ceiling is {c.how} ≈ {_rps(c.rps)}" if c is not None else ""
        lower = binding(cs, c.path) if c is not None else None
        if lower is not None and lower.rps < c.rps:
            what = "background jobs" if c.path == "jobs" else "requests"
            ceiling += f", but {what} are capped lower, at ≈ {_rps(lower.rps)} by {lower.name}"
        rest = [n for _, n, _ in seen[1:]]
        then = f" Then: {', '.join(rest)}." if rest else ""
        return f"**First to break: {name}** ({evidence}{ceiling}).{then}"
    if cs:
        c = cs[0]
        return (f"**Nothing saturated in this run.** As load grows, the first tier to break would be {c.name} "
                f"at ≈ {_rps(c.rps)} ({c.how}).")
    return "**Nothing saturated in this run.**"


def target_load(scenario) -> tuple[float | None, str]:
    """The load the scenario must carry, in req/s, and what it is: the throughput target, else the peak arrival rate."""
    t = scenario.targets.throughput_rps
    if t is not None and getattr(t, "min", None):
        return float(t.min), "the target"
    arrivals = scenario.workload.arrivals
    if arrivals is not None:
        return float(max(p.rps for p in arrivals.profile)), "the peak arrival rate"
    return None, ""


def _lift(c: Ceiling, load: float, what: str) -> str:
    if c.rps >= load:
        return f"{what[0].upper()}{what[1:]}, {_rps(load)}, is within it ({c.rps / load - 1:.0%} headroom)."
    return (f"{what[0].upper()}{what[1:]}, {_rps(load)}, needs ≈ {_amount(c, needed(c, load))} "
            f"(now {_amount(c, c.amount)}): raise `{c.setting}`.")


def _others(cs: list[Ceiling], top: Ceiling, load: float | None) -> str:
    """The other ceilings on the same path below the load: what must be lifted next."""
    below = [c for c in cs if c.path == top.path and c is not top and load is not None and c.rps < load]
    if not below:
        return ""
    parts = [f"{c.name} at ≈ {_rps(c.rps)} (needs ≈ {_amount(c, needed(c, load))}, now {_amount(c, c.amount)}: "
             f"`{c.setting}`)" for c in below]  # fmt: skip
    return " Also below it, to lift next: " + "; ".join(parts) + "."


def binding_heading(scenario, summary: dict) -> str:
    """The report's second block: ``Binding constraint: <tier> at ≈ N req/s``."""
    cs = summary_ceilings(scenario, summary)
    top = binding(cs, "requests") or binding(cs, "jobs")
    return "Binding constraint" + (f": {top.name} at ≈ {_rps(top.rps)}" if top is not None else ": none derivable")


def binding_text(scenario, summary: dict, series: pd.DataFrame) -> list[str]:
    """Paragraphs under the heading: the binding ceiling (resource, amount, ceiling), what the target
    load needs of it and the change; the job path's own; what the run saw, in order."""
    cs = summary_ceilings(scenario, summary)
    load, what = target_load(scenario)
    seen = {n: ev for _, n, ev in onsets(scenario, summary, series)}
    thr = (summary.get("requests") or {}).get("throughput_rps")
    out = []
    for path in ("requests", "jobs"):
        c = binding(cs, path)
        if c is None:
            continue
        name = f"{c.name[0].upper()}{c.name[1:]}"
        if path == "requests":
            text = f"**{name} at {_amount(c, c.amount)} caps throughput at ≈ {_rps(c.rps)}**"
        else:
            text = f"**Background jobs keep up only below ≈ {_rps(c.rps)}**, set by {c.name} at {_amount(c, c.amount)}"
        text += f" ({c.how}; utilisation law)."
        if c.name in seen:
            text += f" This run reached it: {seen[c.name]}."
        if path == "requests" and thr is not None:
            text += f" Measured: {rps(thr)} answered OK."
        if load is not None:
            text += " " + _lift(c, load, what) + _others(cs, c, load)
        if path == "jobs":
            text += _never_ran(scenario, summary)
        out.append(text)
    if not out:
        return ["No ceiling derivable from the scenario (no step with a known demand)."]
    out.append(first_to_break(scenario, summary, series))
    return out


def sustainable_throughput(scenario, summary: dict, series: pd.DataFrame) -> str:
    """Where the sustainable throughput comes from, for the capacity table."""
    cs = summary_ceilings(scenario, summary)
    seen = {n for _, n, _ in onsets(scenario, summary, series)}
    parts = []
    for path, label in (("requests", ""), ("jobs", "background jobs keep up only below ")):
        c = binding(cs, path)
        if c is None:
            continue
        state = "reached in this run" if c.name in seen else "not reached in this run"
        parts.append(f"{label}≈ {_rps(c.rps)}, set by {c.name}: {c.how} ({state})")
    if not parts:
        return "no ceiling derivable from the scenario"
    return "; ".join(parts) + " — utilisation law, ceiling = servers / demand per request"


__all__ = ["Ceiling", "binding_heading", "never_ran", "binding_text", "ceilings", "demands", "first_to_break", "onsets",
           "summary_ceilings", "sustainable_throughput", "target_load"]
