"""What-if figures: a sweep's figures against the parameter varied, and runs overlaid in time.

Companions to :mod:`memstack_capacity.outputs.plots` for notebooks that compare
runs rather than read one. Each function returns a matplotlib Figure and shows nothing.

>>> frame = sweep(base, {"deployments.api.hpa.maxReplicas": [4, 8, 12]}, replications=3)
>>> plot_sweep(frame, "deployments.api.hpa.maxReplicas", ["requests.latency_s.p99"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memstack_capacity.outputs import plots as _plots  # noqa: F401 - selects the Agg backend first
from memstack_capacity.outputs.report import mean_ci

__all__ = ["sweep_table", "plot_sweep", "plot_runs"]

WIDTH_IN, PANEL_H_IN, DPI = 9.0, 2.6, 110


def sweep_table(frame: pd.DataFrame, x: str, metrics: Sequence[str], by: str | None = None) -> pd.DataFrame:
    """Mean and 95 % t-interval half-width of each metric per value of ``x`` (and of ``by``).

    Columns ``(metric, "mean" | "ci95" | "n")``; the half-width is NaN for a single run.
    """
    keys = [x] if by is None else [by, x]
    rows, index = [], []
    for key, group in frame.groupby(keys, sort=True):
        row = {}
        for m in metrics:
            mean, half = mean_ci(group[m].tolist())
            row[(m, "mean")] = np.nan if mean is None else mean
            row[(m, "ci95")] = np.nan if half is None else half
            row[(m, "n")] = int(group[m].notna().sum())
        rows.append(row)
        index.append(key)
    table = pd.DataFrame(rows)
    table.index = pd.MultiIndex.from_tuples(index, names=keys) if by is not None else pd.Index(
        [k[0] if isinstance(k, tuple) else k for k in index], name=x)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def plot_sweep(
    frame: pd.DataFrame,
    x: str,
    metrics: Sequence[str],
    by: str | None = None,
    labels: Mapping[str, str] | None = None,
    limits: Mapping[str, float] | None = None,
    logy: Sequence[str] = (),
    title: str | None = None,
) -> Figure:
    """Each metric (a panel) against the swept key ``x``: the mean over replications with 95 % CI bars.

    ``by`` draws one line per value of another swept key; ``labels`` names metrics
    and keys for the axes; ``limits`` draws a dashed line per metric (a target);
    metrics in ``logy`` get a log scale.
    """
    labels = dict(labels or {})
    limits = dict(limits or {})
    table = sweep_table(frame, x, metrics, by)
    fig = Figure(figsize=(WIDTH_IN, 0.9 + PANEL_H_IN * len(metrics)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title or f"{labels.get(x, x)}: mean of the runs, bars = 95 % CI", fontsize=12)
    groups = [(None, table)] if by is None else [(v, table.xs(v, level=by)) for v in table.index.levels[0]]
    for ax, m in zip(axes, metrics):
        for i, (value, sub) in enumerate(groups):
            xs = np.asarray(sub.index, dtype=float)
            half = sub[(m, "ci95")].fillna(0.0).to_numpy()
            label = None if by is None else f"{labels.get(by, by)} = {value}"
            ax.errorbar(xs, sub[(m, "mean")], yerr=half, marker="o", capsize=4, lw=1.5, color=f"C{i}", label=label)
        if m in limits:
            ax.axhline(limits[m], color="C3", ls="--", lw=1, label=f"target {limits[m]:g}")
        if m in logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(labels.get(m, m))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, framealpha=0.85)
    axes[-1].set_xlabel(labels.get(x, x))
    return fig


def plot_runs(
    results: Mapping[str, object],
    columns: Sequence[str],
    labels: Mapping[str, str] | None = None,
    logy: Sequence[str] = (),
    title: str = "Runs side by side",
    window: tuple[float, float] | None = None,
) -> Figure:
    """One panel per series column (``component/metric``), one line per labelled Result, time in minutes.

    ``window`` limits the time axis to ``(start_s, end_s)``.
    """
    labels = dict(labels or {})
    fig = Figure(figsize=(WIDTH_IN, 0.9 + PANEL_H_IN * len(columns)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title, fontsize=12)
    for ax, col in zip(axes, columns):
        for i, (name, result) in enumerate(results.items()):
            s = result.series
            if col in s.columns:
                step = col.endswith(("replicas_desired", "pods", "pods_ready"))
                t = np.asarray(s.index, dtype=float) / 60.0
                if step:
                    ax.step(t, s[col], where="post", color=f"C{i}", lw=1.4, label=name)
                else:
                    ax.plot(t, s[col], color=f"C{i}", lw=1.2, label=name)
        if col in logy:
            ax.set_yscale("log")
        ax.set_ylabel(labels.get(col, col))
        ax.grid(True, alpha=0.3)
        if window is not None:
            ax.set_xlim(window[0] / 60.0, window[1] / 60.0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, framealpha=0.85, loc="upper left")
    axes[-1].set_xlabel("simulated time (min)")
    return fig
