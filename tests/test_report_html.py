"""report.html: its text (inline Markdown by markdown-it, HTML escaped) and its interactive figures
(the PNGs' figures and series, axes that fit the data, legends outside the plot, safe markup)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from report_scenarios import scenario

from memstack_capacity import simulate
from memstack_capacity.outputs import interactive, plots
from memstack_capacity.outputs.report_files import _inline, render_html

LIMITS = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


@pytest.fixture(scope="module")
def result():
    return simulate(scenario(**{"deployments.api.resources": LIMITS}))


def _legend_names(fig) -> list[str]:
    return [trace.name for trace in fig.data]


def test_the_figures_and_series_of_the_pngs(result):
    figs = interactive.all_figures(result)
    assert list(figs) == list(plots.all_figures(result)) == ["latency", "replicas", "utilisation"]
    pngs = plots.all_figures(result)
    for name, fig in figs.items():
        labels = {line.get_label() for ax in pngs[name].axes for line in ax.get_lines() + ax.collections}
        labels = {label.replace("\n", " ") for label in labels if not label.startswith("_")}
        assert labels <= {n.split("<br>")[0] for n in _legend_names(fig)}, name
        assert all(trace.legend for trace in fig.data)  # every series can be toggled from a legend


def test_utilisation_axis_spans_the_data_not_a_limit_far_above(result):
    fig = interactive.plot_utilisation(result)
    cpu = result.series["api/cpu_utilization"].max() * 100
    top = fig.layout.yaxis.range[1]
    assert cpu < top < 2 * cpu < 400  # the data, not the limit at 400 % of the request
    assert "limit = 400% ↑ off axis" in _legend_names(fig)  # the same words as the PNG legend
    hpa = simulate(scenario(**{"deployments.api.resources": LIMITS, "deployments.api.hpa": {
        "minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 90}}}]}}))  # fmt: skip
    fig = interactive.plot_utilisation(hpa)
    assert 90 < fig.layout.yaxis.range[1] < 400 and "HPA target 90%" in _legend_names(fig)  # a target stays in view


def test_legends_sit_outside_the_plotting_area(result):
    for fig in interactive.all_figures(result).values():
        legends = [key for key in fig.layout.to_plotly_json() if key.startswith("legend")]
        assert legends and all(fig.layout[key].x > 1.0 for key in legends)


def test_a_name_cannot_end_the_script_or_become_markup():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name=interactive.text("</script><b>x</b>&")))
    script = interactive.figure_script(fig, "fig-x")
    assert "</script" not in script and "<b>" not in script and "&lt;b&gt;x" in script
    raw = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name="</script><!--"))  # even unescaped, nothing ends the script
    assert "<" not in interactive.figure_script(raw, "fig-y")


def test_inline_markdown_bold_and_code_and_nothing_else():
    assert _inline("**Scale.** set `maxReplicas` to 30") == "<strong>Scale.</strong> set <code>maxReplicas</code> to 30"
    assert _inline("`a<b>` & <script>alert(1)</script> [x](javascript:alert(1))") == (
        "<code>a&lt;b&gt;</code> &amp; &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1))")
    assert _inline("pool_wait_p99 &amp; 2 * 3") == "pool_wait_p99 &amp;amp; 2 * 3"  # shown as written


def test_render_html_escapes_a_hostile_description():
    data = scenario()
    hostile = data.model_copy(update={"description": "Peak <script>alert(1)</script> & <b>bold</b>, p99 < 1 s"})
    page = render_html(simulate(hostile))
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "p99 &lt; 1 s" in page
