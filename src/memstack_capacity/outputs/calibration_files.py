"""What ``calibrate`` writes: the overlays, the table for people and the CPU fit's figure.

- ``calibration.yaml``: the service-time overlay (CPU, non-CPU time, memory, think time, mix),
  for ``--calibration``; each estimate's interval and fit in comments;
- ``replay.yaml``: the measured load profile and duration, an overlay of its own (a run with it
  replays the test; kept apart so that calibrating never changes the load a scenario asks about);
- ``calibration.md``: one row per estimate (estimate, interval, fit, identifiable, note);
- ``calibration-fit.png``: the CPU the fit predicts against the CPU measured, over time and as a
  scatter around the diagonal (only when CPU was fitted).

The directory is written like ``run``'s (:mod:`.rundir`: staged beside it, swapped in whole), so
a calibration never leaves a file of an earlier one (a ``replay.yaml`` the new one does not
write) nor half its files. It reads a finished
:class:`~memstack_capacity.calibration.estimates.Calibration`; it computes no estimate.
"""

from __future__ import annotations

from pathlib import Path

from memstack_capacity.calibration import overlay
from memstack_capacity.outputs.plots import DPI, figure_png
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in

FIT_PNG = "calibration-fit.png"


def markdown(calibration) -> str:
    """calibration.md's text."""
    lines = [f"# Calibration of `{calibration.scenario}`", "",
             f"From {', '.join(f'`{s}`' for s in calibration.sources)}: {calibration.windows} window(s) of "
             f"{calibration.window_s:g} s; CPU and memory of deployment `{calibration.deployment}`; "
             f"95 % intervals by a pairs bootstrap over windows, drawn within each recording, in blocks where "
             f"the CPU fit's residuals are correlated (seed {calibration.seed}).", "",
             "| estimate | value | interval | fit | identifiable | note |", "|---|---|---|---|---|---|"]
    for e in calibration.estimates:
        interval = "—" if e.low is None else f"{overlay._fmt(e.low, e.unit)} – {overlay._fmt(e.high, e.unit)}"
        cells = [e.figure, overlay._fmt(e.estimate, e.unit), interval, e.fit or "—", e.identifiable,
                 (e.why or "") + ("" if e.settings else (" (not written)" if e.why else "not written"))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if calibration.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in calibration.notes]
    lines += ["", "Method: CPU per request by the utilisation law fitted with non-negative least squares across "
                  "windows (the utilisation-regression family evaluated by Spinner et al., 2015); \"level only\": "
                  "the mix's demand is identified but not each class's, so every class keeps the scenario's ratios. "
                  f"The figure `{FIT_PNG}` shows the CPU fit."]
    return "\n".join(lines) + "\n"


def fit_figure(calibration):
    """Measured against fitted CPU: over time, and as a scatter around y = x. None without a CPU fit."""
    fit = calibration.cpu_fit
    if fit is None or len(fit.observed) == 0:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    ax_t, ax_s = fig.subplots(1, 2, width_ratios=[2, 1])
    ax_t.plot(fit.t, fit.observed, ".", ms=3, color="#555555", label="measured")
    ax_t.plot(fit.t, fit.fitted, "-", lw=1.2, color="#d62728", label="fitted: Σ X·D" +
              (" + background" if fit.background.identifiable else ""))
    ax_t.set_xlabel("time from the first window (s)")
    ax_t.set_ylabel(f"CPU of {calibration.deployment} (cores)")
    ax_t.legend(loc="upper left", frameon=False)
    r2 = "n/a" if fit.r2 is None else f"{fit.r2:.3f}"
    ax_t.set_title(f"CPU by the utilisation law: R² {r2}, residual sd {(fit.residual_sd or 0):.3g} cores, "
                   f"{fit.windows} windows", fontsize=10)
    top = float(max(fit.observed.max(), fit.fitted.max())) * 1.05 or 1.0
    ax_s.plot([0, top], [0, top], "-", lw=0.8, color="#999999")
    ax_s.plot(fit.fitted, fit.observed, ".", ms=3, color="#1f77b4")
    ax_s.set_xlim(0, top)
    ax_s.set_ylim(0, top)
    ax_s.set_xlabel("fitted (cores)")
    ax_s.set_ylabel("measured (cores)")
    ax_s.set_title("measured against fitted", fontsize=10)
    return fig


def write_calibration(calibration, out_dir: str | Path) -> list[Path]:
    """The files above in ``out_dir``, swapped in whole; returns the paths written."""
    out = Path(out_dir)
    texts = {"calibration.yaml": overlay.render(calibration, "service"), "calibration.md": markdown(calibration)}
    if calibration.settings("load"):
        texts["replay.yaml"] = overlay.render(calibration, "load")
    fig = fit_figure(calibration)
    staging = new_staging(out)
    try:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        if fig is not None:
            (staging / FIT_PNG).write_bytes(figure_png(fig))
        swap_in(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
    return [out / name for name in texts] + ([out / FIT_PNG] if fig is not None else [])
