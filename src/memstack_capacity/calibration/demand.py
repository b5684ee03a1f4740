"""CPU seconds per request, per request class, from CPU usage and throughput across windows.

The utilisation law (service demand law) says a resource's busy rate is the sum over classes
of throughput times demand: in window w, ``U_w = b·n_w + Σ_c X_{c,w} D_c``, with ``U_w`` the
CPU cores used, ``X_{c,w}`` class c's completions per second, ``D_c`` its CPU seconds per
request and ``b`` the cores a running pod burns serving nothing (``n_w`` pods). This is the
utilisation-regression family of resource demand estimation: Rolia & Vetland (1995), and the
approaches compared, with LibReDE's implementations, by Spinner, Casale, Brosig & Kounev,
"Evaluating approaches to resource demand estimation", Performance Evaluation 92 (2015)
92–111. The demands are fitted by non-negative least squares (Lawson & Hanson, scipy's
``nnls``): a demand is never negative.

Uncertainty: a pairs bootstrap over windows (windows drawn with replacement, the fit redone;
seeded, so the same data and seed give the same interval), percentile intervals. It treats
windows as independent given their throughputs; windows much shorter than the system's
memory (a queue carried from one to the next) make the intervals too narrow.

What the data cannot identify is said, not invented: a coefficient is unidentifiable when
there are fewer than ``p + 3`` windows for ``p`` coefficients, when its column is (nearly) a
combination of the others (the column-scaled design's condition number above
:data:`MAX_CONDITION`, e.g. classes whose shares never change), or when its bootstrap interval
is wider than its estimate (:data:`MAX_RELATIVE_HALF_WIDTH`). A background term the data
cannot identify is dropped (assumed 0, the utilisation law's own assumption) and the fit redone.
Whatever the classes, the mix's mean demand ``ΣU / ΣX`` (the utilisation law on the totals)
is always reported with its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

#: Bootstrap resamples and interval level.
BOOTSTRAP = 1000
LEVEL = 0.95
#: A design whose column-scaled condition number passes this is taken as collinear.
MAX_CONDITION = 1e3
#: A coefficient whose interval's half-width passes this fraction of its estimate is not identified.
MAX_RELATIVE_HALF_WIDTH = 0.5


@dataclass(frozen=True)
class Coefficient:
    """One fitted figure: estimate, interval (None where none can be given), identified or why not."""

    name: str
    estimate: float | None
    low: float | None
    high: float | None
    identifiable: bool
    why: str = ""


@dataclass
class DemandFit:
    """The fit: per-class demands (s), the background (cores per pod), the mix's demand law, the
    fit's quality (R², residual sd in cores), and what the plot needs (observed and fitted U)."""

    demands: dict[str, Coefficient]
    background: Coefficient
    mix: Coefficient
    r2: float | None
    residual_sd: float | None
    windows: int
    observed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fitted: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: list[str] = field(default_factory=list)

    #: Classes with no request in any window: nothing could identify them, and nothing is written for them.
    silent: tuple[str, ...] = ()

    @property
    def all_identified(self) -> bool:
        """Every class that was measured has its own demand identified (at least one was measured)."""
        measured = [c for name, c in self.demands.items() if name not in self.silent]
        return bool(measured) and all(c.identifiable for c in measured)


def condition(design: np.ndarray) -> float:
    """The condition number of the design with each column scaled to unit length (∞ if a column is 0)."""
    norms = np.linalg.norm(design, axis=0)
    if design.size == 0 or np.any(norms == 0):
        return float("inf")
    singular = np.linalg.svd(design / norms, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else float("inf")


def _percentiles(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    return np.quantile(draws, alpha, axis=0), np.quantile(draws, 1.0 - alpha, axis=0)


def bootstrap_nnls(design: np.ndarray, y: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP):
    """The NNLS coefficients of ``b`` pairs-bootstrap resamples (rows drawn with replacement)."""
    n = len(y)
    draws = np.empty((b, design.shape[1]))
    for i in range(b):
        rows = rng.integers(0, n, n)
        draws[i] = nnls(design[rows], y[rows])[0]
    return draws


def mix_demand(throughput: np.ndarray, cores: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP,
               level: float = LEVEL) -> Coefficient:
    """The utilisation law on the totals: CPU seconds per request of the measured mix, ``ΣU/ΣX``."""
    total = throughput.sum(axis=1) if throughput.ndim == 2 else throughput
    if total.sum() <= 0:
        return Coefficient("mix", None, None, None, False, "no requests were measured")
    estimate = float(cores.sum() / total.sum())
    if len(total) < 5:
        return Coefficient("mix", estimate, None, None, True, f"{len(total)} window(s): no interval")
    rows = rng.integers(0, len(total), (b, len(total)))
    ratios = cores[rows].sum(axis=1) / np.maximum(total[rows].sum(axis=1), 1e-300)
    low, high = _percentiles(ratios, level)
    return Coefficient("mix", estimate, float(low), float(high), True)


def estimate_demands(throughput: np.ndarray, cores: np.ndarray, classes: list[str], pods: np.ndarray | None = None,
                     t: np.ndarray | None = None, seed: int = 0, b: int = BOOTSTRAP, level: float = LEVEL) -> DemandFit:
    """Fit ``cores ≈ b·pods + throughput @ D`` (see the module's docstring).

    ``throughput`` is windows × classes (req/s), ``cores`` the CPU cores used in each window,
    ``pods`` the running pods (None: no background term). Windows with a missing value are
    left out. The same ``seed`` gives the same intervals.
    """
    throughput = np.asarray(throughput, dtype=float).reshape(len(cores), -1)
    cores = np.asarray(cores, dtype=float)
    keep = np.isfinite(cores) & np.all(np.isfinite(throughput), axis=1)
    if pods is not None:
        pods = np.asarray(pods, dtype=float)
        keep &= np.isfinite(pods)
    throughput, cores = throughput[keep], cores[keep]
    pods = pods[keep] if pods is not None else None
    t = (np.asarray(t, dtype=float)[keep] if t is not None else np.arange(len(cores), dtype=float))
    rng = np.random.default_rng(seed)
    mix = mix_demand(throughput, cores, rng, b, level)
    notes: list[str] = []
    # Classes with no request in any window are not in the design: nothing could identify them.
    active = [i for i in range(len(classes)) if throughput[:, i].sum() > 0]
    silent = [classes[i] for i in range(len(classes)) if i not in active]
    fit = _fit(throughput[:, active], cores, [classes[i] for i in active], pods, rng, b, level, notes)
    if pods is not None and not fit[1].identifiable:
        notes.append(f"the background CPU per pod is not identified ({fit[1].why}); fitted without it (assumed 0)")
        background_why = fit[1].why
        fit = _fit(throughput[:, active], cores, [classes[i] for i in active], None, rng, b, level, notes)
        background = Coefficient("background", None, None, None, False, background_why)
    else:
        background = fit[1] if pods is not None else Coefficient("background", None, None, None, False, "no pod count")
    demands, _, fitted, r2, rsd = fit
    for name in silent:
        demands[name] = Coefficient(name, None, None, None, False, "no request of this class was measured")
    demands = {c: demands[c] for c in classes}
    return DemandFit(demands=demands, background=background, mix=mix, r2=r2, residual_sd=rsd, windows=len(cores),
                     observed=cores, fitted=fitted, t=t, notes=notes, silent=tuple(silent))


def _fit(x: np.ndarray, y: np.ndarray, classes: list[str], pods, rng, b: int, level: float, notes: list[str]):
    """NNLS with bootstrap; (demands, background, fitted values, R², residual sd)."""
    design = x if pods is None else np.column_stack([x, pods])
    p, n = design.shape[1], len(y)
    names = classes + ([] if pods is None else ["background"])
    if n == 0 or p == 0:
        none = {c: Coefficient(c, None, None, None, False, "no windows with every value measured") for c in names}
        return ({c: none[c] for c in classes}, none.get("background", Coefficient("background", None, None, None, False,
                                                                                   "no pod count")),
                np.zeros(n), None, None)
    coef, _ = nnls(design, y)
    fitted = design @ coef
    residuals = y - fitted
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(residuals @ residuals) / ss_tot if ss_tot > 0 else None
    rsd = float(np.sqrt(residuals @ residuals / max(n - p, 1)))
    reason = None
    if n < p + 3:
        reason = f"{n} windows for {p} coefficients (at least {p + 3} needed)"
    cond = condition(design)
    if reason is None and cond > MAX_CONDITION:
        reason = f"collinear with the other columns (condition number {cond:.3g} > {MAX_CONDITION:g})"
    out: dict[str, Coefficient] = {}
    if reason is not None:
        for i, name in enumerate(names):
            out[name] = Coefficient(name, float(coef[i]), None, None, False, reason)
    else:
        draws = bootstrap_nnls(design, y, rng, b)
        low, high = _percentiles(draws, level)
        for i, name in enumerate(names):
            half = (high[i] - low[i]) / 2.0
            wide = coef[i] <= 0 or half > MAX_RELATIVE_HALF_WIDTH * coef[i]
            why = (f"the interval ({low[i]:.3g} to {high[i]:.3g}) is wider than the estimate allows "
                   f"(half-width above {MAX_RELATIVE_HALF_WIDTH:.0%} of it)") if wide else ""
            out[name] = Coefficient(name, float(coef[i]), float(low[i]), float(high[i]), not wide, why)
    background = out.pop("background", Coefficient("background", None, None, None, False, "no pod count"))
    return out, background, fitted, r2, rsd
