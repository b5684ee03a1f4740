"""The report leads with decisions: the verdict, then the binding constraint and what lifts it.

Ceilings are computed once (``results.ceilings``) and carried by the summary; the report's
binding constraint, its capacity table, the first-to-break sentence and the findings state
only those numbers. The bundled scenarios run shortened (3 simulated minutes; the week on the
flow model it is written for) because a ceiling depends on the scenario alone: the run only
has to reach the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_scenarios import scenario as tiny

from memstack_capacity import load_scenario, simulate
from memstack_capacity.outputs import bottleneck, findings, plots
from memstack_capacity.outputs.report import build_blocks, margin, render_markdown, verdict
from memstack_capacity.outputs.report_files import render_html
from memstack_capacity.outputs.units import percent, rps, seconds
from memstack_capacity.results import ceilings as C
from memstack_capacity.results.alert_series import alert_frame
from memstack_capacity.results.alerts import memstack_rules
from memstack_capacity.scenario.load import parse_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHORT = {"duration": "3m", "warmup": "30s"}
_RUNS: dict = {}


def run(name: str):
    """A bundled scenario, shortened, run once per test session."""
    if name not in _RUNS:
        sc = load_scenario(SCENARIOS / f"{name}.yaml").with_overrides(SHORT)
        _RUNS[name] = simulate(sc, seed=1, engine="fluid" if name == "week" else "auto")
    return _RUNS[name]


def _approx_numbers(text: str) -> set[str]:
    """Every ``≈ N req/s`` a text states."""
    return set(re.findall(r"≈ ([\d.]+) req/s", text))


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
def test_report_summary_and_findings_state_the_same_ceilings(name):
    result = run(name)
    sc, summary = result.scenario, result.summary
    # The summary carries the one computation, and survives summary.json's round trip.
    assert summary["ceilings"] == C.to_summary(sc)
    assert json.loads(json.dumps(summary["ceilings"])) == summary["ceilings"]
    cs = C.from_summary(summary)
    assert cs and [c.rps for c in cs] == sorted(c.rps for c in cs)
    allowed = {f"{c.rps:.0f}" if c.rps >= 10 else f"{c.rps:.3g}" for c in cs}
    md = render_markdown(result)
    said = _approx_numbers(md)
    assert said and said <= allowed, (said - allowed, allowed)
    for f in findings.findings(sc, summary, result.series, alert_frame(result)):
        assert _approx_numbers(f.text) <= allowed, f.key
    # The heading names the lowest ceiling on the requests path (the jobs path when none), with its number.
    top = C.binding(cs, "requests") or C.binding(cs, "jobs")
    heading = f"Binding constraint: {top.name} at ≈ {top.rps:.0f} req/s"
    assert md.splitlines()[4] == f"## {heading}"
    assert f"<h2>{heading.replace('`', '')}" in re.sub(r"</?code>", "", render_html(result))


def test_peak_report_second_block_is_the_binding_constraint_with_what_lifts_it():
    result = run("peak")
    blocks = build_blocks(result)
    assert blocks[0][0] == "h" and blocks[1][0] == "p" and blocks[1][1].startswith("**Targets MISSED")
    assert blocks[2] == ("h", 2, "Binding constraint: the `neo4j` server at ≈ 392 req/s")
    text = blocks[3][1]
    # 8 cores / (16 × 6 ms × 0.2 + ...) = 20.40 ms of queries per request → 392 req/s; 900 × 20.40 ms = 18.4 cores.
    assert "**The `neo4j` server at 8 cores caps throughput at ≈ 392 req/s**" in text
    assert "The target, 900 req/s, needs ≈ 19 cores (now 8 cores): raise `datastores.neo4j.cores`." in text
    neo = next(c for c in C.from_summary(result.summary) if c.name == "the `neo4j` server")
    assert C.needed(neo, 900) == 19 and neo.amount / neo.rps == pytest.approx(0.0204)
    jobs = blocks[4][1]
    assert "**Background jobs keep up only below ≈ 111 req/s**, set by the `llm` rate limit at 1000 calls/min" in jobs
    assert "needs ≈ 8100 calls/min" in jobs  # 900 req/s × 0.15 LLM calls per request × 60 s
    # The two ceilings of the job path are one story: the workers' own, and the lower one that binds.
    first = blocks[5][1]
    assert "≈ 613 req/s, but background jobs are capped lower, at ≈ 111 req/s by the `llm` rate limit" in first
    md = render_markdown(result)
    assert "`worker` workers" not in md


def test_peak_headline_says_the_worker_never_ran_and_no_finding_speaks_for_it():
    result = run("peak")
    ready = C.ready_fraction(result.summary, "worker")
    assert ready is not None and ready < C.NEVER_RAN  # 100 jobs × 64 Mi on a 2 Gi limit: OOMKilled on start
    line = verdict(result)
    assert f"**`worker` never ran**: its pods were Ready {percent(ready)} of the time" in line
    found = {f.key: f for f in findings.findings(result.scenario, result.summary, result.series, alert_frame(result))}
    assert "`worker` pod runs" not in found["single_process_cpu"].text
    assert "Each `api` pod runs 1 server process(es)" in found["single_process_cpu"].text
    assert "oom_kills" in found  # the cause of it still speaks


def test_alerts_carry_the_names_the_manifests_deploy():
    result = simulate(tiny())
    deployed = set(findings.deployed_alerts(result.scenario))
    # The rules evaluated on the series are the PrometheusRule's, by name.
    assert {r.name for r in memstack_rules()} - {"MemStackWorkerNotReady", "MemStackWorkerQueueFull"} <= deployed
    assert "MemStackAPIHighLatency" in deployed and "HighLatency" not in deployed
    result.summary["alerts"] = [{"name": "HighLatency", "alert": "MemStackAPIHighLatency", "severity": "warning",
                                 "pending_since_s": 215.0, "start_s": 815.0, "end_s": None}]  # fmt: skip
    rows = next(b for b in build_blocks(result) if b[0] == "table" and b[1][0] == "alert")[2]
    assert rows == [["MemStackAPIHighLatency", "warning", "3.6 min", "13.6 min", "still firing at the end"]]
    assert findings.deployed_alert(result.scenario, "APINotReady") == "MemStackAPINotReady"
    assert "so MemStackAPINotReady would fire" in render_markdown(result)


def test_units_are_human():
    assert (seconds(0.85), seconds(1.0), seconds(10.25)) == ("850 ms", "1 s", "10.2 s")
    assert (percent(1.475e-05), percent(0.0), percent(0.3392), percent(0.01)) == ("0.0015 %", "0 %", "33.9 %", "1 %")
    assert (rps(900.0), rps(389.72)) == ("900 req/s", "389.7 req/s")
    assert margin("max", 10.25, 1.0) == "10.2× the limit"
    assert margin("max", 1.25, 1.0) == "25 % over"
    assert margin("min", 389.7, 900.0) == "56.7 % short"
    assert margin("max", 0.0, 0.01) == ""


def test_verdict_writes_latency_in_one_unit_per_magnitude():
    result = simulate(tiny(**{"targets": {"latency_p99": {"max": "10ms"}}}))
    p99 = result.summary["requests"]["latency_s"]["p99"]
    line = verdict(result)
    assert f"latency_p99 {seconds(p99)} vs ≤ 10 ms (MISSED, " in line
    assert f"{p99 / 0.010:.1f}× the limit" in line or f"{percent(p99 / 0.010 - 1)} over" in line


def test_binding_constraint_within_the_target_says_the_headroom():
    # One pod, 20 ms of CPU per request: 50 req/s; the open load peaks at 20 req/s.
    sc = tiny(**{"workload.requests": [{"name": "r", "weight": 1, "steps": [{"cpu": {"dist": "constant", "mean": "20ms"}}]}],
                 "deployments.api.replicas": 1, "targets": {}})  # fmt: skip
    cs = C.ceilings(sc)
    assert cs[0].tier == "api_cpu" and cs[0].rps == pytest.approx(50.0)
    assert bottleneck.target_load(sc) == (20.0, "the peak arrival rate")
    summary = {"ceilings": C.to_summary(sc), "requests": {"throughput_rps": 20.0}}
    text = bottleneck.binding_text(sc, summary, pd.DataFrame())[0]
    assert "The peak arrival rate, 20 req/s, is within it (150% headroom)." in text
    # ...and a load above it says how many pods it needs: 120 req/s × 20 ms = 2.4 cores → 3 pods.
    assert C.needed(cs[0], 120.0) == 3


def test_latency_during_scale_up_is_put_on_the_saturated_datastore():
    """Requests queue behind a saturated server while the API scales: the finding names the queue,
    not the scale-up, and proposes no more pods."""
    sc = _ramp_behind_postgres()
    result = simulate(sc)
    found = {f.key: f for f in findings.findings(result.scenario, result.summary, result.series)}
    util = result.series["postgres/utilization"]
    assert float(util.max()) >= 0.9
    assert "scale_up_lag" not in found, found.get("scale_up_lag")
    f = found["queued_not_scale_up"]
    assert f.title == "Latency from the `postgres` queue, not from scale-up"
    assert "requests queued behind `postgres`, not behind missing `api` pods" in f.text
    assert "minReplicas)" not in f.text and "behavior.scaleUp" not in f.text
    assert "`postgres` was ≥ 90 % busy" in found["datastore_saturation"].text


def _ramp_behind_postgres():
    """A ramp the HPA follows slowly, with every request waiting on a one-core PostgreSQL (30 ms a query)."""
    hpa = {"minReplicas": 1, "maxReplicas": 10,
           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                   "averageUtilization": 50}}}],
           "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0,
                                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}  # fmt: skip
    return tiny(**{
        "duration": "4m",
        "workload.arrivals": {"profile": [{"at": 0, "rps": 10}, {"at": "40s", "rps": 45}, {"at": "4m", "rps": 45}]},
        "workload.requests": [{"name": "r", "weight": 1, "memory": "1Mi", "steps": [
            {"cpu": {"dist": "exponential", "mean": "16ms"}},
            {"call": "postgres", "time": {"dist": "exponential", "mean": "30ms"}}]}],
        "datastores": {"postgres": {"kind": "postgresql", "cores": 1, "max_connections": 100,
                                    "pool": {"pool_size": 20, "max_overflow": 0, "pool_timeout": "30s"}}},
        "deployments.api.replicas": 1, "deployments.api.image_pull": "20s", "deployments.api.startup": "20s",
        "deployments.api.hpa": hpa,
    })  # fmt: skip


def test_connection_peak_briefer_than_the_samples_is_said_so():
    sc = _ramp_behind_postgres()
    budget = {"limit": 97, "max_connections": 100, "superuser_reserved_connections": 3, "demand": 2220, "fits": False,
              "deployments": {"api": {"max_replicas": 20, "surge": 1, "pods_max": 21, "processes": 1,
                                      "per_process": 60, "connections": 1260}}}  # fmt: skip
    summary = {"datastores": {"postgres": {"connections_max": 97, "budget": budget}}}
    series = pd.DataFrame({"postgres/connections_open": [40.0, 81.0, 70.0]}, index=pd.Index([5.0, 10.0, 15.0]))
    text = findings.connection_budget(sc, summary, series).text
    assert "may open 2220 connections" in text  # the summary's budget, not a second figure
    assert "The run peaked at 97 open connections (a brief peak: the figure's samples, every 5 s, show at most 81)." in text
    series = pd.DataFrame({"postgres/connections_open": [40.0, 97.0]}, index=pd.Index([5.0, 10.0]))
    assert "brief peak" not in findings.connection_budget(sc, summary, series).text


def test_utilisation_axis_fits_the_data_and_legends_leave_the_markers_alone():
    result = run("peak")
    fig = plots.plot_utilisation(result)
    api_cpu = fig.axes[0]
    data_max = 100 * float(result.series["api/cpu_utilization"].max())
    top = api_cpu.get_ylim()[1]
    assert top < 200 and top >= data_max  # limit 400 %, usable max 200 %: named, off the axis
    labels = [line.get_label() for line in api_cpu.get_lines()]
    assert "limit = 400% ↑ off axis" in labels
    fig.canvas.draw()
    for f in (fig, plots.plot_replicas(result)):
        f.canvas.draw()
        for ax in f.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box, panel = legend.get_window_extent(), ax.get_window_extent()
            assert box.x0 >= panel.x1 - 1, "the legend overlaps the panel"
    assert np.isfinite(top)
