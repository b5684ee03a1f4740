"""The simulated series as OpenMetrics text, under the names a Kubernetes SRE already queries.

``promtool tsdb create-blocks-from openmetrics metrics.om DATA_DIR`` turns the file into
Prometheus blocks, so a run sits beside real data in the same Prometheus and Grafana. The
names are kube-state-metrics', cAdvisor's and the service's own where one exists:

==========================================  =============================================
``kube_deployment_spec_replicas``           ``<deployment>/replicas_desired``
``kube_deployment_status_replicas``         ``<deployment>/pods``
``kube_deployment_status_replicas_ready``   ``<deployment>/pods_ready``
``container_cpu_usage_seconds_total``       ``<deployment>/cpu_cores`` integrated (a counter)
``container_memory_working_set_bytes``      ``<deployment>/memory_bytes``
``http_requests_total{status}``             ``ingress/throughput_rps`` (``200``) and
                                            ``ingress/errors_<code>_rps`` integrated
``memstack_ingress_latency_seconds``        ``ingress/latency_p50_s`` … ``_p99_s``
                                            (gauges, label ``quantile``)
``memstack_queue_size``                     ``<worker>/jobs/backlog``
``memstack_<metric>{component}``            every other ``component/metric``, a gauge
==========================================  =============================================

Every series carries ``namespace`` (``memstack``, the manifests') and ``scenario``; the
per-deployment ones ``deployment`` (the scenario's name for it, ``api``), the HTTP ones
``job`` (``memstack-api``, the ServiceMonitor's, so the deployment's own alert expressions
run on the imported series). CPU and memory are per deployment (the sum over its pods: the
simulator does not keep each pod's), labelled ``container`` like cAdvisor's.

The format's rules kept here: ``# TYPE``/``# HELP`` once per family before its samples, a
family's samples together and each series' in increasing time, counters' samples end in
``_total``, timestamps in seconds (the anchor plus simulated time), and ``# EOF`` last.

Latency goes out as the quantiles the simulator measured per interval, not as the
``http_request_duration_seconds`` histogram the service exposes: a histogram or summary has
several samples per point, and ``prometheus_client``'s OpenMetrics parser keeps only the
first of them at every timestamp after the first, so such a file would not read back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from memstack_capacity.results.result import anchor_timestamp

NAMESPACE = "memstack"
HTTP_JOB = "memstack-api"
#: Suffixes the format reserves for a family's samples; no gauge's name may end in one.
_RESERVED = ("_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info")

#: deployment metric → (family, help); gauges with the deployment's labels.
DEPLOYMENT_GAUGES = {
    "replicas_desired": ("kube_deployment_spec_replicas", "Desired replicas (the HPA's decision)."),
    "pods": ("kube_deployment_status_replicas", "Pods of the deployment (created, not yet deleted)."),
    "pods_ready": ("kube_deployment_status_replicas_ready", "Pods passing their readiness probe."),
    "memory_bytes": ("container_memory_working_set_bytes",
                     "Working-set memory of the deployment's containers, summed over its pods."),
}
CPU_COUNTER = ("container_cpu_usage_seconds_total", "CPU seconds used by the deployment's containers, summed over its pods.")
LATENCY_QUANTILES = {"latency_p50_s": "0.5", "latency_p95_s": "0.95", "latency_p99_s": "0.99"}
HTTP_STATUSES = {"throughput_rps": "200", "errors_500_rps": "500", "errors_502_rps": "502",
                 "errors_503_rps": "503", "errors_504_rps": "504"}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One metric family: its name (without ``_total`` for a counter), type, help and text lines."""

    name: str
    kind: str
    help: str
    lines: list[str]


# ---- numbers and labels ------------------------------------------------------------------------


def number(value: float) -> str:
    """A float as OpenMetrics writes it: the shortest text that reads back to the same float."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def metric_name(text: str) -> str:
    """``jobs/backlog`` → ``memstack_jobs_backlog``: a valid name, never ending in a reserved suffix."""
    name = f"{NAMESPACE}_" + re.sub(r"[^a-zA-Z0-9_]", "_", text)
    return name + "_value" if name.endswith(_RESERVED) else name


def _series_lines(sample: str, values: Iterable[float], stamps: Iterable[str]) -> list[str]:
    """``sample value timestamp`` lines of one series (``sample`` is the name with its labels)."""
    return [f"{sample} {number(v)} {t}" for v, t in zip(values, stamps)]


# ---- the families -----------------------------------------------------------------------------


class _Series:
    """The long timeseries grouped by (component, metric), each in time order, with its timestamps."""

    def __init__(self, timeseries: pd.DataFrame, anchor_s: float):
        frame = timeseries.sort_values(["component", "metric", "t_s"], kind="stable")
        self.groups: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if len(frame):
            keys = frame["component"].astype(str) + "\x00" + frame["metric"].astype(str)
            t, v = frame["t_s"].to_numpy(np.float64), frame["value"].to_numpy(np.float64)
            codes, uniques = pd.factorize(keys, sort=False)
            bounds = np.flatnonzero(np.diff(codes)) + 1
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(codes)]):
                component, metric = uniques[codes[lo]].split("\x00", 1)
                self.groups[(component, metric)] = (t[lo:hi], v[lo:hi])
        self.anchor_s = anchor_s
        self.used: set[tuple[str, str]] = set()

    def take(self, component: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        found = self.groups.get((component, metric))
        if found is not None:
            self.used.add((component, metric))
        return found

    def stamps(self, t: np.ndarray) -> list[str]:
        return [number(x) for x in (self.anchor_s + t).tolist()]


def _deployment_families(series: _Series, deployments: list[str], base: dict) -> Iterator[Family]:
    for metric, (name, help_text) in DEPLOYMENT_GAUGES.items():
        lines = []
        for dep in deployments:
            found = series.take(dep, metric)
            if found is not None:
                extra = {"container": dep} if name.startswith("container_") else {}
                sample = name + labels_text({**base, "deployment": dep, **extra})
                lines += _series_lines(sample, found[1].tolist(), series.stamps(found[0]))
        if lines:
            yield Family(name, "gauge", help_text, lines)
    lines = []
    for dep in deployments:
        found = series.take(dep, "cpu_cores")
        if found is not None:
            t, cores = found
            used = np.cumsum(np.nan_to_num(cores) * _intervals(t))
            sample = CPU_COUNTER[0] + labels_text({**base, "deployment": dep, "container": dep})
            lines += _series_lines(sample, used.tolist(), series.stamps(t))
    if lines:
        yield Family(CPU_COUNTER[0].removesuffix("_total"), "counter", CPU_COUNTER[1], lines)


def _intervals(t: np.ndarray) -> np.ndarray:
    """Each sample's interval: the time since the previous sample (the first: since 0)."""
    return np.diff(t, prepend=0.0)


def _http_families(series: _Series, base: dict) -> Iterator[Family]:
    http = {**base, "job": HTTP_JOB}
    lines = []
    for metric, status in HTTP_STATUSES.items():
        found = series.take("ingress", metric)
        if found is not None:
            t, rate = found
            total = np.cumsum(np.nan_to_num(rate) * _intervals(t))
            lines += _series_lines(f"http_requests_total{labels_text({**http, 'status': status})}", total.tolist(),
                                   series.stamps(t))
    if lines:
        yield Family("http_requests", "counter", "Answers of the ingress by HTTP status (200: OK).", lines)
    lines = []
    for metric, quantile in LATENCY_QUANTILES.items():
        found = series.take("ingress", metric)
        if found is not None:
            sample = "memstack_ingress_latency_seconds" + labels_text({**base, "quantile": quantile})
            lines += _series_lines(sample, found[1].tolist(), series.stamps(found[0]))
    if lines:
        yield Family("memstack_ingress_latency_seconds", "gauge",
                     "Latency quantiles of the OK answers in each sample interval (seconds).", lines)


def _queue_family(series: _Series, workers: list[str], base: dict) -> Iterator[Family]:
    lines = []
    for dep in workers:
        found = series.take(dep, "jobs/backlog")
        if found is not None:
            sample = "memstack_queue_size" + labels_text({**base, "job": f"memstack-{dep}", "deployment": dep})
            lines += _series_lines(sample, found[1].tolist(), series.stamps(found[0]))
    if lines:
        yield Family("memstack_queue_size", "gauge", "Jobs waiting in the task queue (the worker's backlog).", lines)


def _other_families(series: _Series, base: dict, taken: set[str]) -> Iterator[Family]:
    """Every series not exported under a standard name: ``memstack_<metric>{component}``, a gauge."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for component, metric in series.groups:
        if (component, metric) not in series.used:
            by_name.setdefault(metric_name(metric), []).append((component, metric))
    for name in sorted(by_name):
        if name in taken:
            continue
        lines = []
        for component, metric in sorted(by_name[name]):
            t, v = series.take(component, metric)
            lines += _series_lines(name + labels_text({**base, "component": component}), v.tolist(), series.stamps(t))
        yield Family(name, "gauge", f"The simulator's {by_name[name][0][1]} (docs/reference/results.md).", lines)


def families(result, anchor=None) -> list[Family]:
    """The run's series as metric families, in the order they are written."""
    scenario = result.scenario
    base = {"namespace": NAMESPACE, "scenario": str(scenario.name)}
    series = _Series(result.timeseries, anchor_timestamp(anchor).timestamp())
    deployments = list(scenario.deployments)
    workers = [name for name, dep in scenario.deployments.items() if getattr(dep, "consumes", None)]
    out = [*_deployment_families(series, deployments, base),
           *_http_families(series, base),
           *_queue_family(series, workers, base)]
    out += _other_families(series, base, {f.name for f in out})
    return out


def openmetrics_text(result, anchor=None) -> str:
    """The whole exposition: every family, then ``# EOF``."""
    parts = []
    for family in families(result, anchor):
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        parts.append(f"# TYPE {family.name} {family.kind}\n# HELP {family.name} {help_text}\n")
        if family.lines:
            parts.append("\n".join(family.lines) + "\n")
    parts.append("# EOF\n")
    return "".join(parts)
