"""report.md content: the verdict line first, findings triggered by scenarios built to trigger them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_scenarios import scenario

from memstack_capacity import load_scenario, simulate
from memstack_capacity.components.datastores.budget import connection_budget
from memstack_capacity.outputs import findings as F
from memstack_capacity.outputs.report import mean_ci, render_markdown, t_quantile_975, verdict
from memstack_capacity.results.replications import mean_ci95
from memstack_capacity.results.summary import with_budgets

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

RES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


def _res(cpu_limit="1", mem_limit="2Gi"):
    return {"requests": RES["requests"], "limits": {"cpu": cpu_limit, "memory": mem_limit}}


@pytest.fixture(scope="module")
def healthy():
    return simulate(scenario())


def keys(result):
    return {f.key for f in F.findings(result.scenario, result.summary, result.series)}


def test_verdict_met_comes_first(healthy):
    md = render_markdown(healthy)
    first = md.splitlines()[2]
    assert first.startswith("**Targets met**")
    assert "latency_p99" in first and "% of the limit" in first


def test_verdict_missed_says_by_how_much():
    result = simulate(scenario(**{"targets": {"latency_p99": {"max": "10ms"}}}))
    line = verdict(result)
    assert line.startswith("**Targets MISSED (1 of 1)**")
    assert ("× the limit" in line or "% over" in line) and "MISSED" in line


def test_no_findings_on_a_healthy_run(healthy):
    assert keys(healthy) == set()
    assert "no rule fired" in render_markdown(healthy)


def test_single_process_cpu_triggers_only_when_limit_exceeds_processes(healthy):
    result = simulate(scenario(**{"deployments.api.resources": _res("2")}))
    assert "single_process_cpu" in keys(result)
    text = render_markdown(result)
    assert "at most 1 core(s) of its 2-core limit" in text
    assert "single_process_cpu" not in keys(healthy)


def test_oom_kills_finding():
    result = simulate(scenario(**{"deployments.api.resources": _res("1", "600Mi"),
                                  "workload.arrivals.profile": [{"at": 0, "rps": 120}]}))
    assert result.summary["deployments"]["api"]["oom_kills"] > 0
    assert "oom_kills" in keys(result)
    assert "OOMKilled" in render_markdown(result)


def test_throttling_finding():
    result = simulate(scenario(**{"deployments.api.processes": 2, "deployments.api.resources": _res("500m"),
                                  "workload.arrivals.profile": [{"at": 0, "rps": 60}]}))
    assert "throttling" in keys(result)


def test_connection_budget_reads_the_summary():
    """The finding states the summary's budget: (maxReplicas + maxSurge) pods × processes × (pool_size + max_overflow)."""
    stores = {"postgres": {"kind": "postgresql", "max_connections": 100,
                           "pool": {"pool_size": 20, "max_overflow": 40}}}
    steps = [{"call": "postgres", "time": {"dist": "exponential", "mean": "1ms"}}, {"cpu": {"dist": "exponential", "mean": "5ms"}}]
    big = scenario(datastores=stores, **{"workload.requests": [{"name": "q", "weight": 1, "steps": steps}]})
    summary = {"datastores": with_budgets({"postgres": {"connections_max": 7}}, big)}
    assert summary["datastores"]["postgres"]["budget"]["demand"] == (2 + 1) * 60  # 2 replicas, surge ceil(25 % of 2)
    found = F.connection_budget(big, summary, pd.DataFrame())
    assert found is not None and "180 connections" in found.text and "the 97 it accepts" in found.text
    assert "api: (2 + 1 surge) pods × 1 process(es) × 60 = 180" in found.text and "peaked at 7" in found.text
    assert F.connection_budget(big, {}, pd.DataFrame()) is None  # no budget in the summary: nothing figured here
    small_pool = dict(stores, postgres=dict(stores["postgres"], pool={"pool_size": 5, "max_overflow": 5}))
    small = scenario(datastores=small_pool, **{"workload.requests": [{"name": "q", "weight": 1, "steps": steps}]})
    summary = {"datastores": with_budgets({"postgres": {}}, small)}
    assert F.connection_budget(small, summary, pd.DataFrame()) is None


def test_connection_budget_finding_and_report_say_the_summarys_figure():
    """small.yaml: 2 replicas + 1 surge pod × 1 process × (5 + 10) = 45 connections (not 2 × 15 = 30)."""
    sc = load_scenario(SCENARIOS / "small.yaml").with_overrides({"datastores.postgres.max_connections": 40})
    result = simulate(sc)
    budget = result.summary["datastores"]["postgres"]["budget"]
    assert budget["demand"] == 45 and budget["deployments"]["api"]["pods_max"] == 3 and not budget["fits"]
    found = {f.key: f for f in F.findings(result.scenario, result.summary, result.series)}["connection_budget"]
    assert "may open 45 connections" in found.text and "the 37 it accepts" in found.text
    assert "may open 45 connections" in render_markdown(result)


def test_every_engine_puts_the_budget_in_the_summary():
    sc = load_scenario(SCENARIOS / "small.yaml")
    fluid = simulate(sc, mode="fluid").summary["datastores"]["postgres"]["budget"]
    assert fluid == connection_budget(sc)["postgres"] and fluid["demand"] == 45


def _lagging_series(catch_up_s: float) -> pd.DataFrame:
    t = np.arange(5.0, 605.0, 5.0)
    util = np.where(t < 100, 0.5, 1.5)
    desired = np.where(t < 110, 2, 6)
    ready = np.where(t < 110 + catch_up_s, 2, 6)
    errors = np.where((t >= 100) & (t < 110 + catch_up_s), 4.0, 0.0)
    return pd.DataFrame({"api/cpu_utilization": util, "api/replicas_desired": desired, "api/pods_ready": ready,
                         "ingress/errors_503_rps": errors}, index=pd.Index(t, name="t_s"))


def test_scale_up_lag_finding():
    hpa = {"minReplicas": 2, "maxReplicas": 6,
           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    sc = scenario(**{"deployments.api.hpa": hpa})
    slow = F.scale_up_lag(sc, {}, _lagging_series(180))
    assert slow is not None and "190 s later" in slow.text and "740 requests failed" in slow.text
    assert F.scale_up_lag(sc, {}, _lagging_series(10)) is None


def test_restarts_finding_counts_only_non_oom_restarts(healthy):
    summary = {"deployments": {"api": {"restarts": 5, "oom_kills": 2}}}
    found = F.restarts(healthy.scenario, summary, healthy.series)
    assert found is not None and "3 time(s)" in found.text
    assert F.restarts(healthy.scenario, {"deployments": {"api": {"restarts": 2, "oom_kills": 2}}}, healthy.series) is None


def test_alert_threshold_finding_on_error_ratio_disagreement(healthy):
    from memstack_capacity.results.alert_series import alert_frame

    frame = alert_frame(healthy)
    series = healthy.series.copy()
    series["ingress/error_rate"] = 0.002  # 0.2 % of requests fail...
    frame = frame.assign(api_5xx_rps=0.5)  # ...yet above the absolute 0.05/s
    found = F.alert_thresholds(healthy.scenario, {}, series, frame)
    assert found is not None and "pages on a healthy system" in found.text
    assert F.alert_thresholds(healthy.scenario, {}, healthy.series, alert_frame(healthy)) is None


def test_replications_give_t_intervals():
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3) and t_quantile_975(1000) == pytest.approx(1.96, abs=0.01)
    mean, half = mean_ci([1.0, 2.0, None, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302652730 * 1.0 / np.sqrt(3), rel=1e-9)
    # the report's ± is summary.json's interval (up to the rounding of mean + half - mean)
    assert half == pytest.approx(mean_ci95([1.0, 2.0, 3.0])[1][1] - 2.0, rel=1e-14)
    results = [simulate(scenario(), seed=s) for s in (1, 2, 3)]
    md = render_markdown(results)
    assert "95 % CI" in md and "± " in md and "met in 3/3 runs" in md


def test_max_pods_is_one_figure_for_the_budget_the_ceilings_and_the_capacity_table():
    """A deployment that starts above its HPA's maxReplicas runs that many pods at first: every reader says so."""
    from memstack_capacity.outputs.bottleneck import ceilings

    hpa = {"minReplicas": 1, "maxReplicas": 3,
           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    sc = scenario(**{"deployments.api.replicas": 5, "deployments.api.hpa": hpa})
    assert sc.deployments["api"].max_replicas == 5
    assert scenario(**{"deployments.api.hpa": hpa}).deployments["api"].max_replicas == 3
    api_cpu = next(c for c in ceilings(sc) if c.tier == "api_cpu")
    assert api_cpu.how.startswith("5 pods × 1 usable core(s)")
