"""The capacity search: the most load a configuration serves while meeting every target.

The load is the scenario's own profile times a multiplier ``m``: a closed model's
``users`` at every profile point (rounded to whole users), an open model's ``rps``.
A multiplier **passes** when every one of the ``replications`` runs (seeds
``seed … seed+K-1``, the same seeds for every multiplier: common random numbers)
meets every target; the pass fraction is kept for the report. Requiring all runs
is the conservative reading of a CI gate: the answer is a load at which none of
the sampled runs missed.

Search without a screen (``screen=None``): from ``m = 1`` double (or halve) until a passing
and a failing multiplier bracket the answer, then bisect (geometrically) until
``hi / lo <= 1 + rel_tol``. The answer is the bracket's lower end, the largest load seen to
pass; the truth lies in ``[lo, hi)`` up to run-to-run noise, which replications reduce.

Search with the fluid screen (``screen="fluid"``, :mod:`memstack_capacity.api.capacity_screen`):
the same doubling and bisection first run on the flow model (about a second a run), judged
with a stand-in for the latency percentiles it lacks; then the screen walks on above its
bracket on a ``1 + rel_tol`` grid to twice its highest pass, so that a dip where the flow model
fails and then passes again is not taken for the edge (:func:`_past_dips`). Then the discrete-event engine judges
the screen's bracket ends — the lower end first; the upper end only when the lower passed —
and where the screen was wrong the bracket is widened with DES runs, the step growing
geometrically from the screen's width (``1 + rel_tol``, then its square, …). Then the DES
bisects inside it as above. The answer has the same meaning as without the screen: its
``lo`` and ``hi`` were both judged by the DES and are within ``1 + rel_tol`` of each other;
the screen only saves the DES runs spent on finding the bracket.
"""

from __future__ import annotations

import math

from memstack_capacity.api.capacity_result import (CapacityResult, Trial, clopper_pearson_lower, judge_trial,
                                                    scaled_target_rules)

__all__ = ["CapacityResult", "Trial", "scale_load", "peak_load", "find_capacity", "check_search", "judge_trial",
           "clopper_pearson_lower"]


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


def check_search(scenario, replications: int = 3, rel_tol: float = 0.05, screen: str | None = None) -> None:
    """Raise ValueError, saying why, when a capacity search of ``scenario`` cannot be asked; called
    before anything is simulated, so a ValueError from a run is never taken for bad input."""
    from memstack_capacity.api import capacity_screen

    if replications < 1:
        raise ValueError(f"replications must be at least 1 (got {replications})")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be > 0 (got {rel_tol})")
    if screen is not None and screen not in capacity_screen.SCREENS:
        raise ValueError(f"screen must be None or one of {', '.join(capacity_screen.SCREENS)} (got {screen!r})")
    if not any(v is not None for v in scenario.targets.model_dump().values()):
        raise ValueError("the scenario sets no targets, so any load 'meets' them; add `targets:`")
    if peak_load(scenario)[1] <= 0:
        raise ValueError("the scenario's load profile is zero everywhere; nothing to scale")


def find_capacity(scenario, replications: int = 1, seed: int | None = None, rel_tol: float = 0.05,
                  max_multiplier: float = 64.0, min_multiplier: float = 1 / 64, simulate=None,
                  progress=None, run_many=None, *, screen: str | None = None,
                  engine: str = "auto") -> CapacityResult:  # fmt: skip
    """Search the largest load multiplier at which every replication meets every target.

    Args:
        scenario: The scenario; its ``targets`` define passing (at least one is needed).
        replications: Runs per multiplier, seeds ``seed … seed+K-1``.
        seed: First seed; the scenario's own when ``None``.
        rel_tol: Stop when the bracket ``hi / lo`` is at most ``1 + rel_tol``.
        max_multiplier, min_multiplier: Where the doubling and halving give up.
        simulate: ``simulate(scenario, seed=, engine=) -> Result``; the package's by default.
        progress: Called with each :class:`Trial` as it completes (the screen's too; ``Trial.engine``
            tells them apart); ``None``: a plain line per trial on stderr
            (:class:`~memstack_capacity.api.progress.TrialLines`), ``False``: nothing.
        run_many: ``run_many(scenario, seeds, engine=None) -> [summary, …]``, to run a load's
            replications together (on a process pool or a Dask cluster:
            :func:`memstack_capacity.api.batch.runner`); ``engine`` is ``"fluid"`` for the screen's
            runs and ``None`` for the executor's own. By default they run one after another
            through ``simulate``.
        screen: ``None`` (every load judged by the DES) or ``"fluid"``: locate the bracket with the
            flow model first (:mod:`memstack_capacity.api.capacity_screen`). Where the flow model
            cannot run the scenario the search goes on without a screen and ``result.screen.note``
            says why.
        engine: The engine that judges the loads (``auto``: the fastest exact engine for each load).

    Returns:
        The bracket, every DES trial, and the screen's record.

    Raises:
        ValueError: Without targets, or for replications < 1, rel_tol <= 0 or an unknown screen.
    """
    from memstack_capacity.api import capacity_screen
    from memstack_capacity.api.progress import auto_trial_progress
    from memstack_capacity.engine.capabilities import choose

    check_search(scenario, replications, rel_tol, screen)
    if simulate is None:
        from memstack_capacity.api.simulation import simulate
    if run_many is None:
        own_engine = engine

        def run_many(scaled, seeds, engine=None):
            return [simulate(scaled, seed=s, engine=engine or own_engine).summary for s in seeds]
    mode, base = peak_load(scenario)
    first = scenario.seed if seed is None else int(seed)
    seeds = [first + i for i in range(replications)]
    rules = scaled_target_rules(scenario)
    progress = auto_trial_progress(f"capacity {scenario.name}", progress)

    def trial_fn(judge_engine: str | None, book: list[Trial]):
        """A ``trial(m)`` that runs each load once on ``judge_engine`` (None: the search's own)."""
        seen: dict[float, Trial] = {}

        def trial(m: float) -> Trial:
            m = _whole(m, mode, base)
            if m in seen:
                return seen[m]
            scaled = scale_load(scenario, m)
            if judge_engine is None:
                summaries = run_many(scaled, seeds)
                used = choose(scaled, engine).engine
            else:
                summaries = [capacity_screen.judge_flow_summary(s, scaled)
                             for s in run_many(scaled, seeds, engine=judge_engine)]
                used = judge_engine
            passed, targets = judge_trial(summaries)
            t = Trial(m, base * m, passed, replications, targets, used)
            seen[m] = t
            book.append(t)
            if progress is not None:
                progress(t)
            return t

        return trial

    trials: list[Trial] = []
    des = trial_fn(None, trials)
    bounds = (min_multiplier, max_multiplier, mode, base)
    record = None
    if screen is not None:
        record = capacity_screen.Screen(engine=screen, note=capacity_screen.unavailable(scenario, engine))
    if record is None or not record.used:
        lo, hi = _bracket(des, 1.0, 2.0, False, bounds)
    else:
        fluid = trial_fn(screen, record.trials)
        lo, hi = _bisect(fluid, *_bracket(fluid, 1.0, 2.0, False, bounds), rel_tol, mode)
        record.lo, record.hi = _past_dips(fluid, lo, hi, 1 + rel_tol, bounds)
        record.stand_ins = {f"{t['name']}.{t['kind']}": t["stand_in"] for tr in record.trials for t in tr.targets
                            if t.get("stand_in")}
        lo, hi = _recheck(des, record.lo, record.hi, rel_tol, bounds)
    if lo is not None and hi is not None:
        lo, hi = _bisect(des, lo, hi, rel_tol, mode)
    return CapacityResult(mode, base, lo, hi, trials, rules, record)


def _whole(m: float, mode: str, base: float) -> float:
    """Whole users: the multiplier of the nearest whole number of users (at least one)."""
    return max(round(base * m), 1) / base if mode == "users" else m


def _next(m: float, step: float, up: bool, bounds, clamp: bool = False) -> float | None:
    """The multiplier one step of ``step`` above (``up``) or below ``m``, at least one user away in
    users mode; ``None`` past the search's bounds (or below one user). With ``clamp`` a step that
    would pass a bound lands on it, unless ``m`` is there already."""
    low, high, mode, base = bounds
    n = m * step if up else m / step
    if mode == "users":  # whole users: a step too small to change the load takes one user
        users = round(base * m)
        n = max(n, (users + 1) / base) if up else min(n, (users - 1) / base)
        if round(base * n) < 1:
            return None
    if clamp:
        n = min(n, high) if up else max(n, low)
    elif not low <= n <= high:
        return None
    return n if _whole(n, mode, base) != m else None  # a bound within half a user of m: nothing new


def _bracket(trial, start: float, step: float, grow: bool, bounds, lo=None, hi=None):
    """From ``start`` (or from the passing ``lo`` / failing ``hi`` given), step up while loads pass and
    down while they fail until a passing and a failing load bracket the answer.

    The step is ``step`` each time, or squared after each step with ``grow`` (1.05, 1.10, 1.22,
    1.48, …: a few runs when the bracket is near, still reaching the bounds quickly when it is
    far; a growing step that would jump past a bound tries the bound itself). Returns ``(lo, hi)``; ``lo`` is ``None`` when every load down to the lower bound
    fails, ``hi`` when every load up to the upper bound passes.
    """
    if lo is None and hi is None:
        t = trial(start)
        lo, hi = (t, None) if t.passed else (None, t)
    while lo is None:
        m = _next(hi.multiplier, step, False, bounds, clamp=grow)
        if m is None:
            return None, hi
        t = trial(m)
        step = step * step if grow else step
        lo, hi = (t, hi) if t.passed else (None, t)
    while hi is None:
        m = _next(lo.multiplier, step, True, bounds, clamp=grow)
        if m is None:
            return lo, None
        t = trial(m)
        step = step * step if grow else step
        lo, hi = (lo, t) if not t.passed else (t, None)
    return lo, hi


def _bisect(trial, lo, hi, rel_tol: float, mode: str):
    """Bisect (geometrically) between a passing ``lo`` and a failing ``hi`` until ``hi / lo <= 1 + rel_tol``."""
    if lo is None or hi is None:
        return lo, hi
    while hi.multiplier / lo.multiplier > 1 + rel_tol:
        t = trial(math.sqrt(lo.multiplier * hi.multiplier))
        if t.multiplier in (lo.multiplier, hi.multiplier):  # whole users: nothing left between
            break
        lo, hi = (t, hi) if t.passed else (lo, t)
    return lo, hi


def _past_dips(trial, lo, hi, step: float, bounds):
    """The screen's bracket moved past the flow model's dips: from ``hi`` walk up on a grid of ratio
    ``step`` (``1 + rel_tol``) to twice the highest passing load; a load that passes there becomes
    ``lo`` (and the first failure above it ``hi``), and the walk goes on to twice that.

    The flow model need not fail monotonically: on ``peak.yaml`` (seed 1) it fails from 257 to
    312 users, where Neo4j's cores saturate while the worker tier still runs its jobs, passes
    again from 327 to 439 users, where the workers crash-loop and their jobs leave Neo4j, and
    fails from 461 users on. Bisection alone stops at the first edge (244–257 users, half the
    DES's answer); a failure is taken as the edge only when it lasts for a doubling of the
    load. Flow-model runs take about a second, so the walk's ~15 runs cost seconds.
    """
    if lo is None or hi is None:
        return lo, hi
    m = hi.multiplier
    while (m := _next(m, step, True, bounds)) is not None and m <= 2 * lo.multiplier:
        t = trial(m)
        if t.passed:
            lo, hi = t, None
        elif hi is None:
            hi = t
        m = t.multiplier
    return lo, hi


def _recheck(des, screen_lo, screen_hi, rel_tol: float, bounds):
    """The screen's bracket judged by the DES: its lower end first, then its upper end when the lower
    passed (a failing lower end already bounds the answer from above). Where the DES disagrees, the
    bracket is widened with DES runs from the end it judged, the step growing from the screen's width.
    """
    width = max(screen_hi.multiplier / screen_lo.multiplier if screen_lo and screen_hi else 0.0, 1 + rel_tol)
    lo = hi = None
    if screen_lo is not None:
        t = des(screen_lo.multiplier)
        lo, hi = (t, None) if t.passed else (None, t)
    if screen_hi is not None and hi is None:
        t = des(screen_hi.multiplier)
        lo, hi = (lo, t) if not t.passed else (t, None)
    return _bracket(des, 1.0, width, True, bounds, lo, hi)
