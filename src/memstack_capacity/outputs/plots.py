"""The report's figures: one function per figure, each returning a matplotlib Figure.

Functions draw only what the run contains and return ``None`` when a figure's data
is absent (no HPA decisions, no datastores, no job queue), so new series appear in
the report as soon as the simulator samples them. Nothing here shows or saves a
figure; :func:`figure_png` turns one into PNG bytes for the report writer.

Time axes are in minutes of simulated time; the warm-up is shaded grey.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display; figures are only ever rendered to PNG

import numpy as np  # noqa: E402 - after the backend choice
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["FIGURES", "all_figures", "figure_png", "hpa_targets", "scaling_events",
           "plot_replicas", "plot_utilisation", "plot_latency", "plot_datastores", "plot_jobs"]  # fmt: skip

WIDTH_IN, PANEL_H_IN, DPI = 9.0, 2.6, 110


def _new(rows: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH_IN, 0.9 + PANEL_H_IN * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title, fontsize=12)
    return fig, list(axes)


def plain(text: str) -> str:
    """``text`` drawn as written: a user's name with ``$`` (``$\\frac$``) is not parsed as mathtext,
    which would fail the whole figure after the run has finished."""
    return str(text).replace("$", r"\$")


def _minutes(index) -> np.ndarray:
    return np.asarray(index, dtype=float) / 60.0


def _decorate(ax, result, ylabel: str, outside: bool = False) -> None:
    """Warm-up shading, grid, limits and the legend; ``outside`` puts the legend right of the
    panel, where it covers no line or marker."""
    warm = result.scenario.warmup
    if warm > 0:
        ax.axvspan(0, warm / 60.0, color="0.9", zorder=0, label="_warm-up")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_xlim(0, result.scenario.duration / 60.0)
    if ax.get_yscale() == "linear" and not outside:
        ax.set_ylim(0, max(ax.get_ylim()[1] * 1.12, 1e-9))  # headroom so lines at the top clear the legend
    if ax.get_legend_handles_labels()[0]:
        if outside:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.85, borderaxespad=0.0)
        else:
            ax.legend(loc="upper left", fontsize=8, framealpha=0.85)


def _finish(fig: Figure, axes: list) -> Figure:
    axes[-1].set_xlabel("simulated time (min; grey = warm-up)")
    return fig


def _has(series: pd.DataFrame, column: str) -> bool:
    return column in series.columns and series[column].notna().any()


def hpa_targets(deployment) -> dict[str, float]:
    """Utilisation targets of a deployment's HPA as fractions of requests: ``{"cpu": 0.7, ...}``."""
    out: dict[str, float] = {}
    hpa = getattr(deployment, "hpa", None)
    for metric in getattr(hpa, "metrics", None) or []:
        resource = getattr(metric, "resource", None)
        target = getattr(resource, "target", None)
        value = getattr(target, "averageUtilization", None)
        if resource is not None and value is not None:
            out[str(resource.name)] = float(value) / 100.0
    return out


def scaling_events(result, deployment: str) -> pd.DataFrame:
    """HPA decisions that changed a deployment's replicas: ``t_s``, ``from``, ``to``, ``reason``."""
    frame = result.scaling
    cols = ["t_s", "from", "to", "reason"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    if "deployment" in frame.columns:
        frame = frame[frame["deployment"] == deployment]
    t = next((c for c in ("t_s", "time", "time_s") if c in frame.columns), None)
    to = next((c for c in ("desired_replicas", "desired") if c in frame.columns), None)
    if t is None or to is None or frame.empty:
        return pd.DataFrame(columns=cols)
    before = frame["current_replicas"] if "current_replicas" in frame.columns else frame[to].shift(fill_value=np.nan)
    changed = frame["rescaled"].astype(bool) if "rescaled" in frame.columns else frame[to] != before
    sel = frame[changed]
    reason = sel["reason"] if "reason" in sel.columns else ""
    return pd.DataFrame({"t_s": sel[t].astype(float).to_numpy(), "from": np.asarray(before[changed]),
                         "to": sel[to].to_numpy(), "reason": np.asarray(reason)})  # fmt: skip


def plot_replicas(result) -> Figure | None:
    """Desired, scheduled and Ready pods per deployment, with each HPA rescale marked."""
    s = result.series
    deps = [d for d in result.scenario.deployments if _has(s, f"{d}/replicas_desired")]
    if not deps:
        return None
    fig, axes = _new(len(deps), "Replicas and HPA decisions")
    for ax, d in zip(axes, deps):
        t = _minutes(s.index)
        ax.step(t, s[f"{d}/replicas_desired"], where="post", color="C0", lw=2, label="desired (spec.replicas)")
        if _has(s, f"{d}/pods"):
            ax.step(t, s[f"{d}/pods"], where="post", color="C7", lw=1, ls="--", label="pods (incl. Pending)")
        if _has(s, f"{d}/pods_ready"):
            ax.step(t, s[f"{d}/pods_ready"], where="post", color="C2", lw=1.5, label="Ready pods")
        hpa = getattr(result.scenario.deployments[d], "hpa", None)
        for bound, name in ((getattr(hpa, "minReplicas", None), "min"), (getattr(hpa, "maxReplicas", None), "max")):
            if bound is not None:
                ax.axhline(bound, color="0.4", ls=":", lw=1, label=f"HPA {name}Replicas = {bound}")
        events = scaling_events(result, d)
        if len(events):
            up = events[events["to"] > events["from"].fillna(-1)]
            down = events[events["to"] < events["from"].fillna(-1)]
            ax.scatter(up["t_s"] / 60, up["to"], marker="^", color="C3", zorder=5, label="HPA scale-up")
            ax.scatter(down["t_s"] / 60, down["to"], marker="v", color="C1", zorder=5, label="HPA scale-down")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max(ax.get_ylim()[1], 1) * 1.05)
        ax.set_title(plain(d), fontsize=10, loc="left")
        _decorate(ax, result, "pods (count)", outside=True)
    return _finish(fig, axes)


def plot_utilisation(result) -> Figure | None:
    """CPU and memory utilisation against requests, beside the HPA targets and the limits."""
    s = result.series
    deps = [d for d in result.scenario.deployments if _has(s, f"{d}/cpu_utilization")]
    if not deps:
        return None
    fig, axes = _new(2 * len(deps), "Utilisation (as the HPA sees it: % of requests)")
    for i, d in enumerate(deps):
        spec = result.scenario.deployments[d]
        targets = hpa_targets(spec)
        for ax, res in zip(axes[2 * i : 2 * i + 2], ("cpu", "memory")):
            col = f"{d}/{res}_utilization"
            data_max = None
            if _has(s, col):
                ax.plot(_minutes(s.index), 100 * s[col], color="C0", lw=1.5, label=USED_LABEL)
                data_max = float(100 * s[col].max())
            if res in targets:
                ax.axhline(100 * targets[res], color="C3", ls="--", lw=1.2, label=f"HPA target {targets[res]:.0%}")
            top, ceilings = utilisation_axis(spec, res, data_max, targets.get(res))
            for level, style, label in ceilings:
                ax.axhline(level, **style, label=label)
            ax.set_ylim(0, top)
            ax.set_title(plain(f"{d} — {res}"), fontsize=10, loc="left")
            _decorate(ax, result, f"{res} (% of request)", outside=True)
    return _finish(fig, axes)


#: The legend label of a deployment's utilisation (the pod mean), in both renderings of the figure.
USED_LABEL = "used (pod mean)"


def utilisation_axis(spec, res: str, data_max: float | None, target: float | None):
    """The utilisation panel's y-axis top (% of request) and its ceiling lines, for the PNG and the
    interactive figure alike: the axis fits the data and the HPA target; a ceiling far above them
    stays in the legend only, marked ``↑ off axis``."""
    top = max(max(data_max or 0.0, 100 * (target or 0.0)) * 1.15, 10.0)
    request, limit = getattr(spec.resources.requests, res), getattr(spec.resources.limits, res)
    lines = [(level, style, label + ("" if level <= top else " ↑ off axis"))
             for level, style, label in _ceilings(spec, res, request, limit)]
    return top, lines


def _ceilings(spec, res: str, request, limit) -> list[tuple[float, dict, str]]:
    """The utilisation a pod cannot exceed, in % of its request: the limit, and for CPU its processes."""
    out = []
    if request and limit:
        out.append((100 * limit / request, {"color": "k", "ls": "-.", "lw": 1}, f"limit = {limit / request:.0%}"))
    if res == "cpu" and request and (limit is None or spec.processes < limit):
        out.append((100 * spec.processes / request, {"color": "C4", "ls": ":", "lw": 1.5},
                    f"usable max = {spec.processes / request:.0%}\n({spec.processes} process(es))"))
    return out


def plot_latency(result) -> Figure | None:
    """Latency percentiles per sample interval, and load, throughput and error rate."""
    s = result.series
    pcts = [(c, lab) for c, lab in (("ingress/latency_p50_s", "p50"), ("ingress/latency_p95_s", "p95"),
                                     ("ingress/latency_p99_s", "p99")) if _has(s, c)]  # fmt: skip
    if not pcts and not _has(s, "ingress/throughput_rps"):
        return None
    fig, axes = _new(2, "Latency, load and errors (per sample interval)")
    t = _minutes(s.index)
    ax = axes[0]
    for c, lab in pcts:
        ax.plot(t, s[c], lw=1.3, label=lab)
    targets = result.scenario.targets
    for stat in ("p50", "p95", "p99", "mean"):
        bound = getattr(targets, f"latency_{stat}", None)
        if bound is not None:
            ax.axhline(bound.max, color="C3", ls="--", lw=1, label=f"target {stat} ≤ {bound.max:g} s")
    if pcts and (s[[c for c, _ in pcts]].max().max() or 0) > 0:
        ax.set_yscale("log")
    _decorate(ax, result, "latency (s, log)")
    ax = axes[1]
    for c, lab, style in (("ingress/arrivals_rps", "arrivals", "C7"), ("ingress/throughput_rps", "OK answers", "C0")):
        if _has(s, c):
            ax.plot(t, s[c], color=style, lw=1.3, label=lab)
    _decorate(ax, result, "requests (per s)")
    if _has(s, "ingress/error_rate"):
        ax2 = ax.twinx()
        ax2.plot(t, 100 * s["ingress/error_rate"], color="C3", lw=1.2, label="error rate (right)")
        bound = getattr(targets, "error_rate", None)
        if bound is not None and bound.max is not None:
            ax2.axhline(100 * bound.max, color="C3", ls="--", lw=1, label=f"target error rate ≤ {bound.max:.1%}")
        ax2.set_ylabel("failed (% of answered)", color="C3")
        ax2.set_ylim(bottom=0, top=max(1.0, 100 * float(s["ingress/error_rate"].max()) * 1.15))
        ax2.legend(loc="upper right", fontsize=8, framealpha=0.85)
    return _finish(fig, axes)


def _max_connections(spec) -> float | None:
    value = getattr(spec, "max_connections", None)
    return float(value) if value is not None else None


_STORE_METRICS = ("connections_open", "connections_in_use", "pool_waiters", "utilization", "queries_in_service")


def _active(series: pd.DataFrame, store: str) -> bool:
    """Whether any request touched ``store``: some sampled metric above zero."""
    return any(_has(series, f"{store}/{m}") and float(series[f"{store}/{m}"].fillna(0).abs().max()) > 0
               for m in _STORE_METRICS)  # fmt: skip


def plot_datastores(result) -> Figure | None:
    """Open and in-use connections per datastore against its ``max_connections``; pool waiters.

    A datastore no request used (every sampled metric zero) gets no panel.
    """
    s = result.series
    stores = [n for n in (result.scenario.datastores or {}) if _active(s, n)]
    if not stores:
        return None
    fig, axes = _new(len(stores), "Datastores: connections against max_connections")
    t = _minutes(s.index)
    for ax, n in zip(axes, stores):
        for m, lab, color in (("connections_open", "open", "C0"), ("connections_in_use", "in use", "C2"),
                              ("pool_waiters", "waiting for a pooled connection", "C1")):
            if _has(s, f"{n}/{m}"):
                ax.plot(t, s[f"{n}/{m}"], color=color, lw=1.3, label=lab)
        limit = _max_connections(result.scenario.datastores[n])
        if limit is not None:
            ax.axhline(limit, color="C3", ls="--", lw=1.2, label=f"max_connections = {limit:g}")
        ax.set_ylim(bottom=0)
        ax.set_title(plain(n), fontsize=10, loc="left")
        handles, labels = ax.get_legend_handles_labels()
        if _has(s, f"{n}/utilization"):
            ax2 = ax.twinx()
            ax2.plot(t, 100 * s[f"{n}/utilization"], color="C4", lw=1, alpha=0.8, label="server busy (right)")
            ax2.set_ylabel("server busy (%)", color="C4")
            ax2.set_ylim(0, 105)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        _decorate(ax, result, "connections (count)")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        # One legend per panel, outside the plot on the right: no line can run under it.
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.09, 1.0), fontsize=8, framealpha=0.85,
                  borderaxespad=0.0)
    return _finish(fig, axes)


def _jobs_prefix(result) -> str | None:
    """``<worker>/jobs/`` as the engine samples it, or the older ``jobs/``; ``None`` without a queue."""
    s = result.series
    for name, dep in result.scenario.deployments.items():
        if dep.consumes and any(_has(s, f"{name}/jobs/{m}") for m in ("backlog", "running")):
            return f"{name}/jobs/"
    if any(_has(s, f"jobs/{m}") for m in ("backlog", "running", "latency_p99_s")):
        return "jobs/"
    return None


def plot_jobs(result) -> Figure | None:
    """The worker job queue: backlog and running jobs, and job latency p99."""
    s = result.series
    prefix = _jobs_prefix(result)
    if prefix is None:
        return None
    has_latency = _has(s, f"{prefix}latency_p99_s")
    fig, axes = _new(2 if has_latency else 1, "Worker job queue")
    t = _minutes(s.index)
    for m, lab, color in (("backlog", "queued (backlog)", "C1"), ("running", "running", "C0"),
                          ("waiting_retry", "waiting to retry", "C3")):
        if _has(s, f"{prefix}{m}"):
            axes[0].plot(t, s[f"{prefix}{m}"], color=color, lw=1.3, label=lab)
    axes[0].set_ylim(bottom=0)
    _decorate(axes[0], result, "jobs (count)")
    if has_latency:
        axes[1].plot(t, s[f"{prefix}latency_p99_s"], color="C3", lw=1.3, label="job latency p99 (enqueue → done)")
        bound = getattr(result.scenario.targets, "job_latency_p99", None)
        if bound is not None:
            axes[1].axhline(bound.max, color="C3", ls="--", lw=1, label=f"target p99 ≤ {bound.max:g} s")
        _decorate(axes[1], result, "latency (s)")
    return _finish(fig, axes)


#: Figure name (the PNG's file stem) → function, in report order.
FIGURES = {
    "latency": plot_latency,
    "replicas": plot_replicas,
    "utilisation": plot_utilisation,
    "datastores": plot_datastores,
    "jobs": plot_jobs,
}


def all_figures(result, figures: dict | None = None) -> dict:
    """Every figure the run has data for, by name, in report order; ``figures`` (name → function)
    defaults to the PNG figures (:mod:`.interactive` passes its own, of the same names)."""
    out = {}
    for name, fn in (FIGURES if figures is None else figures).items():
        fig = fn(result)
        if fig is not None:
            out[name] = fig
    return out


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
