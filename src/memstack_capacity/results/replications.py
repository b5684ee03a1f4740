"""Figures over replications: the mean and a 95 % confidence interval (Student t, from scipy.stats).

A replicated summary has **the same shape and keys as one run's summary**, so code
that reads ``summary["requests"]["latency_s"]["p99"]`` works unchanged; each numeric
figure holds the mean over the replications, and a sibling key ``<key>_ci95`` holds
``[lo, hi]``, the 95 % confidence interval of that mean::

    "latency_s": {"p99": 0.41, "p99_ci95": [0.38, 0.44], ...}

Why siblings rather than ``{"mean": x, "ci95": [lo, hi]}`` in place of the number:
a nested value would change the type of every figure between K = 1 and K > 1 and
break every reader of summary.json (the CI baseline, notebooks, the report).

Rules:

- The interval is ``mean ± t(0.975, K−1) · s / √K`` with ``s`` the sample standard
  deviation; with one replication there is no interval and no ``_ci95`` key.
- ``seed`` is the first seed, ``seeds`` lists all of them, ``replications`` is K;
  ``duration_s`` and ``warmup_s`` are the same in every run and carry no interval.
- A figure missing (``None``) in any replication is ``None`` in the combination,
  with interval ``None``: a mean over the runs that happened to have it would hide
  the runs that did not (e.g. a class with no completed request).
- ``errors`` maps (status → count) treat an absent status as 0.
- ``alerts`` lists every replication's alerts, each with its ``replication`` index.
- Targets are judged on the interval (:func:`judge_interval`): **met** when the
  interval lies entirely on the right side of the limit, **missed** when entirely
  on the wrong side, **inconclusive** when it straddles it. ``met`` (top level)
  is true only when every target is met; inconclusive counts as not met.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property

from memstack_capacity.results.cost import PRICE_KEYS
from memstack_capacity.results.result import Result
from memstack_capacity.results.summary import judge_targets

#: Keys that describe the runs rather than measure them: no mean, no interval (prices among them).
_FIXED = {"scenario", "duration_s", "warmup_s", "replications", "seed", "hours_per_month", "hourly", *PRICE_KEYS}
#: Mappings of counts in which an absent key means zero.
_COUNT_MAPS = {"errors"}

def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (scipy.stats).

    scipy's quantile is exact to double precision for every ``df``; the table and
    series it replaces agreed with it to 5e-10 up to df = 30 and 3e-8 beyond.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    from scipy.stats import t as student_t  # here: importing scipy.stats costs the CLI's start a third of a second

    return float(student_t.ppf(0.975, df))


def mean_ci95(values: Sequence[float | None]) -> tuple[float | None, list[float] | None]:
    """The mean of ``values`` and its 95 % interval ``[lo, hi]`` (None with fewer than 2 values).

    Any ``None`` or NaN among the values makes both ``None``.
    """
    if not values or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None, None
    mean, half = mean_half_width(values)
    return mean, None if half is None else [mean - half, mean + half]


def mean_half_width(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of ``values`` (at least one, all numbers) and the half-width of its 95 % t-interval.

    The half-width is ``None`` with a single value. The report's ± and summary.json's
    ``_ci95`` both come from here.
    """
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t975(n - 1) * math.sqrt(var / n)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _combine(values: list, key: str | None = None) -> object:
    """Combine one node of K summaries (values[i] from replication i)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, Mapping) for v in present):
        if len(present) < len(values):
            return None
        keys: list = []
        for v in values:
            keys += [k for k in v if k not in keys]
        out: dict = {}
        for k in keys:
            default = 0 if key in _COUNT_MAPS else None
            children = [v.get(k, default) for v in values]
            out[k] = _combine(children, k)
            if k not in _FIXED and out[k] is not None and all(_is_number(c) for c in children) and len(values) > 1:
                out[f"{k}_ci95"] = mean_ci95(children)[1]
            elif k not in _FIXED and len(values) > 1 and any(_is_number(c) for c in children):
                out[f"{k}_ci95"] = None
        return out
    if values and all(_is_number(v) for v in values):
        if key in _FIXED:
            return values[0]
        return mean_ci95(values)[0]
    if any(_is_number(v) for v in values):
        return None
    if all(v == values[0] for v in values):
        return values[0]
    if all(isinstance(v, bool) for v in values):
        return all(values)
    return list(values)


def combine_summaries(summaries: Sequence[Mapping], targets=None) -> dict:
    """One summary from K runs' summaries: means, ``<key>_ci95`` siblings, interval verdicts.

    ``targets`` (a scenario's :class:`Targets`) re-judges the targets on the intervals;
    without it the combined ``targets`` list is left out.
    """
    if not summaries:
        raise ValueError("no summaries to combine")
    rest = [{k: v for k, v in s.items() if k not in ("alerts", "targets", "met")} for s in summaries]
    combined = _combine(rest)
    combined["replications"] = len(summaries)
    combined["seeds"] = [s.get("seed") for s in summaries]
    combined["alerts"] = [
        {**alert, "replication": r} for r, s in enumerate(summaries) for alert in s.get("alerts", [])
    ]
    if targets is not None:
        verdicts = judge_interval(combined, targets)
        combined["targets"] = verdicts
        combined["met"] = all(v["met"] for v in verdicts)
    return combined


def _bounds(node, index: int):
    """The summary with every figure that has an interval replaced by its lower (0) or upper (1) bound."""
    if isinstance(node, Mapping):
        out = {}
        for k, v in node.items():
            ci = node.get(f"{k}_ci95", ...) if isinstance(k, str) else ...
            if ci is ... or not _is_number(v):
                out[k] = _bounds(v, index)
            else:
                out[k] = None if ci is None else ci[index]
        return out
    return node


def judge_interval(combined: Mapping, targets) -> list[dict]:
    """Target verdicts on a combined summary, by the 95 % interval of each figure.

    Each verdict has ``name, kind, limit, value`` (the mean), ``value_ci95``,
    ``verdict`` (``"met"``, ``"missed"`` or ``"inconclusive"``) and ``met``
    (true only for ``"met"``). A figure without an interval (one replication) is
    judged on its value alone; a missing value is missed.
    """
    means = judge_targets(combined, targets)
    lows = judge_targets(_bounds(combined, 0), targets)
    highs = judge_targets(_bounds(combined, 1), targets)
    out = []
    for mean, lo, hi in zip(means, lows, highs):
        interval = None if lo["value"] is None or hi["value"] is None else [lo["value"], hi["value"]]
        if mean["value"] is None:
            interval = None
        verdict = interval_verdict(mean["value"], interval, mean["kind"], mean["limit"])
        out.append({**mean, "value_ci95": interval, "verdict": verdict, "met": verdict == "met"})
    return out


def interval_verdict(value, interval, kind: str, limit: float) -> str:
    """``"met"``, ``"missed"`` or ``"inconclusive"`` for a ``min`` or ``max`` limit.

    With an interval: met when all of it satisfies the limit, missed when none of it
    does, inconclusive otherwise. Without one, the value decides; no value is missed.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missed"
    lo, hi = interval if interval is not None else (value, value)
    if kind == "min":
        return "met" if lo >= limit else ("missed" if hi < limit else "inconclusive")
    return "met" if hi <= limit else ("missed" if lo > limit else "inconclusive")


class SummaryResult(Result):
    """A :class:`Result` whose summary came back from another process.

    Only the summary travels back from a worker (a run's full record can be large);
    the frames (``requests``, ``timeseries``, …) are rebuilt on first use by running
    the same scenario and seed again in this process, which gives the identical run.
    """

    def __init__(self, scenario, seed: int, summary: dict, engine: str = "auto"):
        self.scenario = scenario
        self.seed = int(seed)
        self.engine = engine
        self.__dict__["summary"] = summary  # pre-fills Result.summary (a cached_property)

    @cached_property
    def record(self):
        from memstack_capacity.engine.run import run

        return run(self.scenario, seed=self.seed, engine=self.engine)
