"""What ``backtest`` writes: ``backtest.json``, ``backtest.md`` and the overlay plots, all or nothing.

- ``backtest.json``: every figure (:mod:`memstack_capacity.results.backtest`), the recording, the
  replay's settings, the overlays used, the limits checked and whether they were met;
- ``backtest.md``: one table of the figures and the verdict;
- ``plots/backtest-replicas.png``, ``plots/backtest-latency.png``, ``plots/backtest-throughput.png``:
  recorded against simulated over time (with several replications, the runs' mean and their
  range as a band). A quantity the recording lacks is drawn simulated only, and its title says so.

The directory is written like ``run``'s (:mod:`.rundir`: staged beside it, swapped in whole). It
reads a finished :class:`~memstack_capacity.api.backtest.Backtest`'s figures; it computes none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.plots import figure_png
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in

PLOTS = ("backtest-replicas.png", "backtest-latency.png", "backtest-throughput.png")
RECORDED, SIMULATED = "#333333", "#d62728"


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _num(value, unit: str = "") -> str:
    return "—" if value is None else f"{value:.3g}{unit}"


def markdown(data: dict) -> str:
    """backtest.md's text from backtest.json's content."""
    rec = data["recording"]
    runs = f"seed {data['seed']}" if data["replications"] == 1 else \
        f"seeds {data['seed']}..{data['seed'] + data['replications'] - 1}, means over {data['replications']} runs"
    lines = [f"# Backtest of `{data['scenario']}` against `{rec['source']}`", "",
             f"{rec['windows']} recorded windows of {rec['window_s']:g} s ({rec['kind']}), replayed for "
             f"{rec['duration_s']:g} s ({runs}); "
             + (", ".join(f"calibrated by `{c['file']}`" for c in data.get("calibration") or []) or "not calibrated")
             + ".", "", "| metric | value | over | note |", "|---|---|---|---|"]
    replicas = data["replicas"]
    if isinstance(replicas, str):
        lines.append(f"| replicas | {replicas} | — | the recording has no pod count |")
    else:
        for name, figs in replicas.items():
            lines.append(f"| replicas of {name}: mean absolute error | {_num(figs['mae_pods'], ' pods')} | "
                         f"{figs['samples']:g} samples | |")
            lines.append(f"| replicas of {name}: within ±1 pod | {_pct(figs['within_1_pod'])} | "
                         f"{figs['samples']:g} samples | |")
            for direction in ("up", "down"):
                ev = figs["scale_events"][direction]
                pairs = ev.get("pairs")
                diffs = (", ".join(f"{p['difference_s']:+g} s" for p in pairs) if pairs else "")
                lines.append(f"| scale-{direction}s of {name}: mean time difference | "
                             f"{_num(ev['mean_abs_difference_s'], ' s')} | {ev['recorded']:g} recorded, "
                             f"{ev['simulated']:g} simulated | {diffs or '—'} (simulated − recorded, in order) |")
    for key, label in (("mean", "latency (mean)"), ("p95", "latency (p95)"), ("p99", "latency (p99)")):
        figs = data["latency"][key]
        if isinstance(figs, str):
            lines.append(f"| {label}: MAPE | {figs} | — | |")
        else:
            lines.append(f"| {label}: MAPE | {_pct(figs['mape'])} | {figs['windows']:g} windows | "
                         f"bias {_signed(figs['bias'])} |")
    tp = data["throughput"]
    lines.append(f"| throughput: MAPE | {_pct(tp['mape'])} | {tp['windows']:g} windows | bias {_signed(tp['bias'])} |")
    lines += ["", "## Verdict", ""]
    if not data["gates"]:
        lines.append("No limit given (`--max-replica-error`, `--max-latency-error`): the figures above, no verdict.")
    for g in data["gates"]:
        value = "not known" if g["value"] is None else (f"{g['value']:.3g}" if "pods" in g["metric"]
                                                         else f"{g['value']:.1%}")
        limit = f"{g['limit']:.3g}" if "pods" in g["metric"] else f"{g['limit']:.1%}"
        lines.append(f"- {'met' if g['met'] else '**missed**'}: {g['metric']} {value}, limit {limit}")
    if data["gates"]:
        lines += ["", "**PASS**: the simulation reproduces the recording within the limits." if data["passed"] else
                  "**FAIL**: the simulation does not reproduce the recording within the limits."]
    if rec["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rec["notes"]]
    lines += ["", "Definitions: docs/calibration.md (Backtest). MAPE: mean over windows of |simulated − recorded| / "
                  "recorded, a fraction shown as a percentage; bias: the same without the absolute value (above zero: the "
                  "simulation is high)."]
    return "\n".join(lines) + "\n"


def _band(ax, t, runs: list[np.ndarray], label: str, color: str, step: bool = False) -> None:
    stack = np.vstack(runs)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0)
            low, high = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
    kw = {"where": "post"} if step else {}
    label += " (mean)" if len(runs) > 1 else ""
    (ax.step if step else ax.plot)(t, mean, color=color, lw=1.4, label=label, **kw)
    if len(runs) > 1:
        ax.fill_between(t, low, high, color=color, alpha=0.15, lw=0, label=f"simulated range ({len(runs)} runs)",
                        **({"step": "post"} if step else {}))


def _figure(title: str, ylabel: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("time from the recording's first window (min)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def figures(bt) -> dict:
    """{file name: figure} for the three overlay plots."""
    rec = bt.recording
    mid = (rec.start + rec.end) / 2 / 60
    ends = rec.end / 60
    out = {}
    if rec.replicas:
        title = "Replicas: recorded against simulated — " + "; ".join(
            f"{n}: MAE {_num(bt.figures['replicas'][n]['mae_pods'], ' pods')}, within ±1 pod "
            f"{_pct(bt.figures['replicas'][n]['within_1_pod'])}" for n in rec.replicas)
        fig, ax = _figure(title, "pods")
        for i, (name, pods) in enumerate(rec.replicas.items()):
            ax.step(ends, pods, where="post", color=RECORDED, lw=2.2, alpha=0.6,
                    ls=("-", "--", ":")[i % 3], label=f"{name}: recorded")
            _band(ax, ends, [s["replicas"][name] for s in bt.simulated], f"{name}: simulated", SIMULATED, step=True)
        ax.legend(loc="upper left", frameon=False, fontsize=8)
    else:
        fig, ax = _figure("Replicas: not recorded (the recording has no pod count); nothing to compare", "pods")
        ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="#777777")
    out[PLOTS[0]] = fig
    lat = bt.figures["latency"]
    title = "Latency per window: MAPE of the mean " + (_pct(lat["mean"]["mape"]) if isinstance(lat["mean"], dict)
                                                       else "not recorded")
    for key in ("p95", "p99"):
        title += f", {key} " + (_pct(lat[key]["mape"]) if isinstance(lat[key], dict) else "not recorded")
    fig, ax = _figure(title, "latency (ms)")
    for key, style in (("mean", "-"), ("p95", "--"), ("p99", ":")):
        recorded = getattr(rec, f"latency_{key}")
        if recorded is not None:
            ax.plot(mid, recorded * 1000, color=RECORDED, ls=style, lw=1.6, alpha=0.7, label=f"{key}: recorded")
            _band(ax, mid, [s[f"latency_{key}"] * 1000 for s in bt.simulated], f"{key}: simulated", SIMULATED)
            ax.lines[-1].set_linestyle(style)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=3)
    out[PLOTS[1]] = fig
    fig, ax = _figure(f"Throughput per window: MAPE {_pct(bt.figures['throughput']['mape'])}", "requests per second")
    ax.plot(mid, rec.throughput, color=RECORDED, lw=1.6, alpha=0.7, label="recorded")
    _band(ax, mid, [s["throughput"] for s in bt.simulated], "simulated", SIMULATED)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    out[PLOTS[2]] = fig
    return out


def write_backtest(bt, out_dir: str | Path, calibration: list | None = None) -> list[Path]:
    """backtest.json, backtest.md and the plots in ``out_dir``, swapped in whole; the paths written."""
    out = Path(out_dir)
    data = bt.as_dict(calibration)
    staging = new_staging(out)
    try:
        (staging / "backtest.json").write_text(summary_json(data), encoding="utf-8")
        (staging / "backtest.md").write_text(markdown(data), encoding="utf-8")
        (staging / "plots").mkdir()
        for name, fig in figures(bt).items():
            (staging / "plots" / name).write_bytes(figure_png(fig))
        swap_in(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
    return [out / "backtest.json", out / "backtest.md", *(out / "plots" / p for p in PLOTS)]
