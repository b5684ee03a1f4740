"""The report's figures for report.html: plotly figures one can zoom, hover and filter.

The same figures, panels and series as :mod:`memstack_capacity.outputs.plots` (whose PNGs
stay for report.md and notebooks), drawn from the Result's frames: one function per figure,
returning ``None`` when the run has no data for it. Panels of a figure share the time axis,
so zooming one zooms all; every panel has its own legend, outside the plot on the right,
where clicking an entry hides or shows its series. Reference lines (targets, limits) are
legend entries too. A y-axis spans the data and the targets the HPA compares it with; a
limit far above the data (a CPU limit at 400 % of the request for data around 30 %) keeps
its legend entry, marked as above the axis, instead of squashing the data to the floor.

:func:`figure_div` is the ``<div>`` a figure goes in, :func:`figure_script` the statement
that draws it; :func:`plotly_js` is plotly.js itself, to be embedded once per page (after the
text, so the text shows first), so the report works offline. Text a scenario supplies (names)
is escaped for plotly's own markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from memstack_capacity.outputs import plots

__all__ = ["FIGURES", "all_figures", "figure_div", "figure_script", "plotly_js",
           "plot_replicas", "plot_utilisation", "plot_latency", "plot_datastores", "plot_jobs"]  # fmt: skip

PANEL_PX, TITLE_PX, LEGEND_PX, GAP_PX = 250, 110, 320, 60
#: A limit line is drawn inside the axis when it is at most this many times the data's top.
LIMIT_IN_RANGE = 1.5
HEADROOM = 1.12

#: matplotlib's default colour cycle, so a series has the colour it has in the PNG.
C = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
DASH = {"--": "dash", ":": "dot", "-.": "dashdot", "-": "solid"}
#: matplotlib's colour names as the static figures use them.
_COLOURS = {"k": "#000", "C4": C[4]}

CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False,
          "modeBarButtonsToRemove": ["select2d", "lasso2d"]}  # fmt: skip


def text(value) -> str:
    """``value`` shown as written in a plotly label: plotly reads ``<b>``, ``<a href>`` and
    entities in labels, so a scenario's name must not be taken as markup."""
    return html.escape(str(value), quote=False)


class _Panels:
    """A figure of ``rows`` panels sharing the time axis; each panel with its own legend."""

    def __init__(self, result, rows: int, title: str, titles: list[str], right_axis: bool = False):
        self.result, self.rows, self.right_axis = result, rows, right_axis
        self.t = np.asarray(result.series.index, dtype=float) / 60.0
        height, top_px, bottom_px = TITLE_PX + PANEL_PX * rows, 70, 50
        self.fig = make_subplots(rows=rows, cols=1, shared_xaxes=True,
                                 vertical_spacing=GAP_PX / (height - top_px - bottom_px),
                                 subplot_titles=[text(s) for s in titles],
                                 specs=[[{"secondary_y": right_axis}]] * rows)  # fmt: skip
        # No named template: validating one costs a second per figure; the few styles needed are set here.
        self.fig.update_layout(
            title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 16}},
            template="none", height=height, hovermode="x unified", plot_bgcolor="white", paper_bgcolor="white",
            margin={"l": 70, "r": LEGEND_PX + (50 if right_axis else 0), "t": top_px, "b": bottom_px},
            font={"family": "system-ui, sans-serif", "size": 12, "color": "#222"})  # fmt: skip
        for annotation in self.fig.layout.annotations:  # the panel titles, at the left like the PNG's
            annotation.update(x=0.0, xanchor="left", font={"size": 13})
        axes = {"showgrid": True, "gridcolor": "#eee", "showline": True, "linecolor": "#444", "ticks": "outside",
                "zeroline": False, "tickmode": "auto"}  # fmt: skip
        self.fig.update_xaxes(range=[0, result.scenario.duration / 60.0], hoverformat=".2f", showspikes=True,
                              spikemode="across", spikethickness=1, **axes)  # fmt: skip
        self.fig.update_xaxes(title_text="simulated time (min; grey = warm-up)", row=rows, col=1)
        self.fig.update_yaxes(**axes)
        self.traces: list[tuple[go.Scatter, int, bool]] = []

    def _legend(self, row: int) -> str:
        return "legend" if row == 1 else f"legend{row}"

    def line(self, row: int, y, name: str, color: str, *, dash: str = "-", width: float = 1.5, step: bool = False,
             right: bool = False, unit: str = "", scale: float = 1.0) -> None:  # fmt: skip
        """A sampled series (``y`` aligned with the series index), multiplied by ``scale``."""
        values = np.asarray(y, dtype=float) * scale
        self.traces.append((go.Scatter(
            x=self.t, y=values, name=name, mode="lines", legend=self._legend(row),
            line={"color": color, "width": width, "dash": DASH[dash], "shape": "hv" if step else "linear"},
            hovertemplate=f"%{{y:.4~g}}{unit}"), row, right))  # fmt: skip

    def level(self, row: int, value: float, name: str, color: str, dash: str = "--", right: bool = False) -> None:
        """A horizontal reference line over the whole run, with a legend entry; no hover of its own."""
        span = [0.0, self.result.scenario.duration / 60.0]
        self.traces.append((go.Scatter(
            x=span, y=[value, value], name=name, mode="lines", legend=self._legend(row), hoverinfo="skip",
            line={"color": color, "width": 1.2, "dash": DASH[dash]}), row, right))  # fmt: skip

    def markers(self, row: int, t_min, y, name: str, color: str, symbol: str, hover: list[str]) -> None:
        self.traces.append((go.Scatter(
            x=np.asarray(t_min, dtype=float), y=np.asarray(y, dtype=float), name=name, mode="markers",
            legend=self._legend(row), marker={"color": color, "symbol": symbol, "size": 9},
            hovertext=hover, hovertemplate="%{hovertext}"), row, False))  # fmt: skip

    def axis(self, row: int, title: str, top: float | None = None, right: bool = False, **kw) -> None:
        """Name a panel's y-axis; ``top`` fixes its range to ``[0, top]``."""
        extra = {"range": [0, top]} if top is not None else {}
        self.fig.update_yaxes(title_text=title, row=row, col=1, secondary_y=right, **extra, **kw)

    def done(self) -> go.Figure:
        """Add the traces in one go (much faster than one by one) and place each panel's legend."""
        rows = [r for _, r, _ in self.traces]
        kwargs = {"secondary_ys": [s for _, _, s in self.traces]} if self.right_axis else {}
        self.fig.add_traces([tr for tr, _, _ in self.traces], rows=rows, cols=[1] * len(rows), **kwargs)
        warm = self.result.scenario.warmup
        if warm > 0:
            self.fig.add_vrect(x0=0, x1=warm / 60.0, fillcolor="#bbb", opacity=0.3, line_width=0, layer="below",
                               row="all", col=1, exclude_empty_subplots=False)  # fmt: skip
        x = 1.0 + (0.09 if self.right_axis else 0.02)
        for row in range(1, self.rows + 1):
            top = self.fig.get_subplot(row, 1).yaxis.domain[1]
            self.fig.layout[self._legend(row)] = {"x": x, "xanchor": "left", "y": top, "yanchor": "top",
                                                  "font": {"size": 11}, "bgcolor": "rgba(0,0,0,0)"}  # fmt: skip
        return self.fig


def _peak(values) -> float:
    """The largest finite value of an array (any shape), 0 if none."""
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    return float(arr.max()) if arr.size else 0.0


def _top(data_max: float, always: Iterable[float] = (), limits: Iterable[float] = ()) -> tuple[float, set]:
    """The y-axis top for data reaching ``data_max``: room for the data and the ``always`` lines
    (targets), and for each of ``limits`` within :data:`LIMIT_IN_RANGE` of that; with the
    limits left above the axis."""
    base = max([data_max, *always, 1e-9])
    limits = list(limits)
    shown = [v for v in limits if v <= LIMIT_IN_RANGE * base]
    return max([base, *shown]) * HEADROOM, {v for v in limits if v not in shown}


def _above(name: str, value: float, off: set) -> str:
    return f"{name}<br>(above the axis)" if value in off else name


def _rescale(name: str, before, after, reason) -> str:
    """The hover text of one HPA rescale: ``HPA scale-up: 3 → 5`` and the controller's reason."""
    before = f"{before:g}" if before == before else "?"
    line = f"{name}: {before} → {after:g}"
    return f"{line}<br>{text(reason)}" if isinstance(reason, str) and reason else line


def plot_replicas(result) -> go.Figure | None:
    """Desired, scheduled and Ready pods per deployment, with each HPA rescale marked."""
    s = result.series
    deps = [d for d in result.scenario.deployments if plots._has(s, f"{d}/replicas_desired")]
    if not deps:
        return None
    p = _Panels(result, len(deps), "Replicas and HPA decisions", deps)
    for row, d in enumerate(deps, start=1):
        cols = [f"{d}/replicas_desired"]
        p.line(row, s[f"{d}/replicas_desired"], "desired (spec.replicas)", C[0], width=2, step=True)
        if plots._has(s, f"{d}/pods"):
            p.line(row, s[f"{d}/pods"], "pods (incl. Pending)", C[7], dash="--", width=1, step=True)
            cols.append(f"{d}/pods")
        if plots._has(s, f"{d}/pods_ready"):
            p.line(row, s[f"{d}/pods_ready"], "Ready pods", C[2], step=True)
            cols.append(f"{d}/pods_ready")
        hpa = getattr(result.scenario.deployments[d], "hpa", None)
        bounds = []
        for bound, name in ((getattr(hpa, "minReplicas", None), "min"), (getattr(hpa, "maxReplicas", None), "max")):
            if bound is not None:
                p.level(row, bound, f"HPA {name}Replicas = {bound}", "#666", dash=":")
                bounds.append(float(bound))
        events = plots.scaling_events(result, d)
        if len(events):
            before = events["from"].fillna(-1)
            for sel, name, color, symbol in ((events["to"] > before, "HPA scale-up", C[3], "triangle-up"),
                                             (events["to"] < before, "HPA scale-down", C[1], "triangle-down")):
                e = events[sel]
                if len(e):
                    hover = [_rescale(name, f, t, r) for f, t, r in zip(e["from"], e["to"], e["reason"])]
                    p.markers(row, e["t_s"] / 60.0, e["to"], name, color, symbol, hover)
        top, _ = _top(_peak(s[cols].to_numpy().ravel()), always=bounds)
        p.axis(row, "pods (count)", max(top, 1.5), rangemode="tozero", tickformat="d")
    return p.done()


def plot_utilisation(result) -> go.Figure | None:
    """CPU and memory utilisation against requests, beside the HPA targets and the limits."""
    s = result.series
    deps = [d for d in result.scenario.deployments if plots._has(s, f"{d}/cpu_utilization")]
    if not deps:
        return None
    titles = [f"{d} — {res}" for d in deps for res in ("cpu", "memory")]
    p = _Panels(result, 2 * len(deps), "Utilisation (as the HPA sees it: % of requests)", titles)
    for i, d in enumerate(deps):
        spec = result.scenario.deployments[d]
        targets = plots.hpa_targets(spec)
        for row, res in ((2 * i + 1, "cpu"), (2 * i + 2, "memory")):
            col = f"{d}/{res}_utilization"
            data_max = None
            if plots._has(s, col):
                p.line(row, s[col], plots.USED_LABEL, C[0], unit=" %", scale=100.0)
                data_max = 100 * _peak(s[col].to_numpy())
            if res in targets:
                p.level(row, 100 * targets[res], f"HPA target {targets[res]:.0%}", C[3])
            top, ceilings = plots.utilisation_axis(spec, res, data_max, targets.get(res))
            for value, style, name in ceilings:
                p.level(row, value, name.replace("\n", " "), _COLOURS.get(style["color"], style["color"]),
                        dash=style["ls"])
            p.axis(row, f"{res} (% of request)", top)
    return p.done()


def plot_latency(result) -> go.Figure | None:
    """Latency percentiles per sample interval, and load, throughput and error rate."""
    s = result.series
    pcts = [(c, lab) for c, lab in (("ingress/latency_p50_s", "p50"), ("ingress/latency_p95_s", "p95"),
                                     ("ingress/latency_p99_s", "p99")) if plots._has(s, c)]  # fmt: skip
    if not pcts and not plots._has(s, "ingress/throughput_rps"):
        return None
    has_errors = plots._has(s, "ingress/error_rate")
    p = _Panels(result, 2, "Latency, load and errors (per sample interval)", ["latency", "load and errors"],
                right_axis=has_errors)  # fmt: skip
    for k, (c, lab) in enumerate(pcts):
        p.line(1, s[c], lab, C[k], unit=" s")
    targets = result.scenario.targets
    for stat in ("p50", "p95", "p99", "mean"):
        bound = getattr(targets, f"latency_{stat}", None)
        if bound is not None:
            p.level(1, bound.max, f"target {stat} ≤ {bound.max:g} s", C[3])
    log = bool(pcts) and _peak(s[[c for c, _ in pcts]].to_numpy().ravel()) > 0
    p.axis(1, "latency (s, log)" if log else "latency (s)", type="log" if log else "linear")
    load = [c for c in ("ingress/arrivals_rps", "ingress/throughput_rps") if plots._has(s, c)]
    for c, lab, color in (("ingress/arrivals_rps", "arrivals", C[7]), ("ingress/throughput_rps", "OK answers", C[0])):
        if c in load:
            p.line(2, s[c], lab, color, unit=" /s")
    p.axis(2, "requests (per s)", _top(_peak(s[load].to_numpy().ravel()))[0] if load else None)
    if has_errors:
        p.line(2, s["ingress/error_rate"], "error rate (right)", C[3], right=True, unit=" %", scale=100.0, width=1.2)
        bound = getattr(targets, "error_rate", None)
        if bound is not None and bound.max is not None:
            p.level(2, 100 * bound.max, f"target error rate ≤ {bound.max:.1%}", C[3], right=True)
        p.axis(2, "failed (% of answered)", max(1.0, 100 * _peak(s["ingress/error_rate"].to_numpy()) * 1.15),
               right=True, color=C[3], showgrid=False)  # fmt: skip
    return p.done()


def plot_datastores(result) -> go.Figure | None:
    """Open and in-use connections per datastore against its ``max_connections``; pool waiters.

    A datastore no request used (every sampled metric zero) gets no panel.
    """
    s = result.series
    stores = [n for n in (result.scenario.datastores or {}) if plots._active(s, n)]
    if not stores:
        return None
    busy = any(plots._has(s, f"{n}/utilization") for n in stores)
    p = _Panels(result, len(stores), "Datastores: connections against max_connections", stores, right_axis=busy)
    for row, n in enumerate(stores, start=1):
        cols = []
        for m, lab, color in (("connections_open", "open", C[0]), ("connections_in_use", "in use", C[2]),
                              ("pool_waiters", "waiting for a pooled connection", C[1])):
            if plots._has(s, f"{n}/{m}"):
                p.line(row, s[f"{n}/{m}"], lab, color)
                cols.append(f"{n}/{m}")
        limit = plots._max_connections(result.scenario.datastores[n])
        top, off = _top(_peak(s[cols].to_numpy().ravel()) if cols else 0.0, limits=[limit] if limit else [])
        if limit is not None:
            p.level(row, limit, _above(f"max_connections = {limit:g}", limit, off), C[3])
        p.axis(row, "connections (count)", max(top, 1.0))
        if plots._has(s, f"{n}/utilization"):
            p.line(row, s[f"{n}/utilization"], "server busy (right)", C[4], right=True, unit=" %", scale=100.0,
                   width=1)  # fmt: skip
            p.axis(row, "server busy (%)", 105, right=True, color=C[4], showgrid=False)
    return p.done()


def plot_jobs(result) -> go.Figure | None:
    """The worker job queue: backlog and running jobs, and job latency p99."""
    s = result.series
    prefix = plots._jobs_prefix(result)
    if prefix is None:
        return None
    has_latency = plots._has(s, f"{prefix}latency_p99_s")
    p = _Panels(result, 2 if has_latency else 1, "Worker job queue",
                ["queue", "job latency"][: 2 if has_latency else 1])  # fmt: skip
    cols = []
    for m, lab, color in (("backlog", "queued (backlog)", C[1]), ("running", "running", C[0]),
                          ("waiting_retry", "waiting to retry", C[3])):
        if plots._has(s, f"{prefix}{m}"):
            p.line(1, s[f"{prefix}{m}"], lab, color)
            cols.append(f"{prefix}{m}")
    p.axis(1, "jobs (count)", max(_top(_peak(s[cols].to_numpy().ravel()) if cols else 0.0)[0], 1.0))
    if has_latency:
        p.line(2, s[f"{prefix}latency_p99_s"], "job latency p99 (enqueue → done)", C[3], unit=" s")
        bound = getattr(result.scenario.targets, "job_latency_p99", None)
        always = [bound.max] if bound is not None else []
        if bound is not None:
            p.level(2, bound.max, f"target p99 ≤ {bound.max:g} s", C[3])
        p.axis(2, "latency (s)", _top(_peak(s[f"{prefix}latency_p99_s"].to_numpy()), always)[0])
    return p.done()


#: Figure name → function, in report order: the names and order of :data:`plots.FIGURES`.
FIGURES = {
    "latency": plot_latency,
    "replicas": plot_replicas,
    "utilisation": plot_utilisation,
    "datastores": plot_datastores,
    "jobs": plot_jobs,
}


def all_figures(result) -> dict[str, go.Figure]:
    """Every figure the run has data for, by name, in report order."""
    return plots.all_figures(result, FIGURES)


def _script_json(value) -> str:
    """JSON that is safe inside ``<script>``: no ``<`` (so no ``</script>`` nor ``<!--``) survives."""
    return value.replace("<", "\\u003c")


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The empty ``<div>`` a figure is drawn into, at its final height so the page does not jump."""
    return f'<div id="{html.escape(div_id)}" class="plot" style="height:{int(fig.layout.height or 450)}px"></div>'


def figure_script(fig: go.Figure, div_id: str) -> str:
    """The JavaScript statement that draws ``fig`` into its div (plotly.js must be loaded)."""
    spec = _script_json(fig.to_json(validate=False))
    return f"Plotly.newPlot({json.dumps(div_id)},...(f=>[f.data,f.layout])({spec}),{json.dumps(CONFIG)});"


def plotly_js() -> str:
    """plotly.js (the copy shipped in the plotly package), for one ``<script>`` per page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
