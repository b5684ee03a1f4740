"""Figures: one per function, axes labelled with units, legends, absent data → no figure."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from report_scenarios import scenario

from memstack_capacity import simulate
from memstack_capacity.outputs import plots


@pytest.fixture(scope="module")
def result():
    return simulate(scenario())


def test_figures_present_have_units_and_legends(result):
    figs = plots.all_figures(result)
    assert set(figs) == {"latency", "replicas", "utilisation"}
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        for ax in fig.axes:
            assert "(" in ax.get_ylabel(), f"{name}: y label without a unit: {ax.get_ylabel()!r}"
            assert ax.get_legend() is not None, f"{name}: an axis without a legend"
        assert "min" in fig.axes[0].get_shared_x_axes().get_siblings(fig.axes[0])[-1].get_xlabel() or any(
            "min" in ax.get_xlabel() for ax in fig.axes)
        png = plots.figure_png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_without_data_are_skipped(result):
    assert plots.plot_datastores(result) is None
    assert plots.plot_jobs(result) is None


def test_utilisation_marks_limit_and_process_ceiling(result):
    labels = [line.get_label() for ax in plots.plot_utilisation(result).axes for line in ax.get_lines()]
    assert any(label.startswith("limit = 200%") for label in labels)
    assert not any("process(es)" in label for label in labels)  # limit 1 core = 1 process: no separate ceiling
