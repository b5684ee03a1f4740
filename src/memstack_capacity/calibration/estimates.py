"""Every figure calibration estimates, and :func:`calibrate`, which runs them on one set of windows.

Each figure is an :class:`Estimate`: the value, its interval, how it was fitted, whether the
data identify it (and why not), and the scenario keys it sets. The figures:

- **CPU per request** per class (:mod:`.demand`): the utilisation law fitted by NNLS. When every
  class is identified each class's CPU steps are scaled to its demand; when only the mix's
  demand ``ΣU/ΣX`` is, every class's CPU steps are scaled by one factor so that the measured
  mix costs that demand (the classes' ratios stay the scenario's: "level only").
- **Non-CPU time** per class: the mean response time at low load (the third of the windows with
  the least CPU per pod, or throughput without CPU) minus the CPU per request; the class's
  datastore call times are scaled so their sum (repeats counted, parallel branches by their
  slowest) equals it after its external calls' latency.
- **Memory**: ``working set = base × pods + per_request × in_flight`` by NNLS, in-flight
  measured or by Little's law (``Σ_c X_c R_c``); sets ``memory_base`` and every class's ``memory``.
- **Think time** of closed users: ``N = X (R + Z)`` (the interactive response time law) on the
  windows where the user count held still: ``Z = (ΣN − Σ X R) / ΣX``.
- **Mix**: each class's share of the requests (its ``weight``).
- **Load profile**: users (closed) or requests per second (open) per window, at its change
  points: the measured test, for replaying it (kept apart from the service times).

Intervals are 95 % percentile intervals of a pairs bootstrap over windows, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memstack_capacity.calibration import demand as demand_mod
from memstack_capacity.calibration.measurements import Windows
from memstack_capacity.calibration.steps import SCALABLE, call_steps, cpu_steps, scenario_cpu, step_times

#: The share of windows, by load, taken as "low load" for the non-CPU time.
LOW_LOAD_SHARE = 1 / 3
#: The most points a replayed load profile keeps.
MAX_PROFILE_POINTS = 60


@dataclass(frozen=True)
class Estimate:
    """One estimated figure and the scenario keys it sets (``settings``; empty: written nowhere)."""

    figure: str
    unit: str
    estimate: float | None
    low: float | None
    high: float | None
    identifiable: str  # "yes", "level only", "no"
    fit: str
    why: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    group: str = "service"  # "service" (calibration.yaml) or "load" (replay.yaml)


@dataclass
class Calibration:
    """What :func:`calibrate` found: the estimates, the CPU fit (for the plot), notes, the inputs."""

    scenario: str
    deployment: str
    sources: tuple[str, ...]
    windows: int
    window_s: float
    seed: int
    estimates: list[Estimate]
    cpu_fit: demand_mod.DemandFit | None
    notes: list[str]

    def settings(self, group: str = "service") -> dict[str, Any]:
        """The scenario keys of ``group``: ``service`` (calibration.yaml) or ``load`` (replay.yaml)."""
        out: dict[str, Any] = {}
        for e in self.estimates:
            if e.group == group:
                out.update(e.settings)
        return out

    def apply(self, scenario, replay: bool = False):
        """``scenario`` with the estimated service times (calibration.yaml's keys), and with
        ``replay`` the recorded load profile and duration too (replay.yaml's): what ``run``
        simulates given those files with ``--calibration``."""
        keys = {**self.settings("service"), **(self.settings("load") if replay else {})}
        return scenario.with_overrides(keys, source=f"{scenario.name} calibrated from {', '.join(self.sources)}",
                                       label=lambda p: f"the calibration: {p}")

    def table(self):
        """One row per estimate, as calibration.md: ``figure``, ``value`` and ``interval`` (text in the
        figure's unit), ``identifiable`` (yes, level only, no), ``fit``, ``note`` and ``written`` (whether
        it sets scenario keys), and the numbers ``estimate``, ``low``, ``high`` in ``unit`` (seconds,
        bytes, a fraction, users or req/s)."""
        import pandas as pd

        from memstack_capacity.calibration.overlay import _fmt

        rows = [{"figure": e.figure, "value": _fmt(e.estimate, e.unit),
                 "interval": "" if e.low is None else f"{_fmt(e.low, e.unit)} – {_fmt(e.high, e.unit)}",
                 "identifiable": e.identifiable, "fit": e.fit, "note": e.why, "written": bool(e.settings),
                 "estimate": e.estimate, "low": e.low, "high": e.high, "unit": e.unit} for e in self.estimates]
        return pd.DataFrame(rows).set_index("figure")


# ---- the figures -------------------------------------------------------------------------------


def _ms(v):
    return "n/a" if v is None else f"{v * 1000:.4g} ms"


def _interval_text(e_low, e_high, fmt) -> str:
    return "no interval" if e_low is None else f"[{fmt(e_low)}, {fmt(e_high)}]"


def _round(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (the overlay's numbers, stable across platforms)."""
    return float(f"{value:.{digits}g}")


def cpu_estimates(w: Windows, scenario, seed: int, b: int) -> tuple[list[Estimate], demand_mod.DemandFit | None]:
    requests = {r.name: r for r in scenario.workload.requests}
    classes = list(requests)
    if not w.has("cpu_cores") or w.one_window:
        why = "no CPU series measured (give --prometheus with cpu.json)" if not w.has("cpu_cores") else \
            "one window (a summary) cannot be fitted"
        return [Estimate(f"CPU per request: {c}", "s", None, None, None, "no", "", why) for c in classes], None
    pods = w.series["replicas"].to_numpy() if w.has("replicas") else None
    fit = demand_mod.estimate_demands(w.throughput[classes].to_numpy(), w.series["cpu_cores"].to_numpy(), classes,
                                      pods=pods, t=w.t, seed=seed, b=b, groups=w.recording)
    over = f"{fit.windows} windows" + (f" of {w.recordings} recordings" if w.recordings > 1 else "")
    quality = (f"NNLS over {over}, R² {fit.r2:.3f}, residual sd {fit.residual_sd:.3g} cores"
               if fit.r2 is not None else f"NNLS over {over}, residual sd "
               f"{(fit.residual_sd or 0):.3g} cores (R² undefined: the CPU never changed)")
    if fit.block > 1:
        quality += f", bootstrap in blocks of {fit.block} windows"
    out = []
    if fit.all_identified:
        for c in classes:
            coef = fit.demands[c]
            if c in fit.silent:
                out.append(Estimate(f"CPU per request: {c}", "s", None, None, None, "no", "", coef.why))
            else:
                out.append(_cpu_estimate(requests[c], coef.estimate, coef.low, coef.high, "yes", quality, ""))
    else:
        shares = w.throughput[classes].sum()
        shares = shares / shares.sum() if shares.sum() > 0 else shares
        stated = sum(shares[c] * scenario_cpu(requests[c]) for c in classes)
        mix = fit.mix
        why_classes = "; ".join(f"{c}: {fit.demands[c].why}" for c in classes if not fit.demands[c].identifiable)
        if mix.estimate is None or stated <= 0:
            for c in classes:
                out.append(Estimate(f"CPU per request: {c}", "s", fit.demands[c].estimate, fit.demands[c].low,
                                    fit.demands[c].high, "no", quality, why_classes or mix.why))
        else:
            k = mix.estimate / stated
            lo = None if mix.low is None else mix.low / stated
            hi = None if mix.high is None else mix.high / stated
            for c in classes:
                d = scenario_cpu(requests[c])
                out.append(_cpu_estimate(requests[c], k * d, None if lo is None else lo * d,
                                         None if hi is None else hi * d, "level only",
                                         f"the mix's demand {_ms(mix.estimate)} by the utilisation law; the classes' "
                                         f"ratios are the scenario's; {quality}",
                                         f"per class not identified ({why_classes})"))
        out.append(Estimate("CPU per request: the measured mix", "s", mix.estimate, mix.low, mix.high,
                            "yes" if mix.identifiable else "no", f"ΣU/ΣX over {fit.windows} windows", mix.why))
    bg = fit.background
    if bg.estimate is not None or pods is not None:
        out.append(Estimate("background CPU per pod", "cores", bg.estimate, bg.low, bg.high,
                            "yes" if bg.identifiable else "no", quality, bg.why))
    return out, fit


def _cpu_estimate(request, value, low, high, identifiable, fit, why) -> Estimate:
    steps = cpu_steps(request)
    stated = scenario_cpu(request)
    settings: dict[str, Any] = {}
    note = why
    if value is not None and steps and stated > 0:
        k = value / stated
        settings = {key: _round(mean * k) for key, _, mean in steps}
        if abs(sum(f * m for _, f, m in steps) - stated) > 1e-12 * max(stated, 1):
            note = (note + "; " if note else "") + "CPU steps without a mean (uniform, empirical) are left as they are"
    elif value is not None:
        note = (note + "; " if note else "") + "the class has no CPU step with a mean to carry it; not written"
    return Estimate(f"CPU per request: {request.name}", "s", value, low, high, identifiable, fit, note, settings)


def _low_load(w: Windows) -> np.ndarray:
    """Indices of the low-load windows: the third with the least CPU per pod (or throughput)."""
    if w.has("cpu_cores"):
        load = w.series["cpu_cores"] / (w.series["replicas"] if w.has("replicas") else 1.0)
    else:
        load = w.throughput.sum(axis=1)
    load = load.to_numpy(dtype=float)
    ok = np.flatnonzero(np.isfinite(load) & (w.throughput.sum(axis=1).to_numpy() > 0))
    if len(ok) == 0:
        return ok
    count = max(3, int(np.ceil(len(ok) * LOW_LOAD_SHARE)))
    return ok[np.argsort(load[ok], kind="stable")[:count]]


def non_cpu_estimates(w: Windows, scenario, cpu: dict[str, float | None], seed: int, b: int) -> list[Estimate]:
    out = []
    rng = np.random.default_rng(seed + 1)
    low = _low_load(w)
    for request in scenario.workload.requests:
        c = request.name
        figure = f"non-CPU time: {c}"
        d = cpu.get(c)
        x = w.throughput[c].to_numpy()[low] if len(low) else np.zeros(0)
        r = w.response_s[c].to_numpy()[low] if len(low) and c in w.response_s else np.zeros(0)
        ok = np.isfinite(r) & (x > 0)
        if d is None:
            out.append(Estimate(figure, "s", None, None, None, "no", "", "its CPU per request is not known"))
            continue
        if w.one_window and w.totals is not None and np.isfinite(w.totals.at[c, "mean_response_s"]):
            value = float(w.totals.at[c, "mean_response_s"]) - d
            out.append(_non_cpu(request, scenario, value, None, None, "yes",
                                "the whole test's mean response time minus CPU (one window: no interval, and not "
                                "at low load)", ""))
            continue
        if ok.sum() < 3:
            out.append(Estimate(figure, "s", None, None, None, "no", "",
                                f"{int(ok.sum())} low-load windows with a response time of {c} (3 needed)"))
            continue
        x, r = x[ok], r[ok]
        value = float((x * r).sum() / x.sum()) - d
        rows = demand_mod.resample(rng, b, None if w.recording is None else w.recording[low][ok], len(x))
        draws = (x[rows] * r[rows]).sum(axis=1) / x[rows].sum(axis=1) - d
        lo, hi = (float(v) for v in np.quantile(draws, [0.025, 0.975]))
        fit = (f"throughput-weighted mean response time over the {len(x)} lowest-load windows minus CPU "
               f"{_ms(d)} (the interval leaves out the CPU's own)")
        ident = "yes" if value > 0 and (hi - lo) / 2 <= demand_mod.MAX_RELATIVE_HALF_WIDTH * value else "no"
        why = "" if ident == "yes" else ("the response time at low load is below the CPU per request" if value <= 0
                                         else "the interval is wider than the estimate allows")
        out.append(_non_cpu(request, scenario, value, lo, hi, ident, fit, why))
    return out


def _non_cpu(request, scenario, value, low, high, ident, fit, why) -> Estimate:
    figure = f"non-CPU time: {request.name}"
    if ident != "yes":
        return Estimate(figure, "s", value, low, high, ident, fit, why)
    calls, external, fixed = step_times(request.steps, scenario.datastores)
    steps = call_steps(request)
    settings: dict[str, Any] = {}
    kept = external + fixed
    if not steps or calls <= 0:
        why = "the class has no datastore call with a mean time to carry it; not written"
    elif value <= kept:
        why = (f"at most its external calls' latency and the calls' round trips ({_ms(kept)}); not written")
    else:
        k = (value - kept) / calls
        settings = {key: _round(mean * k) for key, mean in steps}
        kept_parts = [f"its external calls' {_ms(external)}"] * (external > 0) + \
            [f"the calls' round trips {_ms(fixed)}"] * (fixed > 0)
        why = f"{' and '.join(kept_parts)} kept; the call times carry the rest" if kept_parts else ""
    return Estimate(figure, "s", value, low, high, ident, fit, why, settings)


def memory_estimates(w: Windows, scenario, deployment: str, seed: int, b: int) -> list[Estimate]:
    base_key = f"deployments.{deployment}.memory_base"
    if not w.has("memory_bytes") or not w.has("replicas") or w.one_window:
        why = ("no working-set series measured (memory.json)" if not w.has("memory_bytes") else
               "no pod count measured (replicas.json)" if not w.has("replicas") else "one window")
        return [Estimate("base memory per pod", "bytes", None, None, None, "no", "", why),
                Estimate("memory per request in flight", "bytes", None, None, None, "no", "", why)]
    if w.has("in_flight"):
        inflight = w.series["in_flight"].to_numpy()
        how = "in flight as measured"
    else:
        inflight = np.nansum((w.throughput * w.response_s).to_numpy(), axis=1)
        inflight[~np.isfinite(w.response_s.to_numpy()).any(axis=1)] = np.nan
        how = "in flight by Little's law (Σ X·R)"
    fit = demand_mod.estimate_demands(inflight.reshape(-1, 1), w.series["memory_bytes"].to_numpy(), ["per_request"],
                                      pods=w.series["replicas"].to_numpy(), seed=seed + 2, b=b, groups=w.recording)
    quality = (f"NNLS over {fit.windows} windows, {how}, R² "
               f"{'n/a' if fit.r2 is None else f'{fit.r2:.3f}'}, residual sd {(fit.residual_sd or 0) / 2**20:.3g} MiB")
    base, per = fit.background, fit.demands["per_request"]
    out = []
    base_ok = base.identifiable
    out.append(Estimate("base memory per pod", "bytes", base.estimate, base.low, base.high, "yes" if base_ok else "no",
                        quality, base.why, {base_key: int(round(base.estimate))} if base_ok else {}))
    per_ok = per.identifiable and base_ok
    settings = {f"workload.requests[{r.name}].memory": int(round(per.estimate)) for r in scenario.workload.requests} \
        if per_ok else {}
    out.append(Estimate("memory per request in flight", "bytes", per.estimate, per.low, per.high,
                        "yes" if per_ok else "no", quality,
                        per.why or ("" if base_ok else "not identified without the base"), settings))
    return out


def think_time_estimate(w: Windows, scenario, seed: int, b: int) -> Estimate:
    figure = "think time (closed users)"
    users = scenario.workload.users
    if users is None:
        return Estimate(figure, "s", None, None, None, "no", "", "the scenario has open arrivals, not closed users")
    if not w.has("users"):
        return Estimate(figure, "s", None, None, None, "no", "", "no user count measured")
    n = w.series["users"].to_numpy()
    if w.has("users_steady"):
        steady = w.series["users_steady"].to_numpy()
    else:  # a sampled count: a window is steady when its neighbours have the same count
        same = n[1:] == n[:-1]
        if w.recording is not None:  # a recording's first and last windows have no neighbour across the seam
            same &= w.recording[1:] == w.recording[:-1]
        same_before = np.concatenate([[True], same])
        same_after = np.concatenate([same, [True]])
        steady = (same_before & same_after).astype(float)
    x_c = w.throughput.to_numpy()
    r_c = w.response_s.reindex(columns=w.throughput.columns).to_numpy()
    x = x_c.sum(axis=1)
    xr = np.where(x_c > 0, np.nan_to_num(r_c) * x_c, 0.0).sum(axis=1)
    known = np.all(np.isfinite(r_c) | (x_c == 0), axis=1)
    ok = np.isfinite(n) & (steady != 0) & (x > 0) & known
    if ok.sum() == 0:
        return Estimate(figure, "s", None, None, None, "no", "", "no window with users, throughput and response times")
    n, x, xr = n[ok], x[ok], xr[ok]
    value = float((n.sum() - xr.sum()) / x.sum())
    key = "workload.users.think_time.mean"
    settings = {key: _round(value)} if users.think_time.dist in SCALABLE else {}
    if len(n) < 5:
        ident = "yes" if value > 0 else "no"
        return Estimate(figure, "s", value, None, None, ident, f"N = X(R + Z) over {len(n)} window(s): no interval",
                        "" if value > 0 else "N/X is below the response time", settings if value > 0 else {})
    rng = np.random.default_rng(seed + 3)
    rows = demand_mod.resample(rng, b, None if w.recording is None else w.recording[ok], len(n))
    draws = (n[rows].sum(axis=1) - xr[rows].sum(axis=1)) / x[rows].sum(axis=1)
    lo, hi = (float(v) for v in np.quantile(draws, [0.025, 0.975]))
    ident = value > 0 and (hi - lo) / 2 <= demand_mod.MAX_RELATIVE_HALF_WIDTH * value
    why = "" if ident else "N/X is below the response time" if value <= 0 else "the interval is too wide"
    if ident and not settings:
        why = f"the scenario's think time is {users.think_time.dist}, which has no mean to set; not written"
    return Estimate(figure, "s", value, lo, hi, "yes" if ident else "no",
                    f"Z = (ΣN − ΣX·R)/ΣX over {len(n)} windows with a steady user count", why,
                    settings if ident else {})


def mix_estimates(w: Windows, scenario, seed: int, b: int) -> list[Estimate]:
    classes = [r.name for r in scenario.workload.requests]
    x = w.throughput[classes].to_numpy() * w.window_s
    if x.sum() <= 0 and w.totals is not None:
        x = w.totals["count"].reindex(classes).fillna(0.0).to_numpy().reshape(1, -1)
    total = x.sum()
    if total <= 0:
        return [Estimate(f"share of requests: {c}", "fraction", None, None, None, "no", "", "no requests") for c in classes]
    shares = x.sum(axis=0) / total
    interval = None
    if len(x) >= 5:
        rng = np.random.default_rng(seed + 4)
        rows = demand_mod.resample(rng, b, w.recording if len(x) == len(w.t) else None, len(x))
        sums = x[rows].sum(axis=1)
        interval = np.quantile(sums / sums.sum(axis=1, keepdims=True), [0.025, 0.975], axis=0)
    out = []
    several = w.recordings > 1
    for i, c in enumerate(classes):
        lo, hi = (None, None) if interval is None else (float(interval[0, i]), float(interval[1, i]))
        why = "no request of this class was measured" if shares[i] <= 0 else ""
        if several:  # the recordings' mixes pooled are the mix of none of them
            why = (why + "; " if why else "") + f"pooled over {w.recordings} recordings; not written"
        out.append(Estimate(f"share of requests: {c}", "fraction", float(shares[i]), lo, hi, "yes",
                            f"{int(round(x[:, i].sum())):,} of {int(round(total)):,} requests", why,
                            {} if several else {f"workload.requests[{c}].weight": _round(float(shares[i]))}))
    return out


def profile_estimates(w: Windows, scenario) -> list[Estimate]:
    """The measured load over time as the scenario's profile, and the test's duration."""
    if w.one_window or len(w.t) < 2:
        return [Estimate("load profile", "", None, None, None, "no", "", "one window has no profile over time")]
    if w.recordings > 1:
        return [Estimate("load profile", "", None, None, None, "no", "",
                         f"{w.recordings} recordings are not one test to replay; calibrate one of them alone for its "
                         "replay.yaml")]
    closed = scenario.workload.users is not None
    if closed:
        if not w.has("users"):
            return [Estimate("load profile", "users", None, None, None, "no", "", "no user count measured")]
        values = np.rint(w.series["users"].ffill().fillna(0.0).to_numpy()).astype(int)
        key, field_name = "workload.users.profile", "users"
    else:
        values = np.round(w.throughput.sum(axis=1).to_numpy(), 3)
        key, field_name = "workload.arrivals.profile", "rps"
    t = np.round(w.t, 3)
    if w.stamped_at_end:
        # The replay starts at the first window's end (time 0 of the windows, as backtest compares
        # them): a rate over (t − w, t] is offered from t − w (the first window lies before the
        # start), a user count (a gauge) holds from its own instant, and the replay ends at t[-1].
        if not closed:
            t, values = np.round(t[1:] - w.window_s, 3), values[1:]
        duration = float(w.t[-1])
    else:
        duration = float(t[-1] + w.window_s)
    keep = [0] + [i for i in range(1, len(values)) if values[i] != values[i - 1] or
                  (i + 1 < len(values) and values[i + 1] != values[i])]
    if len(keep) > MAX_PROFILE_POINTS:
        keep = [keep[int(j)] for j in np.linspace(0, len(keep) - 1, MAX_PROFILE_POINTS)]
    points = [{"at": float(t[i]), field_name: (int(values[i]) if closed else float(values[i]))} for i in keep]
    unit = "users" if closed else "req/s"
    return [Estimate("load profile", unit, float(values.max()), None, None, "yes",
                     f"{len(points)} points over {duration:g} s (peak {values.max():g} {unit})", "",
                     {key: points, "duration": duration, **({"warmup": 0} if scenario.warmup >= duration else {})},
                     group="load")]


def calibrate(windows: Windows, scenario, deployment: str = "api", seed: int = 0, b: int = demand_mod.BOOTSTRAP
              ) -> Calibration:
    """Every estimate from ``windows`` for ``scenario`` (CPU and memory are ``deployment``'s)."""
    from memstack_capacity.errors import MeasurementError, Problem

    if deployment not in scenario.deployments:
        raise MeasurementError([Problem("deployment", f"the scenario {scenario.name} has no deployment {deployment!r} "
                                                      f"(it has {', '.join(scenario.deployments)})", deployment, True)])
    cpu, fit = cpu_estimates(windows, scenario, seed, b)
    per_class = {e.figure.split(": ", 1)[1]: e.estimate for e in cpu if e.figure.startswith("CPU per request: ")
                 and e.identifiable in ("yes", "level only")}
    estimates = (cpu + non_cpu_estimates(windows, scenario, per_class, seed, b)
                 + memory_estimates(windows, scenario, deployment, seed, b)
                 + [think_time_estimate(windows, scenario, seed, b)] + mix_estimates(windows, scenario, seed, b)
                 + profile_estimates(windows, scenario))
    notes = list(windows.notes) + (fit.notes if fit is not None else [])
    return Calibration(scenario=scenario.name, deployment=deployment, sources=windows.sources,
                       windows=len(windows.t), window_s=windows.window_s, seed=seed, estimates=estimates,
                       cpu_fit=fit, notes=notes)
