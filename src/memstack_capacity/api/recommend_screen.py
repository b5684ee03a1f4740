"""The flow-model screen of ``recommend``: keep or discard one configured scenario before simulating it.

A point the search takes is first checked against the servers' throughput bound
(:func:`bound_verdict`: no run needed), then run once on the flow model (``engine="fluid"``,
docs/fluid.md; the search's executor runs it and :func:`screen_verdict` judges it) where the flow
model can run it (:func:`memstack_capacity.api.capacity_screen.unavailable`: the capability
table); a point it cannot run is kept **unscreened** and goes to the discrete-event engine. The flow model gives no percentiles for chains of tiers, so a missing ``latency_pXX`` is
judged on the stand-in the capacity search's screen uses
(:data:`memstack_capacity.api.capacity_screen.STAND_INS`: the mean × ``ln(1 / (1 − q))``, the
quantile of an exponential response). It gives no job latency at all: a job target has no
verdict here (``unknown``) and the simulation judges it.

A point is discarded only when a figure misses its target by more than a margin (relative:
above ``limit × (1 + m)`` for a maximum, below ``limit × (1 − m)`` for a minimum): ``margin``
for the figures the flow model computes, ``stand_in_margin`` for the stand-ins, so that an
approximate figure near the limit never discards a point the simulation would pass. The
capacity search needs no margin (its screen only places a bracket the DES re-checks); a
discard here is final, hence the margins (docs/recommend.md has their measurements).
"""

from __future__ import annotations

from memstack_capacity.api.capacity_screen import STAND_INS, unavailable
from memstack_capacity.scenario.models import Scenario

#: The screen's default margins: a point is discarded only when a figure the flow model computes
#: (throughput, error rate, mean latency) misses its target by more than 25 %, or a percentile
#: stood in for from the mean by more than 150 % (docs/recommend.md: measured on 48 configurations
#: of small.yaml, the flow model's throughput was within 3 % of the simulation's, its p99 stand-in
#: between 0.75 and 2.14 times the simulated p99).
DEFAULT_MARGIN = 0.25
DEFAULT_STAND_IN_MARGIN = 1.5
#: The stand-in factor on the mean latency per target name (``latency_p99`` → ln 100).
STAND_IN = {f"latency_{stat}": factor for stat, factor in STAND_INS.items()}


def unscreened(reason: str) -> dict:
    """The record of a point the screen did not judge, and why."""
    return {"engine": None, "verdict": "unscreened", "reason": reason, "figures": [], "missed": [], "cost": None}


def judge_figure(value: float | None, kind: str, limit: float, margin: float) -> str:
    """``miss`` when ``value`` is outside ``limit`` by more than ``margin`` (relative), ``ok`` inside,
    ``unknown`` without a value. A maximum of 0 or less is never missed (no relative margin of 0)."""
    if value is None:
        return "unknown"
    if kind == "max":
        return "miss" if limit > 0 and value > limit * (1 + margin) else "ok"
    return "miss" if value < limit * (1 - margin) else "ok"


def screen_verdict(summary: dict, margin: float, stand_in_margin: float = DEFAULT_STAND_IN_MARGIN) -> dict:
    """Keep or discard a point from a flow-model summary: the figures judged (with stand-ins) and the misses."""
    lat = summary["requests"]["latency_s"]
    mean = lat.get("mean")
    figures = []
    for t in summary.get("targets", []):
        value, how, m = t["value"], "flow model", margin
        if value is None and t["name"] in STAND_IN and mean is not None:
            value, how = mean * STAND_IN[t["name"]], f"mean × ln(1/(1 − q)) = mean × {STAND_IN[t['name']]:.2f}"
            m = stand_in_margin
        figures.append({"name": t["name"], "kind": t["kind"], "limit": t["limit"], "value": value, "how": how,
                        "margin": m, "source": "flow model", "verdict": judge_figure(value, t["kind"], t["limit"], m)})
    missed = [f["name"] for f in figures if f["verdict"] == "miss"]
    p99 = lat.get("p99")
    return {"engine": "fluid", "verdict": "discard" if missed else "keep", "figures": figures, "missed": missed,
            "cost": summary["cost"]["per_month"], "throughput_rps": summary["requests"]["throughput_rps"],
            "latency_p99": p99 if p99 is not None or mean is None else mean * STAND_IN["latency_p99"]}


def bound_verdict(scenario: Scenario) -> dict | None:
    """A discard without a simulation when the throughput target is above what the datastore servers can
    complete at all (:func:`memstack_capacity.results.bounds.throughput_bound`, the utilisation law with its
    own margins); None when the bound does not rule the point out."""
    from memstack_capacity.results.bounds import throughput_bound

    bound = throughput_bound(scenario)
    limit = scenario.targets.throughput_rps.min if scenario.targets.throughput_rps is not None else None
    if bound is None or limit is None or bound.rps >= limit:
        return None
    figure = {"name": "throughput_rps", "kind": "min", "limit": limit, "value": bound.rps, "margin": 0.0,
              "how": f"utilisation law: {bound.how}", "source": "utilisation law", "verdict": "miss"}
    return {"engine": "bound", "verdict": "discard", "figures": [figure], "missed": ["throughput_rps"], "cost": None,
            "throughput_rps": None, "latency_p99": None,  # a bound, not a figure to plot
            "reason": f"the `{bound.store}` server completes at most {bound.rps:,.0f} req/s"}
