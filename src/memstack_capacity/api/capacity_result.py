"""What a capacity search found (:mod:`.capacity`): each load tried with its verdict and the
targets it missed, the bracket, its confidence, and how it reads as JSON and as text.

It judges summaries and formats; it never simulates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CapacityResult", "Trial", "judge_trial", "scaled_target_rules", "clopper_pearson_lower"]


@dataclass(frozen=True)
class Trial:
    """One multiplier tried: its load, how many runs met every target, and whether it passed.

    ``targets`` has one entry per target as judged at this load: ``name``, ``kind``,
    ``limit`` (a throughput limit scaled with the load, see :func:`.capacity.scale_load`) and
    ``missed_runs``, the runs that missed it (and ``stand_in`` on a screen's trial when that
    target was judged on a stand-in, :mod:`memstack_capacity.api.capacity_screen`). ``engine``
    is the engine that judged the trial: ``fluid`` for the screen's, else the one the search
    ran on (``auto``'s choice for that load: ``des``, ``hybrid`` or ``kernel``).
    """

    multiplier: float
    load: float
    passed_runs: int
    runs: int
    targets: tuple = ()
    engine: str = "des"

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
    """The search's outcome; ``lo`` is ``None`` when no multiplier tried passes.

    ``trials`` are the loads the DES judged (the answer comes from them alone); ``screen`` is
    what the screen did (:class:`~memstack_capacity.api.capacity_screen.Screen`), ``None``
    when the search ran without one.
    """

    mode: str  # "users" or "rps"
    base_load: float
    lo: Trial | None
    hi: Trial | None
    trials: list[Trial] = field(default_factory=list)
    #: The targets that scale with the load, each with a sentence saying how (:func:`scaled_target_rules`).
    scaled_targets: dict = field(default_factory=dict)
    screen: object | None = None

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
            "des_trials": len(self.trials),
            "des_runs": sum(t.runs for t in self.trials),
            "screen": self.screen.to_dict(_trial_dict) if self.screen is not None else None,
            "trials": [_trial_dict(t) for t in self.trials],
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
        if self.screen is not None:
            lines += self.screen.describe(fmt, unit)
            if self.screen.used:
                lines.append("screen tried: " + _tried_text(self.screen.trials, fmt))
                lines += _missed_lines(self.screen.trials, fmt, unit)
        engines = sorted({t.engine for t in self.trials})
        lines.append(f"tried on {'/'.join(engines) or 'no engine'} ({len(self.trials)} load(s), "
                     f"{sum(t.runs for t in self.trials)} run(s)): " + _tried_text(self.trials, fmt))
        lines += _missed_lines(self.trials, fmt, unit)
        for name, rule in self.scaled_targets.items():
            lines.append(f"note: {rule}")
        return "\n".join(lines)


def _trial_dict(t: Trial) -> dict:
    return {"multiplier": t.multiplier, "load": t.load, "engine": t.engine, "passed_runs": t.passed_runs,
            "runs": t.runs, "passed": t.passed, "failed_targets": [_target_key(m) for m in t.missed],
            "targets": [dict(v) for v in t.targets]}


def _tried_text(trials, fmt) -> str:
    return ", ".join(f"{fmt(t.load)} {'pass' if t.passed else 'fail'} ({t.passed_runs}/{t.runs})" for t in trials)


def _missed_lines(trials, fmt, unit: str) -> list[str]:
    """``  at 1200 users (des): missed latency_p99 ≤ 1 (1/1 runs)``, one per trial that missed a target."""
    return [f"  at {fmt(t.load)} {unit} ({t.engine}): missed " + "; ".join(_missed_text(m, t.runs) for m in t.missed)
            for t in trials if t.missed]


def _target_key(target: dict) -> str:
    return f"{target['name']}.{target['kind']}"


def _missed_text(target: dict, runs: int) -> str:
    """``latency_p99 ≤ 1 (3/3 runs)``."""
    sign = "≥" if target["kind"] == "min" else "≤"
    on = f" on {target['stand_in'].split(' (')[0]}" if target.get("stand_in") else ""
    return f"{target['name']} {sign} {target['limit']:.4g}{on} ({target['missed_runs']}/{runs} runs)"


def judge_trial(summaries: list[dict]) -> tuple[int, tuple]:
    """How many runs met every target, and per target (in the order of the verdicts) how many missed it."""
    passed = sum(bool(s["met"]) for s in summaries)
    targets = []
    for i, verdict in enumerate(summaries[0].get("targets", [])) if summaries else ():
        missed = sum(not s["targets"][i]["met"] for s in summaries)
        entry = {"name": verdict["name"], "kind": verdict["kind"], "limit": verdict["limit"], "missed_runs": missed}
        if verdict.get("stand_in"):
            entry["stand_in"] = verdict["stand_in"]
        targets.append(entry)
    return passed, tuple(targets)


def scaled_target_rules(scenario) -> dict:
    """The targets :func:`.capacity.scale_load` scales with the load, each with a sentence saying how."""
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
