"""Figures of runs, for notebooks and scripts: the public face of the package's plots.

Each ``plot_*`` function returns a matplotlib ``Figure`` and shows nothing (or ``None`` when
the run has no data for it); :func:`show` displays one in Jupyter as a PNG, whatever the
matplotlib backend; :func:`figure_png` gives the PNG bytes.

One run (the report's figures; time in simulated minutes, the warm-up shaded):
``plot_replicas``, ``plot_utilisation``, ``plot_latency``, ``plot_datastores``, ``plot_jobs``.

Several runs: ``plot_runs`` (series of labelled Results overlaid in time), ``plot_sweep`` and
``sweep_table`` (a sweep's figures against the parameter varied, means with 95 % intervals).

A search: ``plot_pareto`` (``recommend``'s pareto.png: cost per month against p99 and throughput).

Calibration and backtest: ``plot_calibration_fit`` (``calibrate``'s calibration-fit.png: the CPU
measured against fitted), ``plot_backtest`` (``backtest``'s three overlays: replicas, latency,
throughput, recorded against simulated).

>>> from memstack_capacity import load_scenario, scale_model, simulate
>>> from memstack_capacity.plotting import plot_replicas, show
>>> show(plot_replicas(simulate(scale_model(load_scenario("scenarios/peak.yaml"), 8))))

It re-exports what the outputs layer draws and imports nothing else of the package; no
module of the package imports it.
"""

from __future__ import annotations

from memstack_capacity.outputs.plots import (
    figure_png,
    plot_datastores,
    plot_jobs,
    plot_latency,
    plot_replicas,
    plot_utilisation,
)
from memstack_capacity.outputs.backtest_files import figures as _backtest_figures
from memstack_capacity.outputs.calibration_files import fit_figure as _fit_figure
from memstack_capacity.outputs.recommend_plot import pareto_figure
from memstack_capacity.outputs.whatif_plots import plot_runs, plot_sweep, sweep_table

__all__ = ["show", "figure_png", "plot_replicas", "plot_utilisation", "plot_latency", "plot_datastores",
           "plot_jobs", "plot_runs", "plot_sweep", "sweep_table", "plot_pareto", "plot_calibration_fit",
           "plot_backtest"]


def plot_pareto(recommendation):
    """``recommend``'s trade-off figure (pareto.png) for a ``Recommendation`` or its ``to_dict()``
    (recommend.json): cost per month against p99 latency and against throughput, one marker per
    configuration (filled: simulated, green every target met, red a miss; hollow: the flow
    model's screen only), the targets dashed, the recommendation a star."""
    doc = recommendation.to_dict() if hasattr(recommendation, "to_dict") else recommendation
    return pareto_figure(doc)


def plot_calibration_fit(calibration):
    """``calibrate``'s calibration-fit.png for a ``Calibration``: the deployment's CPU measured and
    fitted by the utilisation law over time, and measured against fitted around y = x (R², the
    residual sd and the windows in the titles); None when no CPU was fitted."""
    return _fit_figure(calibration)


def plot_backtest(backtest) -> dict:
    """``backtest``'s plots for a ``Backtest``: ``{"replicas": …, "latency": …, "throughput": …}``,
    each recorded (grey) against simulated (red; with replications their mean and range) over the
    recording's time, the figure's MAPE or replica error in its title."""
    return {name.removeprefix("backtest-").removesuffix(".png"): fig
            for name, fig in _backtest_figures(backtest).items()}


def show(fig) -> None:
    """Display ``fig`` in Jupyter as a PNG (works with any matplotlib backend); ``None`` shows nothing."""
    if fig is None:
        return
    from IPython.display import Image, display  # Jupyter's own; only needed where there is a display

    display(Image(figure_png(fig)))
