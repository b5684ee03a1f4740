"""The capacity search: the most load a configuration serves while meeting every target.

The load is the scenario's own profile times a multiplier ``m``: a closed model's
``users`` at every profile point (rounded to whole users), an open model's ``rps``.
A multiplier **passes** when every one of the ``replications`` runs (seeds
``seed … seed+K-1``, the same seeds for every multiplier: common random numbers)
meets every target; the pass fraction is kept for the report. Requiring all runs
is the conservative reading of a CI gate: the answer is a load at which none of
the sampled runs missed.

Search: from ``m = 1`` double (or halve) until a passing and a failing multiplier
bracket the answer, then bisect (geometrically) until ``hi / lo <= 1 + rel_tol``.
The answer is the bracket's lower end, the largest load seen to pass; the truth
lies in ``[lo, hi)`` up to run-to-run noise, which replications reduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["CapacityResult", "Trial", "scale_load", "peak_load", "find_capacity", "judge_trial"]


@dataclass(frozen=True)
class Trial:
    """One multiplier tried: its load, how many runs met every target, and whether it passed.

    ``targets`` has one entry per target as judged at this load: ``name``, ``kind``,
    ``limit`` (a throughput limit scaled with the load, see :func:`scale_load`) and
    ``missed_runs``, the runs that missed it.
    """

    multiplier: float
    load: float
    passed_runs: int
    runs: int
    targets: tuple = ()

    @property
    def missed(self) -> list[dict]:
        """The targets missed in at least one run at this load."""
        return [t for t in self.targets if t["missed_runs"]]

    @property
    def pass_fraction(self) -> float:
        return self.passed_runs / self.runs

    @property
    def passed(self) -> bool:
        return self.passed_runs == self.runs


@dataclass
class CapacityResult:
    """The search's outcome; ``lo`` is ``None`` when no multiplier tried passes."""

    mode: str  # "users" or "rps"
    base_load: float
    lo: Trial | None
    hi: Trial | None
    trials: list[Trial] = field(default_factory=list)
    #: The targets that scale with the load, each with a sentence saying how (:func:`scaled_target_rules`).
    scaled_targets: dict = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.lo is not None

    @property
    def confidence(self) -> float | None:
        """One-sided 95 % lower bound on the chance that a run at the capacity meets every target.

        The Clopper–Pearson bound (scipy.stats.beta); with all K runs passing (the pass rule)
        it is ``0.05 ** (1 / K)``: 0.37 for K = 3, 0.74 for K = 10, 0.94 for K = 50. More
        replications, more confidence.
        """
        if self.lo is None:
            return None
        return clopper_pearson_lower(self.lo.passed_runs, self.lo.runs)

    def to_dict(self) -> dict:
        """JSON-ready figures: the capacity, its bracket, the confidence and every trial."""
        return {
            "mode": self.mode,
            "unit": "users" if self.mode == "users" else "req/s",
            "scenario_peak": self.base_load,
            "capacity": self.lo.load if self.lo else None,
            "multiplier": self.lo.multiplier if self.lo else None,
            "fails_at": self.hi.load if self.hi else None,
            "runs_per_load": self.trials[0].runs if self.trials else None,
            "pass_probability_lower_95": self.confidence,
            "scaled_targets": self.scaled_targets,
            "trials": [
                {"multiplier": t.multiplier, "load": t.load, "passed_runs": t.passed_runs, "runs": t.runs,
                 "passed": t.passed, "failed_targets": [_target_key(m) for m in t.missed],
                 "targets": [dict(v) for v in t.targets]}
                for t in self.trials
            ],
        }

    def describe(self) -> str:
        unit = "users" if self.mode == "users" else "req/s"
        fmt = (lambda x: f"{x:.0f}") if self.mode == "users" else (lambda x: f"{x:.1f}")
        lines = []
        if self.lo is None:
            lines.append(f"no load passes: even {fmt(self.trials[-1].load)} {unit} "
                         f"(×{self.trials[-1].multiplier:.3g} of the scenario's peak {fmt(self.base_load)}) misses a target")
        else:
            lines.append(f"capacity: {fmt(self.lo.load)} {unit} at peak (×{self.lo.multiplier:.3g} of the scenario's "
                         f"{fmt(self.base_load)}), every target met in {self.lo.passed_runs}/{self.lo.runs} runs")
            lines.append(f"confidence: a run at this load meets every target with probability ≥ {self.confidence:.2f} "
                         f"(95 % one-sided, Clopper–Pearson from {self.lo.runs}/{self.lo.runs}); more --replications "
                         "tighten it")
            if self.hi is not None:
                lines.append(f"bracket: passes at {fmt(self.lo.load)}, fails at {fmt(self.hi.load)} {unit} "
                             f"(targets met in {self.hi.passed_runs}/{self.hi.runs} runs)")
            else:
                lines.append(f"bracket: passes at {fmt(self.lo.load)} {unit}; the search stopped at its upper bound")
        lines.append("tried: " + ", ".join(f"{fmt(t.load)} {'pass' if t.passed else 'fail'} "
                                           f"({t.passed_runs}/{t.runs})" for t in self.trials))  # fmt: skip
        for t in self.trials:
            if t.missed:
                lines.append(f"  at {fmt(t.load)} {unit}: missed " + "; ".join(_missed_text(m, t.runs) for m in t.missed))
        for name, rule in self.scaled_targets.items():
            lines.append(f"note: {rule}")
        return "\n".join(lines)


def _target_key(target: dict) -> str:
    return f"{target['name']}.{target['kind']}"


def _missed_text(target: dict, runs: int) -> str:
    """``latency_p99 ≤ 1 (3/3 runs)``."""
    sign = "≥" if target["kind"] == "min" else "≤"
    return f"{target['name']} {sign} {target['limit']:.4g} ({target['missed_runs']}/{runs} runs)"


def judge_trial(summaries: list[dict]) -> tuple[int, tuple]:
    """How many runs met every target, and per target (in the order of the verdicts) how many missed it."""
    passed = sum(bool(s["met"]) for s in summaries)
    targets = []
    for i, verdict in enumerate(summaries[0].get("targets", [])) if summaries else ():
        missed = sum(not s["targets"][i]["met"] for s in summaries)
        targets.append({"name": verdict["name"], "kind": verdict["kind"], "limit": verdict["limit"],
                        "missed_runs": missed})
    return passed, tuple(targets)


def scaled_target_rules(scenario) -> dict:
    """The targets :func:`scale_load` scales with the load, each with a sentence saying how."""
    throughput = scenario.targets.throughput_rps
    if throughput is None:
        return {}
    limits = ", ".join(f"{k} {v:g}" for k, v in (("min", throughput.min), ("max", throughput.max)) if v is not None)
    return {"throughput_rps": f"the throughput target ({limits} req/s at the scenario's load) scales with the load: "
                              "at load × m it is the limit × m; latency and error-rate targets do not scale"}


def clopper_pearson_lower(successes: int, trials: int, alpha: float = 0.05) -> float:
    """The one-sided ``1 - alpha`` Clopper–Pearson lower bound on a success probability."""
    from scipy.stats import beta  # here: importing scipy.stats costs the CLI's start a third of a second

    if successes <= 0:
        return 0.0
    return float(beta.ppf(alpha, successes, trials - successes + 1))


def peak_load(scenario) -> tuple[str, float]:
    """``("users", peak users)`` for a closed model, ``("rps", peak rate)`` for an open one."""
    wl = scenario.workload
    if wl.users is not None:
        return "users", float(max(p.users for p in wl.users.profile))
    return "rps", float(max(p.rps for p in wl.arrivals.profile))


def scale_load(scenario, multiplier: float):
    """A copy of ``scenario`` with its load profile multiplied by ``multiplier``.

    A throughput target is a statement about the offered load ("serve ≥ 900 req/s of the
    ~1000 offered"), so it scales with the load: at twice the users the system must serve
    twice the throughput. Latency and error-rate targets do not scale.
    """
    if not (multiplier > 0 and math.isfinite(multiplier)):
        raise ValueError(f"multiplier must be a positive number (got {multiplier!r})")
    wl = scenario.workload
    if wl.users is not None:
        points = [p.model_copy(update={"users": int(round(p.users * multiplier))}) for p in wl.users.profile]
        new_wl = wl.model_copy(update={"users": wl.users.model_copy(update={"profile": points})})
    else:
        points = [p.model_copy(update={"rps": p.rps * multiplier}) for p in wl.arrivals.profile]
        new_wl = wl.model_copy(update={"arrivals": wl.arrivals.model_copy(update={"profile": points})})
    update = {"workload": new_wl}
    throughput = scenario.targets.throughput_rps
    if throughput is not None:
        scaled = {k: (v * multiplier if v is not None else None) for k, v in (("min", throughput.min), ("max", throughput.max))}
        update["targets"] = scenario.targets.model_copy(update={"throughput_rps": throughput.model_copy(update=scaled)})
    return scenario.model_copy(update=update)


def find_capacity(scenario, replications: int = 1, seed: int | None = None, rel_tol: float = 0.05,
                  max_multiplier: float = 64.0, min_multiplier: float = 1 / 64, simulate=None,
                  progress=None, run_many=None) -> CapacityResult:  # fmt: skip
    """Search the largest load multiplier at which every replication meets every target.

    Args:
        scenario: The scenario; its ``targets`` define passing (at least one is needed).
        replications: Runs per multiplier, seeds ``seed … seed+K-1``.
        seed: First seed; the scenario's own when ``None``.
        rel_tol: Stop when the bracket ``hi / lo`` is at most ``1 + rel_tol``.
        max_multiplier, min_multiplier: Where the doubling and halving give up.
        simulate: ``simulate(scenario, seed) -> Result``; the package's by default.
        progress: Called with each :class:`Trial` as it completes.
        run_many: ``run_many(scenario, seeds) -> [summary, …]``, to run a load's replications
            together (on a process pool or a Dask cluster: :func:`memstack_capacity.api.batch.runner`);
            by default they run one after another through ``simulate``.

    Returns:
        The bracket and every trial.

    Raises:
        ValueError: Without targets, or for replications < 1 or rel_tol <= 0.
    """
    if replications < 1:
        raise ValueError(f"replications must be at least 1 (got {replications})")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be > 0 (got {rel_tol})")
    if not any(v is not None for v in scenario.targets.model_dump().values()):
        raise ValueError("the scenario sets no targets, so any load 'meets' them; add `targets:`")
    if simulate is None:
        from memstack_capacity.api.simulation import simulate
    if run_many is None:
        def run_many(scaled, seeds):
            return [simulate(scaled, seed=s).summary for s in seeds]
    mode, base = peak_load(scenario)
    if base <= 0:
        raise ValueError("the scenario's load profile is zero everywhere; nothing to scale")
    first = scenario.seed if seed is None else int(seed)
    rules = scaled_target_rules(scenario)
    seen: dict[float, Trial] = {}
    trials: list[Trial] = []

    def trial(m: float) -> Trial:
        if mode == "users":  # whole users: multipliers giving the same peak are the same trial
            m = max(round(base * m), 1) / base
        if m in seen:
            return seen[m]
        scaled = scale_load(scenario, m)
        passed, targets = judge_trial(run_many(scaled, [first + i for i in range(replications)]))
        t = Trial(m, base * m, passed, replications, targets)
        seen[m] = t
        trials.append(t)
        if progress is not None:
            progress(t)
        return t

    t = trial(1.0)
    lo, hi = (t, None) if t.passed else (None, t)
    while lo is None:
        m = hi.multiplier / 2
        if m < min_multiplier:
            return CapacityResult(mode, base, None, hi, trials, rules)
        t = trial(m)
        lo, hi = (t, hi) if t.passed else (None, t)
    while hi is None:
        m = lo.multiplier * 2
        if m > max_multiplier:
            return CapacityResult(mode, base, lo, None, trials, rules)
        t = trial(m)
        lo, hi = (lo, t) if not t.passed else (t, None)
    while hi.multiplier / lo.multiplier > 1 + rel_tol:
        t = trial(math.sqrt(lo.multiplier * hi.multiplier))
        if t.multiplier in (lo.multiplier, hi.multiplier):  # whole users: nothing left between
            break
        lo, hi = (t, hi) if t.passed else (lo, t)
    return CapacityResult(mode, base, lo, hi, trials, rules)
