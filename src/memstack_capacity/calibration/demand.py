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
seeded, so the same data and seed give the same interval), percentile intervals. Windows are
drawn within their recording (a stratified bootstrap: each resample keeps every recording's
window count, so a recording of one mix is never replaced by another's), and in moving blocks
of consecutive windows when the fit's residuals are correlated from one window to the next
(Künsch, "The jackknife and the bootstrap for general stationary observations", Annals of
Statistics 17 (1989) 1217–1241; Lahiri, *Resampling Methods for Dependent Data*, Springer 2003).
Windows much shorter than the system's memory (a queue carried from one to the next, a
5-minute ``rate`` sampled every 30 s) are not independent, and drawing them one by one would
make the intervals too narrow. The block length (:func:`block_length`) is 1 (windows drawn one
by one) unless the residuals' lag-1 autocorrelation ρ is significantly above 0 (ρ > 2/√n), and
then Carlstein's rule for an AR(1) dependence, ``ℓ = (2ρ/(1−ρ²))^(2/3) (3n/2)^(1/3)``
(Carlstein, Annals of Statistics 14 (1986) 1171–1179; Lahiri 2003, §7.2), at most a third of
the recording so that it holds three blocks or more.

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
    #: The residuals' lag-1 autocorrelation (None: too few windows) and the bootstrap's block length.
    rho: float | None = None
    block: int = 1
    recordings: int = 1

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


#: The most a residual autocorrelation is taken as (Carlstein's rule diverges as ρ → 1).
MAX_RHO = 0.95


def _groups(groups, n: int) -> np.ndarray:
    """Each window's recording as 0, 1, … (all 0 when ``groups`` is None)."""
    if groups is None:
        return np.zeros(n, dtype=int)
    return np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)


def lag1_autocorrelation(residuals: np.ndarray, groups=None) -> float | None:
    """The residuals' lag-1 autocorrelation, pairs of consecutive windows within one recording
    (each recording's residuals centred on its own mean); None with fewer than 3 pairs."""
    residuals = np.asarray(residuals, dtype=float)
    g = _groups(groups, len(residuals))
    centred = residuals - np.bincount(g, residuals)[g] / np.bincount(g)[g]
    same = g[1:] == g[:-1]
    denominator = float(centred @ centred)
    if same.sum() < 3 or denominator <= 0:
        return None
    return float((centred[1:] * centred[:-1])[same].sum() / denominator)


def block_length(residuals: np.ndarray, groups=None) -> int:
    """The moving block's length in windows (see the module's docstring): 1 unless the lag-1
    autocorrelation ρ passes 2/√n (a one-sided 2.3 % test of ρ = 0 for independent windows),
    else Carlstein's AR(1) rule on the mean recording's n windows."""
    n = len(residuals)
    rho = lag1_autocorrelation(residuals, groups)
    if rho is None or rho <= 2.0 / np.sqrt(n):
        return 1
    rho = min(rho, MAX_RHO)
    per_recording = n / (int(_groups(groups, n).max()) + 1)
    return max(1, int(round((2 * rho / (1 - rho**2)) ** (2 / 3) * (1.5 * per_recording) ** (1 / 3))))


def resample(rng: np.random.Generator, b: int, groups, n: int, block: int = 1) -> np.ndarray:
    """``b`` resamples of ``n`` window indices (b × n): each recording's windows drawn within it,
    as many as it has, in moving blocks of ``block`` consecutive windows (at most a third of the
    recording's; block 1 is the ordinary pairs bootstrap)."""
    g = _groups(groups, n)
    if block <= 1 and g.max() == 0:
        return rng.integers(0, n, (b, n))
    out = np.empty((b, n), dtype=int)
    for k in range(int(g.max()) + 1):
        rows = np.flatnonzero(g == k)
        size = len(rows)
        length = max(1, min(block, size // 3))
        count = -(-size // length)
        starts = rng.integers(0, size - length + 1, (b, count))
        picked = (starts[:, :, None] + np.arange(length)).reshape(b, -1)[:, :size]
        out[:, rows] = rows[picked]
    return out


def bootstrap_nnls(design: np.ndarray, y: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP,
                   groups=None, block: int = 1):
    """The NNLS coefficients of ``b`` pairs-bootstrap resamples (:func:`resample`)."""
    draws = np.empty((b, design.shape[1]))
    for i, rows in enumerate(resample(rng, b, groups, len(y), block)):
        draws[i] = nnls(design[rows], y[rows])[0]
    return draws


def mix_demand(throughput: np.ndarray, cores: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP,
               level: float = LEVEL, groups=None, block: int = 1) -> Coefficient:
    """The utilisation law on the totals: CPU seconds per request of the measured mix, ``ΣU/ΣX``."""
    total = throughput.sum(axis=1) if throughput.ndim == 2 else throughput
    if total.sum() <= 0:
        return Coefficient("mix", None, None, None, False, "no requests were measured")
    estimate = float(cores.sum() / total.sum())
    if len(total) < 5:
        return Coefficient("mix", estimate, None, None, True, f"{len(total)} window(s): no interval")
    rows = resample(rng, b, groups, len(total), block)
    ratios = cores[rows].sum(axis=1) / np.maximum(total[rows].sum(axis=1), 1e-300)
    low, high = _percentiles(ratios, level)
    return Coefficient("mix", estimate, float(low), float(high), True)


def estimate_demands(throughput: np.ndarray, cores: np.ndarray, classes: list[str], pods: np.ndarray | None = None,
                     t: np.ndarray | None = None, seed: int = 0, b: int = BOOTSTRAP, level: float = LEVEL,
                     groups: np.ndarray | None = None, block: int | None = None) -> DemandFit:
    """Fit ``cores ≈ b·pods + throughput @ D`` (see the module's docstring).

    ``throughput`` is windows × classes (req/s), ``cores`` the CPU cores used in each window,
    ``pods`` the running pods (None: no background term), ``groups`` each window's recording
    (None: one recording; windows in time order within each), ``block`` the bootstrap's block
    length (None: :func:`block_length`'s rule). Windows with a missing value are left out. The
    same ``seed`` gives the same intervals.
    """
    throughput = np.asarray(throughput, dtype=float).reshape(len(cores), -1)
    cores = np.asarray(cores, dtype=float)
    keep = np.isfinite(cores) & np.all(np.isfinite(throughput), axis=1)
    if pods is not None:
        pods = np.asarray(pods, dtype=float)
        keep &= np.isfinite(pods)
    throughput, cores = throughput[keep], cores[keep]
    pods = pods[keep] if pods is not None else None
    groups = _groups(groups, len(keep))[keep]
    t = (np.asarray(t, dtype=float)[keep] if t is not None else np.arange(len(cores), dtype=float))
    rng = np.random.default_rng(seed)
    # Classes with no request in any window are not in the design: nothing could identify them.
    active = [i for i in range(len(classes)) if throughput[:, i].sum() > 0]
    silent = [classes[i] for i in range(len(classes)) if i not in active]
    # The block length from the full design's residuals (no random draw: the same seed gives
    # the same intervals as before whenever the block is 1 and there is one recording).
    design = throughput[:, active] if pods is None else np.column_stack([throughput[:, active], pods])
    rho, chosen = None, 1
    if len(cores) and design.shape[1]:
        residuals = cores - design @ nnls(design, cores)[0]
        rho, chosen = lag1_autocorrelation(residuals, groups), block_length(residuals, groups)
    block = chosen if block is None else int(block)
    mix = mix_demand(throughput, cores, rng, b, level, groups, block)
    notes: list[str] = []
    if block > 1:
        notes.append(f"the fit's residuals are correlated from one window to the next (lag-1 autocorrelation "
                     f"{rho:.2f}): the bootstrap draws blocks of {block} consecutive windows")
    fit = _fit(throughput[:, active], cores, [classes[i] for i in active], pods, rng, b, level, notes, groups, block)
    if pods is not None and not fit[1].identifiable:
        notes.append(f"the background CPU per pod is not identified ({fit[1].why}); fitted without it (assumed 0)")
        background_why = fit[1].why
        fit = _fit(throughput[:, active], cores, [classes[i] for i in active], None, rng, b, level, notes, groups,
                   block)
        background = Coefficient("background", None, None, None, False, background_why)
    else:
        background = fit[1] if pods is not None else Coefficient("background", None, None, None, False, "no pod count")
    demands, _, fitted, r2, rsd = fit
    for name in silent:
        demands[name] = Coefficient(name, None, None, None, False, "no request of this class was measured")
    demands = {c: demands[c] for c in classes}
    return DemandFit(demands=demands, background=background, mix=mix, r2=r2, residual_sd=rsd, windows=len(cores),
                     observed=cores, fitted=fitted, t=t, notes=notes, silent=tuple(silent), rho=rho, block=block,
                     recordings=int(groups.max()) + 1 if len(groups) else 1)


def _fit(x: np.ndarray, y: np.ndarray, classes: list[str], pods, rng, b: int, level: float, notes: list[str],
         groups=None, block: int = 1):
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
        draws = bootstrap_nnls(design, y, rng, b, groups, block)
        low, high = _percentiles(draws, level)
        for i, name in enumerate(names):
            half = (high[i] - low[i]) / 2.0
            wide = coef[i] <= 0 or half > MAX_RELATIVE_HALF_WIDTH * coef[i]
            why = (f"the interval ({low[i]:.3g} to {high[i]:.3g}) is wider than the estimate allows "
                   f"(half-width above {MAX_RELATIVE_HALF_WIDTH:.0%} of it)") if wide else ""
            out[name] = Coefficient(name, float(coef[i]), float(low[i]), float(high[i]), not wide, why)
    background = out.pop("background", Coefficient("background", None, None, None, False, "no pod count"))
    return out, background, fitted, r2, rsd
