"""pareto.png of ``recommend``: cost per month against p99 latency and against throughput.

One marker per configuration and scenario, from recommend.json's ranked rows (never recomputed):
filled where the simulation confirmed it (green: every target met in every run; red: a miss),
hollow grey where only the flow model's screen saw it (its p99 is the stand-in, docs/recommend.md).
The targets are dashed lines, the cost/latency front of the confirmed passing points a step line,
and the recommended configuration a star.
"""

from __future__ import annotations

import textwrap

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLOURS = {"passed": "#2e7d32", "failed": "#c62828"}
MARKERS = ("o", "s", "^", "D", "v", "P")


def _points(doc: dict, scenario: str, figure: str):
    """(cost, value, status, recommended) per row with a value for ``figure`` in ``scenario``."""
    out = []
    for row in doc["ranked"]:
        entry = row["scenarios"].get(scenario)
        if entry is None:
            continue
        if entry.get("confirmed"):
            value = (entry.get("figures") or {}).get(figure)
            status = "passed" if entry["passed_runs"] == entry["runs"] else "failed"
            cost = entry.get("cost_per_month")
        else:
            value = (entry.get("screen") or {}).get(figure)
            status, cost = "screen", row["cost_per_month"]
        if value is not None and cost is not None:
            out.append((cost, value, status, row["recommended"]))
    return out


def _limit(doc: dict, scenario: str, name: str, kind: str):
    for row in doc["ranked"]:
        for f in ((row["scenarios"].get(scenario) or {}).get("screen") or {}).get("figures", []):
            if f["name"] == name and f["kind"] == kind:
                return f["limit"]
        for t in (row["scenarios"].get(scenario) or {}).get("targets", []):
            if t["name"] == name and t["kind"] == kind:
                return t["limit"]
    return None


def pareto_figure(doc: dict):
    """The figure (two panels side by side); the caller saves and closes it."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    currency = "USD"
    panels = (("latency_p99", "p99 latency (s)", "max"), ("throughput_rps", "throughput (req/s)", "min"))
    for ax, (figure, label, kind) in zip(axes, panels):
        for k, scenario in enumerate(doc["scenarios"]):
            marker = MARKERS[k % len(MARKERS)]
            pts = _points(doc, scenario, figure)
            screen = [(c, v) for c, v, s, _ in pts if s == "screen"]
            if screen:
                ax.scatter(*zip(*screen), marker=marker, facecolors="none", edgecolors="#9e9e9e", s=36,
                           label=f"{scenario}: flow-model screen only")
            for status in ("failed", "passed"):
                chosen = [(c, v) for c, v, s, _ in pts if s == status]
                if chosen:
                    ax.scatter(*zip(*chosen), marker=marker, color=COLOURS[status], s=40, zorder=3,
                               label=f"{scenario}: confirmed, {'every target met' if status == 'passed' else 'missed'}")
            passed = sorted((c, v) for c, v, s, _ in pts if s == "passed")
            front, best = [], None
            for c, v in passed:  # lowest p99 (or highest throughput) reachable at each cost
                if best is None or (v < best if kind == "max" else v > best):
                    best = v
                    front.append((c, v))
            if len(front) > 1:
                ax.step(*zip(*front), where="post", color=COLOURS["passed"], alpha=0.5, zorder=2)
            rec = [(c, v) for c, v, s, r in pts if r]
            if rec:
                ax.scatter(*zip(*rec), marker="*", s=320, color="#fbc02d", edgecolors="black", linewidths=1.0,
                           zorder=4, label=f"{scenario}: recommended")
            limit = _limit(doc, scenario, figure, kind)
            if limit is not None:
                ax.axhline(limit, color="black", linestyle="--", linewidth=1,
                           label=f"{scenario}: target {'≤' if kind == 'max' else '≥'} {limit:g}")
        ax.set_xlabel(f"cost per month ({currency})")
        ax.set_ylabel(label)
        if figure == "latency_p99":
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".lstrip("0.")[:1] in "25" else ""))
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        else:  # every point was ruled out before any model gave this figure (the servers' throughput bound)
            ax.text(0.5, 0.5, "no configuration was simulated or screened by the flow model",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#616161")
    rec = doc.get("recommended")
    title = "recommend: cost against p99 and throughput"
    if rec:
        where = ", ".join(f"{k}={v}" for k, v in rec["configuration"].items())
        title += f" — recommended {where}"
    fig.suptitle("\n".join(textwrap.wrap(title, 150)), fontsize=9)  # a long configuration on two lines
    return fig


def write_pareto(doc: dict, path: Path) -> None:
    """Render :func:`pareto_figure` to ``path`` (PNG, 110 dpi)."""
    fig = pareto_figure(doc)
    try:
        fig.savefig(path, dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
