"""The cheapest configuration that meets every target in every scenario: screen, confirm, rank.

>>> from memstack_capacity import load_scenario
>>> from memstack_capacity.api.recommend import recommend
>>> from memstack_capacity.api.recommend_space import load_space
>>> base = load_scenario("scenarios/small.yaml")
>>> result = recommend([base], load_space("scenarios/spaces/small.yaml", [base]), replications=3)
>>> result.best.overrides  # small.yaml's 60 users need less than it has
{'deployments.api.replicas': 1, 'deployments.api.resources.requests.cpu': '250m', 'datastores.postgres.cores': 1}

A configuration is one point of the space (:mod:`.recommend_space`): overrides applied to every
scenario. Its cost is the summary's ``cost.per_month`` (OpenCost's rule, results/cost.py): the
mean over the replications of each scenario, the largest over the scenarios (the configuration
is paid for whatever the traffic is, so the costliest scenario is the budget).

1. **Screen** every point with the flow model (``engine="fluid"``, seed ``seed``), where it can
   run the scenario (engine/capabilities.py); a point it cannot run is kept unscreened and goes
   to the discrete-event engine. The flow model has no percentiles for chains of tiers, so a
   missing ``latency_pXX`` is stood in for by ``mean × ln(1 / (1 − q))`` (the quantile of an
   exponential response of that mean: ``× 4.6`` for p99). A point is discarded only when a
   figure misses its target by more than a margin (relative: above ``limit × (1 + m)`` for a
   maximum, below ``limit × (1 − m)`` for a minimum): ``margin`` (25 %) for the figures the flow
   model computes, ``stand_in_margin`` (150 %) for the stand-ins, so that an approximate figure
   near the limit never discards a point the simulation would pass (docs/recommend.md has the
   measurements; a saturated point misses by far more: seconds against milliseconds).
2. **Confirm** the kept points in increasing estimated cost (the flow model's cost, or the
   static floor below) with ``run_many(scenario, seeds)`` — the discrete-event engine through
   :func:`memstack_capacity.api.batch.runner` — with the same seeds ``seed … seed+K−1`` for every
   point (common random numbers). A point passes when every replication of every scenario meets
   every target, as ``capacity`` judges a load (:func:`~memstack_capacity.api.capacity.judge_trial`);
   a point that misses in one scenario is not run in the next.
3. **Stop** once a point has passed and every kept point not yet confirmed has a cost floor
   above its cost: the floor (:func:`cost_floor`) is what the run must pay whatever happens —
   the datastores, and the pods' requests at the fewest pods the deployment can have (or the
   cluster's nodes) — so no skipped point can be cheaper. Ties in cost go to the earlier point
   of the space. The answer is therefore the cheapest passing point of an exhaustive sweep with
   the same seeds, unless the screen discarded it.
4. **Neighbours**: the points one step away along each key are confirmed too (or shown with
   their screen), for the trade-off and to say what each change from the input relieves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from memstack_capacity.api.capacity import clopper_pearson_lower, judge_trial
from memstack_capacity.api.recommend_space import Space, model_value
from memstack_capacity.results.ceilings import binding, ceilings, from_summary, needed
from memstack_capacity.results.cost import GIB, HOURS_PER_MONTH, basis, datastore_cost, prices
from memstack_capacity.results.replications import mean_ci95
from memstack_capacity.scenario.models import Scenario

#: The screen's default margins: a point is discarded only when a figure the flow model computes
#: (throughput, error rate, mean latency) misses its target by more than 25 %, or a percentile
#: stood in for from the mean by more than 150 % (docs/recommend.md: measured on 48 configurations
#: of small.yaml, the flow model's throughput was within 3 % of the simulation's, its p99 stand-in
#: between 0.75 and 2.14 times the simulated p99).
DEFAULT_MARGIN = 0.25
DEFAULT_STAND_IN_MARGIN = 1.5
#: Quantile stand-ins from the mean: an exponential response's q-quantile is mean × ln(1/(1−q)).
STAND_IN = {"latency_p50": math.log(2.0), "latency_p95": math.log(20.0), "latency_p99": math.log(100.0),
            "job_latency_p99": math.log(100.0)}
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
        if len(costs) < len(self.outcomes) or any(c is None for c in costs):
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


# --------------------------------------------------------------------------- costs and screens


def cost_floor(scenario: Scenario) -> float:
    """The least cost per month any run of ``scenario`` can have (results/cost.py's rule, bounded below).

    The datastores' servers are paid in full; on the ``nodes`` basis the cluster's starting
    nodes for the whole run (the node autoscaler only adds); on the ``requests`` basis each
    deployment's requests at the fewest pods it can hold all run long: its starting replicas,
    or the HPA's ``minReplicas`` when lower (usage above the requests only adds).
    """
    rates, _ = prices(scenario.cost, scenario.cluster.node)
    duration = float(scenario.duration)
    stores = math.fsum(entry["hourly"] for name, store in scenario.datastores.items()
                       if (entry := datastore_cost(store, scenario.cost.datastores.get(name), duration, rates)))
    if basis(scenario.cost) == "nodes":
        compute = scenario.cluster.nodes * rates["node_hour"]
    else:
        compute = 0.0
        for dep in scenario.deployments.values():
            pods = dep.replicas if dep.hpa is None else min(dep.replicas, dep.hpa.minReplicas or 1)
            req = dep.resources.requests
            compute += pods * ((req.cpu or 0.0) * rates["cpu_core_hour"]
                               + (req.memory or 0) / GIB * rates["memory_gib_hour"])
    return (compute + stores) * HOURS_PER_MONTH


def screen_verdict(summary: dict, margin: float, stand_in_margin: float = DEFAULT_STAND_IN_MARGIN) -> dict:
    """Keep or discard a point from a flow-model summary: the figures judged (with stand-ins) and the misses."""
    lat = summary["requests"]["latency_s"]
    jobs = (summary.get("jobs") or {}).get("latency_s") or {}
    figures, missed = [], []
    for t in summary.get("targets", []):
        value, how, m = t["value"], "flow model", margin
        if value is None and t["name"] in STAND_IN:
            mean = jobs.get("mean") if t["name"].startswith("job_") else lat.get("mean")
            if mean is not None:
                value, how = mean * STAND_IN[t["name"]], f"mean × ln(1/(1 − q)) = mean × {STAND_IN[t['name']]:.2f}"
                m = stand_in_margin
        limit = t["limit"]
        if value is None:
            verdict = "unknown"
        elif t["kind"] == "max":
            verdict = "miss" if limit > 0 and value > limit * (1 + m) else "ok"
        else:
            verdict = "miss" if value < limit * (1 - m) else "ok"
        row = {"name": t["name"], "kind": t["kind"], "limit": limit, "value": value, "how": how, "margin": m,
               "verdict": verdict}
        figures.append(row)
        if verdict == "miss":
            missed.append(row)
    p99 = lat.get("p99")
    return {"engine": "fluid", "verdict": "discard" if missed else "keep", "figures": figures,
            "missed": [m["name"] for m in missed], "cost": summary["cost"]["per_month"],
            "throughput_rps": summary["requests"]["throughput_rps"],
            "latency_p99": p99 if p99 is not None or lat.get("mean") is None else lat["mean"] * STAND_IN["latency_p99"]}


def fluid_screen(scenario: Scenario, seed: int, margin: float, stand_in_margin: float = DEFAULT_STAND_IN_MARGIN,
                 simulate=None) -> dict:
    """The screen of one configured scenario: the flow model's verdict, or ``unscreened`` with the reason."""
    from memstack_capacity.engine.capabilities import reasons

    why = reasons(scenario, "fluid")
    if why:
        return {"engine": None, "verdict": "unscreened", "reason": "the flow model does not model " + "; ".join(why),
                "figures": [], "missed": [], "cost": None}
    if simulate is None:
        from memstack_capacity.api.simulation import simulate
    return screen_verdict(simulate(scenario, seed=seed, engine="fluid").summary, margin, stand_in_margin)


# --------------------------------------------------------------------------- the result


def _fmt(value, name: str) -> str:
    if value is None:
        return "n/a"
    if name.startswith("latency") or name.startswith("job_latency"):
        return f"{value * 1000:.4g} ms" if value < 1 else f"{value:.4g} s"
    if name == "error_rate":
        return f"{value:.3%}"
    return f"{value:.4g}"


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
                        misses.append(f"{t['name']} {_fmt(t['mean'], t['name'])} (target {sign} "
                                      f"{_fmt(t['limit'], t['name'])}, met in {t['met_runs']}/{len(o.summaries)} "
                                      f"runs of {o.scenario})")
            return f"at `{key}` = {value}: " + "; ".join(misses)
        if other.status == "screened out":
            misses = []
            for o in other.outcomes.values():
                for f in (o.screen or {}).get("figures", []):
                    if f["verdict"] == "miss":
                        misses.append(f"{f['name']} ≈ {_fmt(f['value'], f['name'])} in {o.scenario} (flow model, "
                                      f"target {_fmt(f['limit'], f['name'])})")
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
                       "confirmed": sum(c.confirmed for c in self.candidates),
                       "runs": sum(len(o.summaries) for c in self.candidates for o in c.outcomes.values()
                                   if o.summaries)},
            "ranked": [self.row(i + 1, c) for i, c in enumerate(ranked)],
        }

    def describe(self) -> str:
        """A few lines for the terminal."""
        d = self.to_dict()
        n = d["counts"]
        lines = [f"space {self.space.source}: {n['points']} configurations, {n['screened_out']} screened out by the "
                 f"flow model (margins {self.margin:.0%}, {self.stand_in_margin:.0%} on stand-in percentiles), "
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
            lines.append(f"  binding: {b['target']} in {b['scenario']}, {_fmt(b['mean'], b['target'])} against "
                         f"{_fmt(b['limit'], b['target'])} ({b['headroom']:.0%} headroom)")
        lines += [f"  why {w['key']}: {w['text']}" for w in d["why"]]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the search


def _bounds_text(cands: list[Candidate], configured: Callable, scenarios: list[Scenario]) -> list[str]:
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
        misses = [f"{t['name']} {_fmt(t['mean'], t['name'])} against {_fmt(t['limit'], t['name'])} in {o.scenario}"
                  for o in close.outcomes.values() for t in o.targets() if t["met_runs"] < len(o.summaries)]
        out.append("closest confirmed point " + ", ".join(f"{k}={v}" for k, v in close.overrides.items())
                   + ": missed " + "; ".join(misses))
    elif cands:
        out.append("the flow model's screen discarded every point; --no-screen (or a larger --margin) simulates them")
    return out


class _NoCeiling:
    rps = math.inf


def recommend(scenarios: Sequence[Scenario] | Scenario, space: Space, replications: int = 3,
              seed: int | None = None, margin: float = DEFAULT_MARGIN,
              stand_in_margin: float = DEFAULT_STAND_IN_MARGIN, run_many=None, screen=True, neighbours: bool = True,
              notify: Callable[[str], None] | None = None,
              screen_progress: Callable[[float, int], None] | None = None,
              workers: int | None = 1) -> Recommendation:
    """Search ``space`` for the cheapest point that meets every target of every scenario in every run.

    Args:
        scenarios: Each must set ``targets:``; the point's overrides are applied to each. One scenario
            may be given alone.
        space: The points (:func:`memstack_capacity.api.recommend_space.load_space`).
        replications: Runs per point and scenario, seeds ``seed … seed+K−1`` (each scenario's own seed when None).
        margin, stand_in_margin: The screen's relative margins, on the flow model's own figures and on the
            percentiles stood in for (module docstring); ``screen=False`` screens nothing.
        run_many: ``run_many(scenario, seeds) -> [summary, …]`` on the discrete-event engine
            (:func:`memstack_capacity.api.batch.runner`); by default the runs of a point go to ``workers``
            local processes (``None``: one per CPU), or run one after another in this process (1).
        neighbours: Also confirm the points one step from the answer along each key.
        notify: Called with a line as each point is confirmed.
        screen_progress: ``fn(done, total)`` over the screen.

    Raises:
        ValueError: Without scenarios or targets, or for replications < 1 or a negative margin.
    """
    if isinstance(scenarios, Scenario):
        scenarios = [scenarios]
    if not scenarios:
        raise ValueError("give at least one scenario")
    if replications < 1:
        raise ValueError(f"replications must be at least 1 (got {replications})")
    if not (margin >= 0 and stand_in_margin >= 0):
        raise ValueError(f"the screen's margins must be 0 or more (got {margin}, {stand_in_margin})")
    for sc in scenarios:
        if not any(v is not None for v in sc.targets.model_dump().values()):
            raise ValueError(f"scenario {sc.name} sets no targets, so every configuration 'meets' them; add `targets:`")
    if len({sc.name for sc in scenarios}) != len(scenarios):
        raise ValueError("two scenarios have the same name; give each scenario once (names identify them)")
    if run_many is None and workers != 1:
        from memstack_capacity.api.batch import runner

        with runner(workers) as pool:  # the processes live as long as the search
            return recommend(scenarios, space, replications=replications, seed=seed, margin=margin,
                             stand_in_margin=stand_in_margin, run_many=pool, screen=screen, neighbours=neighbours,
                             notify=notify, screen_progress=screen_progress)
    if run_many is None:
        from memstack_capacity.api.simulation import simulate

        def run_many(sc, seeds):
            return [simulate(sc, seed=s).summary for s in seeds]
    seeds = {sc.name: [(sc.seed if seed is None else int(seed)) + r for r in range(replications)]
             for sc in scenarios}
    cache: dict = {}

    def configured(c: Candidate, sc: Scenario) -> Scenario:
        key = (c.index, sc.name)
        if key not in cache:
            cache[key] = sc.with_overrides(c.overrides) if c.overrides else sc
        return cache[key]

    cands = []
    for i, point in enumerate(space.points()):
        c = Candidate(i, point, 0.0)
        c.floor = max(cost_floor(configured(c, sc)) for sc in scenarios)
        cands.append(c)

    # 1. the screen
    for n, c in enumerate(cands):
        for sc in scenarios:
            if screen:
                verdict = fluid_screen(configured(c, sc), seeds[sc.name][0], margin, stand_in_margin)
            else:
                verdict = {"engine": None, "verdict": "unscreened", "reason": "the screen was turned off",
                           "figures": [], "missed": [], "cost": None}
            c.outcomes[sc.name] = Outcome(sc.name, verdict)
            if verdict["verdict"] == "discard":
                break  # one scenario's miss is enough
        if screen_progress is not None:
            screen_progress(n + 1, len(cands))

    def confirm(c: Candidate) -> None:
        for sc in scenarios:
            o = c.outcomes.setdefault(sc.name, Outcome(sc.name))
            if not o.confirmed:
                o.summaries = run_many(configured(c, sc), seeds[sc.name])
            if not o.passed:
                break
        if notify is not None:
            where = ", ".join(f"{k}={v}" for k, v in c.overrides.items())
            runs = sum(len(o.summaries) for o in c.outcomes.values() if o.summaries)
            passed = sum(o.passed_runs for o in c.outcomes.values() if o.summaries)
            notify(f"point {c.index} ({where}): {passed}/{runs} runs met every target → {c.status}, "
                   f"{c.cost:,.2f} per month")

    # 2. and 3. confirm in estimated cost order until no skipped point can be cheaper
    best: Candidate | None = None
    kept = sorted((c for c in cands if not c.screened_out), key=lambda c: (c.estimate, c.index))
    for c in kept:
        if best is not None and (c.floor > best.cost * (1 + REL)
                                 or (c.floor >= best.cost * (1 - REL) and c.index > best.index)):
            continue
        confirm(c)
        if c.passed and (best is None or (c.cost, c.index) < (best.cost, best.index)):
            best = c

    # 4. neighbours
    if best is not None and neighbours:
        by_point = {tuple(c.overrides.values()): c for c in cands}
        pos = space.index(best.overrides)
        for k, d in enumerate(space.dimensions):
            for j in (pos[k] - 1, pos[k] + 1):
                if 0 <= j < len(d.values):
                    point = list(best.overrides.values())
                    point[k] = d.values[j]
                    other = by_point[tuple(point)]
                    if not other.screened_out and not other.confirmed:
                        other.neighbour = True
                        confirm(other)
                        if other.passed and (other.cost, other.index) < (best.cost, best.index):
                            best = other  # a cost estimate that ranked it late; the floor rule makes this rare

    base_values = {}
    for d in space.dimensions:
        try:
            base_values[d.key] = model_value(scenarios[0], d.key)
        except (KeyError, AttributeError, StopIteration, IndexError, TypeError):
            base_values[d.key] = None
    result = Recommendation(space, [sc.name for sc in scenarios], seeds, replications, margin, stand_in_margin,
                            cands, best,
                            _json_ready(base_values))
    if best is None:
        result.bounds = _bounds_text(cands, configured, list(scenarios))
    return result


def _json_ready(values: Mapping) -> dict:
    """Input values as JSON takes them (a model value such as an enum or a model becomes its text)."""
    out = {}
    for k, v in values.items():
        out[k] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return out
