"""What ``recommend`` found: each point's screen and runs, the answer, and why (recommend.json's content).

:class:`Outcome` is one point in one scenario (its screen, its runs' summaries), :class:`Candidate`
a point over every scenario, :func:`could_beat` / :func:`beats` the one ordering of answers (the
search's stop rule and its choice), :class:`Recommendation` the whole search: ranked, explained
(the binding target, and for each key the answer changes the neighbour that says why) and
written out as :meth:`Recommendation.to_dict`. Nothing here runs a simulation; the search is
:mod:`memstack_capacity.api.recommend`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from memstack_capacity.api.capacity import clopper_pearson_lower, judge_trial
from memstack_capacity.api.recommend_screen import STAND_IN
from memstack_capacity.api.recommend_space import Space
from memstack_capacity.outputs.recommend_files import target_value_text
from memstack_capacity.results.ceilings import binding, ceilings, from_summary, needed
from memstack_capacity.results.replications import mean_ci95
from memstack_capacity.scenario.models import Scenario

REL = 1e-9  # costs this close are equal

# --------------------------------------------------------------------------- per point


@dataclass
class Outcome:
    """One point in one scenario: its screen and, once confirmed, its runs' summaries."""

    scenario: str
    screen: dict | None = None  # {"engine", "verdict": keep|discard|unscreened, "figures", "missed", "cost"}
    summaries: list[dict] | None = None

    @property
    def confirmed(self) -> bool:
        return self.summaries is not None

    @property
    def passed_runs(self) -> int:
        return judge_trial(self.summaries)[0] if self.summaries else 0

    @property
    def passed(self) -> bool:
        return bool(self.summaries) and self.passed_runs == len(self.summaries)

    def cost(self) -> tuple[float | None, list | None]:
        """The mean cost per month over the runs and its 95 % interval."""
        return mean_ci95([s["cost"]["per_month"] for s in self.summaries]) if self.summaries else (None, None)

    def figures(self) -> dict:
        """Headline means over the runs (throughput, p99, error rate) and each deployment's use of its
        resources, for the trade-off plot and the requests/limits table."""
        if not self.summaries:
            return {}

        def mean(get):
            values = []
            for s in self.summaries:
                try:
                    values.append(get(s))
                except (KeyError, TypeError):
                    values.append(None)
            return mean_ci95(values)[0]

        out = {"throughput_rps": mean(lambda s: s["requests"]["throughput_rps"]),
               "latency_p99": mean(lambda s: s["requests"]["latency_s"]["p99"]),
               "error_rate": mean(lambda s: s["requests"]["error_rate"]), "deployments": {}}
        for name in self.summaries[0].get("deployments", {}):
            def dep(s, *path, name=name):
                node = s["deployments"][name]
                for p in path:
                    node = node[p]
                return node
            out["deployments"][name] = {
                "replicas_max": max(dep(s, "replicas", "max") for s in self.summaries),
                "replicas_mean": mean(lambda s: dep(s, "replicas", "mean")),
                "cpu_utilization_mean": mean(lambda s: dep(s, "cpu_utilization", "mean")),
                "cpu_utilization_max": max((dep(s, "cpu_utilization", "max") or 0.0) for s in self.summaries),
                "memory_utilization_max": max((dep(s, "memory_utilization", "max") or 0.0) for s in self.summaries),
                "throttled_fraction": mean(lambda s: dep(s, "throttled_fraction")),
                "oom_kills": sum(dep(s, "oom_kills") or 0 for s in self.summaries)}
        return out

    def targets(self) -> list[dict]:
        """Each target's value over the runs: mean, 95 % interval, range, runs that met it."""
        if not self.summaries:
            return []
        out = []
        for i, first in enumerate(self.summaries[0].get("targets", [])):
            values = [s["targets"][i]["value"] for s in self.summaries]
            mean, ci = mean_ci95(values)
            present = [v for v in values if v is not None]
            out.append({"name": first["name"], "kind": first["kind"], "limit": first["limit"], "mean": mean,
                        "ci95": ci, "min": min(present) if present else None,
                        "max": max(present) if present else None,
                        "met_runs": sum(bool(s["targets"][i]["met"]) for s in self.summaries)})
        return out


@dataclass
class Candidate:
    """A point of the space, its screen and confirmation in every scenario."""

    index: int
    overrides: dict
    floor: float  # cost per month no run of it can go below (the largest over the scenarios)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    neighbour: bool = False  # confirmed for the trade-off around the answer

    @property
    def screened_out(self) -> bool:
        return any(o.screen and o.screen["verdict"] == "discard" for o in self.outcomes.values())

    @property
    def estimate(self) -> float:
        """The screen's cost (largest over the scenarios), or the floor where some scenario was not screened."""
        costs = [o.screen.get("cost") for o in self.outcomes.values() if o.screen]
        if not costs or len(costs) < len(self.outcomes) or any(c is None for c in costs):
            return self.floor
        return max(max(costs), self.floor)

    @property
    def confirmed(self) -> bool:
        return any(o.confirmed for o in self.outcomes.values())

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes.values())

    @property
    def cost(self) -> float | None:
        """The confirmed cost per month (largest over the scenarios run), else None."""
        costs = [o.cost()[0] for o in self.outcomes.values() if o.confirmed]
        return max(costs) if costs else None

    @property
    def status(self) -> str:
        if self.confirmed:
            return "passed" if self.passed else "failed"
        return "screened out" if self.screened_out else "not confirmed"

    def sort_key(self) -> tuple:
        rank = {"passed": 0, "failed": 1, "not confirmed": 2, "screened out": 3}[self.status]
        return rank, self.cost if self.cost is not None else self.estimate, self.index


# --------------------------------------------------------------------------- the order of the answer


def could_beat(cost: float, index: int, best: Candidate) -> bool:
    """Whether a passing point at ``cost`` and position ``index`` would be the answer rather than
    ``best``: cheaper by more than :data:`REL`, or as cheap within it and earlier in the space.

    The search's one ordering: with a point's cost floor for ``cost`` it is the stop rule (a point
    whose floor cannot beat the best is skipped), with its simulated cost the choice of the answer.
    """
    if cost < best.cost * (1 - REL):
        return True
    return cost <= best.cost * (1 + REL) and index < best.index


def beats(c: Candidate, best: Candidate | None) -> bool:
    """Whether the passing ``c`` is a better answer than ``best`` (:func:`could_beat`)."""
    return best is None or could_beat(c.cost, c.index, best)


# --------------------------------------------------------------------------- the result


def _spelled(unit: str, value):
    """An input value in the spelling of the space's values (``500m`` rather than 0.5 cores)."""
    from memstack_capacity.scenario.quantities import format_cpu, format_duration, format_memory

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    return {"cpu": format_cpu, "memory": lambda v: format_memory(int(v)), "duration": format_duration}.get(
        unit, lambda v: v)(value)


def _slack(t: dict) -> float | None:
    """How far a mean is inside its limit, relative to the limit (negative: outside)."""
    if t["mean"] is None or t["limit"] == 0:
        return None
    return (t["limit"] - t["mean"]) / t["limit"] if t["kind"] == "max" else (t["mean"] - t["limit"]) / t["limit"]


@dataclass
class Recommendation:
    """The search's answer: every point with its screen and confirmation, the best one, and why."""

    space: Space
    scenarios: list[str]
    seeds: dict[str, list[int]]
    replications: int
    margin: float
    stand_in_margin: float
    candidates: list[Candidate]
    best: Candidate | None
    base_values: dict  # key -> the input scenario's value (parsed)
    bounds: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.best is not None

    def ranked(self) -> list[Candidate]:
        return sorted(self.candidates, key=Candidate.sort_key)

    def binding(self, c: Candidate) -> dict | None:
        """The target with the least headroom over the scenarios (the largest miss for a failed point)."""
        rows = []
        for o in c.outcomes.values():
            for t in o.targets():
                s = _slack(t)
                if s is not None:
                    rows.append((s, o.scenario, t))
        if not rows:
            return None
        slack, scenario, t = min(rows, key=lambda r: (r[0], r[1], r[2]["name"]))
        first = c.outcomes[scenario].summaries[0]
        ceiling = binding(from_summary(first))
        return {"scenario": scenario, "target": t["name"], "kind": t["kind"], "limit": t["limit"], "mean": t["mean"],
                "headroom": slack, "ceiling": None if ceiling is None else
                {"name": ceiling.name, "rps": ceiling.rps, "how": ceiling.how, "setting": ceiling.setting}}

    def row(self, rank: int, c: Candidate) -> dict:
        scen = {}
        for name, o in c.outcomes.items():
            cost, ci = o.cost()
            entry = {"screen": o.screen, "confirmed": o.confirmed}
            if o.confirmed:
                runs = len(o.summaries)
                entry.update({"runs": runs, "passed_runs": o.passed_runs, "cost_per_month": cost,
                              "cost_per_month_ci95": ci, "targets": o.targets(), "figures": o.figures(),
                              "confidence": clopper_pearson_lower(o.passed_runs, runs)})
            scen[name] = entry
        confidence = [e["confidence"] for e in scen.values() if "confidence" in e]
        return {"rank": rank, "point": c.index, "configuration": dict(c.overrides), "status": c.status,
                "recommended": c is self.best, "neighbour": c.neighbour,
                "cost_per_month": c.cost if c.cost is not None else c.estimate,
                "cost_source": "simulation" if c.confirmed else ("flow model" if c.estimate > c.floor else "floor"),
                "cost_floor_per_month": c.floor, "screened": not all(
                    (o.screen or {}).get("verdict") == "unscreened" for o in c.outcomes.values()),
                "confirmed": c.confirmed, "passed": c.passed,
                "confidence": min(confidence) if c.passed and confidence else None,
                "binding": self.binding(c) if c.confirmed else None, "scenarios": scen}

    def why(self) -> list[dict]:
        """For each key the answer changes from the input: the neighbour one step back toward the input,
        and what it misses (the constraint the change relieves)."""
        if self.best is None:
            return []
        out = []
        by_point = {tuple(c.overrides.values()): c for c in self.candidates}
        pos = self.space.index(self.best.overrides)
        for d, i in zip(self.space.dimensions, pos):
            base = self.base_values.get(d.key)
            here = d.parsed[i] if d.parsed else None
            if base == here or not isinstance(here, (int, float)) or not isinstance(base, (int, float)):
                if base != here:
                    out.append({"key": d.key, "from": base, "to": d.values[i], "neighbour": None,
                                "text": f"`{d.key}` {base!r} → {d.values[i]!r}"})
                continue
            j = i - 1 if base < here else i + 1
            direction = "lower" if base < here else "higher"
            entry = {"key": d.key, "from": _spelled(d.unit, base), "to": d.values[i], "neighbour": None}
            if not 0 <= j < len(d.values):
                entry["text"] = f"the space has no {direction} value of `{d.key}`"
                out.append(entry)
                continue
            point = list(self.best.overrides.values())
            point[self.space.keys.index(d.key)] = d.values[j]
            other = by_point.get(tuple(point))
            entry["neighbour"] = {"value": d.values[j], "point": other.index if other else None,
                                  "status": other.status if other else None}
            entry["text"] = self._relief(d.key, d.values[j], other)
            out.append(entry)
        return out

    def _relief(self, key: str, value, other: Candidate | None) -> str:
        if other is None:
            return f"at `{key}` = {value} the point was not evaluated"
        if other.status == "failed":
            misses = []
            for o in other.outcomes.values():
                for t in o.targets():
                    if t["met_runs"] < len(o.summaries):
                        sign = "≥" if t["kind"] == "min" else "≤"
                        misses.append(f"{t['name']} {target_value_text(t['mean'], t['name'])} (target {sign} "
                                      f"{target_value_text(t['limit'], t['name'])}, met in "
                                      f"{t['met_runs']}/{len(o.summaries)} "
                                      f"runs of {o.scenario})")
            return f"at `{key}` = {value}: " + "; ".join(misses)
        if other.status == "screened out":
            misses = []
            for o in other.outcomes.values():
                for f in (o.screen or {}).get("figures", []):
                    if f["verdict"] == "miss":
                        source = f.get("source", "flow model")
                        misses.append(f"{f['name']} ≈ {target_value_text(f['value'], f['name'])} in {o.scenario} ({source}"
                                      f"{' bound' if source == 'utilisation law' else ''}, target "
                                      f"{target_value_text(f['limit'], f['name'])})")
            return f"at `{key}` = {value} (screened out): " + "; ".join(misses)
        if other.status == "passed":
            saved = other.cost - self.best.cost
            if saved <= REL * max(abs(self.best.cost), 1.0):
                return (f"at `{key}` = {value} every target is met too, at the same cost ({other.cost:,.2f} per "
                        "month); the space's earlier value is taken")
            return (f"at `{key}` = {value} every target is met too, at {other.cost:,.2f} per month: the change "
                    f"is not needed for the targets and saves {saved:,.2f} per month")
        return f"at `{key}` = {value} the point was not confirmed"

    def to_dict(self) -> dict:
        ranked = self.ranked()
        best = self.best
        return {
            "found": self.found,
            "scenarios": list(self.scenarios),
            "seeds": {k: list(v) for k, v in self.seeds.items()},
            "replications": self.replications,
            "screen": {"engine": "fluid", "margin": self.margin, "stand_in_margin": self.stand_in_margin,
                       "stand_in": {k: f"mean × {v:.4f}" for k, v in STAND_IN.items()}},
            "space": self.space.to_dict(),
            "input": {k: v for k, v in self.base_values.items()},
            "recommended": None if best is None else {
                "point": best.index, "configuration": dict(best.overrides), "cost_per_month": best.cost,
                "confidence": self.row(0, best)["confidence"], "binding": self.binding(best)},
            "why": self.why(),
            "bounds": list(self.bounds),
            "counts": {"points": len(self.candidates),
                       "screened_out": sum(c.status == "screened out" for c in self.candidates),
                       "ruled_out_by_bound": sum(any((o.screen or {}).get("engine") == "bound"
                                                     for o in c.outcomes.values()) for c in self.candidates),
                       "confirmed": sum(c.confirmed for c in self.candidates),
                       "runs": sum(len(o.summaries) for c in self.candidates for o in c.outcomes.values()
                                   if o.summaries)},
            "ranked": [self.row(i + 1, c) for i, c in enumerate(ranked)],
        }

    def describe(self) -> str:
        """A few lines for the terminal."""
        d = self.to_dict()
        n = d["counts"]
        lines = [f"space {self.space.source}: {n['points']} configurations, {n['ruled_out_by_bound']} ruled out by the "
                 f"servers' throughput bound, {n['screened_out'] - n['ruled_out_by_bound']} screened out by the flow "
                 f"model (margins {self.margin:.0%}, {self.stand_in_margin:.0%} on stand-in percentiles), "
                 f"{n['confirmed']} confirmed in {n['runs']} simulated runs"]
        if self.best is None:
            lines.append("no configuration in the space meets every target in every scenario")
            lines += [f"  {b}" for b in self.bounds]
            return "\n".join(lines)
        rec = d["recommended"]
        conf = rec["confidence"]
        lines.append("recommended: " + ", ".join(f"{k}={v}" for k, v in rec["configuration"].items())
                     + f" at {rec['cost_per_month']:,.2f} per month")
        lines.append(f"  every target met in all {self.replications} run(s) of each scenario; a run meets them with "
                     f"probability ≥ {conf:.2f} (95 % one-sided, Clopper–Pearson)")
        b = rec["binding"]
        if b:
            lines.append(f"  binding: {b['target']} in {b['scenario']}, {target_value_text(b['mean'], b['target'])} against "
                         f"{target_value_text(b['limit'], b['target'])} ({b['headroom']:.0%} headroom)")
        lines += [f"  why {w['key']}: {w['text']}" for w in d["why"]]
        return "\n".join(lines)



def bounds_text(cands: list[Candidate], configured: Callable, scenarios: list[Scenario]) -> list[str]:
    """What keeps every point from passing: the richest point's lowest ceiling against the load it must
    carry, and the target the closest confirmed point missed."""
    from memstack_capacity.outputs.bottleneck import target_load

    out = []
    for sc in scenarios:
        load, what = target_load(sc)
        richest = max(cands, key=lambda c: ((binding(ceilings(configured(c, sc))) or _NoCeiling).rps, -c.index))
        top = binding(ceilings(configured(richest, sc)))
        where = ", ".join(f"{k}={v}" for k, v in richest.overrides.items())
        if top is not None and load is not None and top.rps < load:
            out.append(f"{sc.name}: even at {where}, {top.name} caps throughput at ≈ {top.rps:,.0f} req/s ({top.how}), "
                       f"below {what} {load:,.0f} req/s; it needs ≈ {needed(top, load):g} {top.unit} "
                       f"(`{top.setting}`), beyond the space")
        elif top is not None:
            out.append(f"{sc.name}: the lowest ceiling at {where} is {top.name}, ≈ {top.rps:,.0f} req/s ({top.how})"
                       + (f", above {what} {load:,.0f} req/s" if load is not None else ""))
    tried = [c for c in cands if c.confirmed]
    if tried:
        def worst(c):
            return min((_slack(t) for o in c.outcomes.values() for t in o.targets() if _slack(t) is not None),
                       default=-math.inf)
        close = max(tried, key=lambda c: (worst(c), -c.index))
        misses = [f"{t['name']} {target_value_text(t['mean'], t['name'])} against {target_value_text(t['limit'], t['name'])} in {o.scenario}"
                  for o in close.outcomes.values() for t in o.targets() if t["met_runs"] < len(o.summaries)]
        out.append("closest confirmed point " + ", ".join(f"{k}={v}" for k, v in close.overrides.items())
                   + ": missed " + "; ".join(misses))
    elif cands:
        out.append("the flow model's screen discarded every point; --no-screen (or a larger --margin) simulates them")
    return out


class _NoCeiling:
    rps = math.inf


def json_ready(values: Mapping) -> dict:
    """Input values as JSON takes them (a model value such as an enum or a model becomes its text)."""
    out = {}
    for k, v in values.items():
        out[k] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return out
