"""The capacity search's screen: where the flow model can place the answer before the DES judges it.

A discrete-event run of ``peak.yaml`` takes minutes; the flow model (``engine="fluid"``,
docs/fluid.md) runs the same scenario in about a second. The screen runs the capacity
search's doubling and bisection on the flow model to find a bracket cheaply; the search
(:func:`memstack_capacity.api.capacity.find_capacity`) then runs the discrete-event engine
only at the bracket's ends, widens it with DES runs where the flow model was wrong, and
bisects with the DES inside it. Every load in the answer was judged by the DES; the screen
only decides where to look.

This module owns what is particular to the screen:

* whether the flow model can run a scenario (:func:`unavailable`: the capability table,
  :mod:`memstack_capacity.engine.capabilities`);
* how a flow-model run is judged against the targets (:func:`judge_flow_summary`). The flow
  model gives percentiles only for a single CPU tier; for any other scenario its p50/p95/p99
  are ``None``, and a missing figure misses its target, so a plain judge would fail every
  load of a scenario with a latency-percentile target. The screen judges those targets on a
  **stand-in**: the mean latency ``W`` times ``ln(1 / (1 − q))`` for the percentile ``q``
  (``W·ln 100 ≈ 4.61 W`` for p99, ``W·ln 20`` for p95, ``W·ln 2`` for p50). That is exact when
  the response time is exponential (``P(T > t) = e^(−t/W)``, an M/M/1 queue's sojourn time);
  a response time with a heavier or lighter tail than that moves the screen's bracket,
  which the DES re-check of its ends then corrects. The flow model gives no job latency at
  all, so a ``job_latency_p99`` target is not judged by the screen (it counts as met there
  and the DES judges it);
* the screen's record (:class:`Screen`): its trials, its bracket, and why it did not run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from memstack_capacity.engine import capabilities
from memstack_capacity.results.summary import judge_targets

__all__ = ["Screen", "STAND_INS", "SCREENS", "unavailable", "judge_flow_summary"]

#: The screens find_capacity knows, by name (``None``: no screen).
SCREENS = ("fluid",)

#: A latency percentile's stand-in factor on the mean: ``ln(1 / (1 − q))``, the q-quantile of
#: an exponential distribution of mean 1.
STAND_INS = {"p50": math.log(2.0), "p95": math.log(20.0), "p99": math.log(100.0)}

#: Why a target carries no screen verdict of its own.
NOT_JUDGED = "not judged by the screen (the flow model gives no job latency); the DES judges it"


def stand_in_rule(stat: str) -> str:
    """``mean × ln(100) (exact for an exponential response time)``."""
    q = {"p50": "2", "p95": "20", "p99": "100"}[stat]
    return f"mean × ln({q}) (exact for an exponential response time)"


def unavailable(scenario, engine: str = "auto") -> str | None:
    """Why the fluid screen cannot serve the search of ``scenario`` on ``engine``, or None when it can."""
    if engine == "fluid":
        return "the search itself runs on the flow model (--engine fluid), so a fluid screen adds nothing"
    why = capabilities.reasons(scenario, "fluid")
    if why:
        return "the flow model does not model " + "; ".join(why)
    return None


def judge_flow_summary(summary: dict, scenario) -> dict:
    """A flow-model run's summary judged for the screen against ``scenario``'s targets (already scaled).

    A copy of ``summary`` whose missing latency percentiles are their stand-ins (the mean
    times :data:`STAND_INS`), whose ``targets`` are judged again on those figures, each
    verdict judged on a stand-in naming it in ``stand_in``, and whose ``met`` follows. A
    figure the flow model has itself is used as it is; a figure missing because nothing
    completed still misses its target.
    """
    out = copy.deepcopy(summary)
    latency = out["requests"]["latency_s"]
    mean = latency.get("mean")
    replaced = set()
    for stat, factor in STAND_INS.items():
        if latency.get(stat) is None and mean is not None and math.isfinite(mean):
            latency[stat] = mean * factor
            replaced.add(f"latency_{stat}")
    verdicts = judge_targets(out, scenario.targets)
    for verdict in verdicts:
        if verdict["name"] in replaced:
            verdict["stand_in"] = stand_in_rule(verdict["name"].removeprefix("latency_"))
            verdict.pop("note", None)
        elif verdict["name"] == "job_latency_p99" and verdict["value"] is None:
            verdict["met"] = True
            verdict["stand_in"] = NOT_JUDGED
            verdict.pop("note", None)
    out["targets"] = verdicts
    out["met"] = all(v["met"] for v in verdicts)
    return out


@dataclass
class Screen:
    """What the screen did: its trials (each judged on the flow model) and the bracket they gave.

    ``lo``/``hi`` are the screen's passing and failing trials at the end of its bisection
    (either ``None`` when its doubling or halving reached a bound); ``note`` says why the
    screen did not run (``trials`` is then empty); ``stand_ins`` names every target the
    screen judged on a stand-in, with the rule.
    """

    engine: str = "fluid"
    trials: list = field(default_factory=list)
    lo: object | None = None
    hi: object | None = None
    note: str | None = None
    stand_ins: dict = field(default_factory=dict)

    @property
    def used(self) -> bool:
        return self.note is None

    def to_dict(self, trial_dict) -> dict:
        """JSON-ready; ``trial_dict`` renders a trial as the search's own trials are rendered."""
        return {
            "engine": self.engine,
            "used": self.used,
            "note": self.note,
            "stand_ins": dict(self.stand_ins),
            "passes_at": self.lo.load if self.lo is not None else None,
            "fails_at": self.hi.load if self.hi is not None else None,
            "trials": [trial_dict(t) for t in self.trials],
        }

    def describe(self, fmt, unit: str) -> list[str]:
        """Lines for the search's description."""
        if not self.used:
            return [f"screen: none ({self.note}); every load was judged by the DES"]
        ends = []
        if self.lo is not None:
            ends.append(f"passes at {fmt(self.lo.load)}")
        if self.hi is not None:
            ends.append(f"fails at {fmt(self.hi.load)}")
        lines = [f"screen ({self.engine}, {len(self.trials)} trial(s)): " + ", ".join(ends) + f" {unit}; "
                 "its ends were re-checked with the DES"]
        for name, rule in self.stand_ins.items():
            lines.append(f"  screen stand-in: {name} judged on {rule}")
        return lines
