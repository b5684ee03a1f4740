"""A Grafana dashboard for the series of :mod:`.openmetrics`, once imported into Prometheus.

Six panels (replicas, CPU, memory, request rate, latency, errors) over the names the
export writes, filtered to the run's scenario and namespace, with a Prometheus data-source
variable so it works against whichever Prometheus holds the imported blocks. The time range
opens on the run: from the anchor to the anchor plus the duration.

The model is built with ``grafana-foundation-sdk``, Grafana's own typed builders
generated from its schemas, rather than by hand: the field names, the panel and target
shapes and the schema version are Grafana's, and the tests read the file back into the
SDK's ``Dashboard`` model.
"""

from __future__ import annotations

import hashlib

import pandas as pd
from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

from memstack_capacity.outputs.openmetrics import NAMESPACE, escape_label
from memstack_capacity.results.result import anchor_timestamp

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
PANEL_W, PANEL_H = 12, 8


def _panel(title: str, unit: str, queries: list[tuple[str, str]], description: str) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .min(0).fill_opacity(10).line_width(1))
    for ref, (expr, legend) in zip("ABCDEFGH", queries):
        panel = panel.with_target(prometheus.Dataquery().ref_id(ref).datasource(DATASOURCE).expr(expr)
                                  .legend_format(legend).range())
    return panel


def panels(scenario_name: str) -> list[timeseries.Panel]:
    """The six panels, each with its PromQL over the exported names."""
    sel = f'namespace="{NAMESPACE}",scenario="{escape_label(scenario_name)}"'
    return [
        _panel("Replicas", "short", [
            (f"kube_deployment_spec_replicas{{{sel}}}", "{{deployment}} desired"),
            (f"kube_deployment_status_replicas_ready{{{sel}}}", "{{deployment}} ready"),
        ], "Desired replicas (the HPA's decision) and pods Ready, per deployment."),
        _panel("CPU", "short", [
            (f"sum by (deployment) (rate(container_cpu_usage_seconds_total{{{sel}}}[1m]))", "{{deployment}}"),
        ], "Cores used, summed over each deployment's pods."),
        _panel("Memory", "bytes", [
            (f"sum by (deployment) (container_memory_working_set_bytes{{{sel}}})", "{{deployment}}"),
        ], "Working-set memory, summed over each deployment's pods."),
        _panel("Request rate", "reqps", [
            (f"sum by (status) (rate(http_requests_total{{{sel}}}[1m]))", "{{status}}"),
        ], "Answers of the ingress per second, by HTTP status."),
        _panel("Latency", "s", [
            (f"memstack_ingress_latency_seconds{{{sel}}}", "p{{quantile}}"),
        ], "Latency quantiles of the OK answers in each sample interval."),
        _panel("Errors", "percentunit", [
            (f'sum(rate(http_requests_total{{{sel},status=~"5.."}}[1m])) / sum(rate(http_requests_total{{{sel}}}[1m]))',
             "error ratio"),
        ], "The fraction of answers that were 5xx."),
    ]


def dashboard_model(result, anchor=None):
    """The dashboard for ``result`` as the SDK's ``Dashboard`` model."""
    scenario = result.scenario
    start = anchor_timestamp(anchor)
    end = start + pd.Timedelta(seconds=float(scenario.duration))
    builder = (dashboard.Dashboard(f"memstack-capacity: {scenario.name}")
               .uid(_uid(str(scenario.name)))
               .tags(["memstack-capacity", "simulation"])
               .timezone("utc")
               .time(start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"))
               .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")))
    for i, panel in enumerate(panels(str(scenario.name))):
        builder = builder.with_panel(panel.grid_pos(_grid(i)))
    return builder.build()


def _grid(i: int):
    return GridPos(h=PANEL_H, w=PANEL_W, x=(i % 2) * PANEL_W, y=(i // 2) * PANEL_H)


def _uid(name: str) -> str:
    """A stable uid from the scenario's name (Grafana allows 40 characters of [A-Za-z0-9_-])."""
    return "memstack-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def dashboard_json(result, anchor=None) -> str:
    """The dashboard as the JSON Grafana imports (keys sorted, so the bytes are stable)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(dashboard_model(result, anchor)) + "\n"
