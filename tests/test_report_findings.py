"""Findings on real (small) simulated runs: each rule fires where it must, and not where it must not.

Every scenario here is built to trigger one finding (a few seconds of simulation each);
the arithmetic a finding states is checked against the scenario's own numbers.
"""

from __future__ import annotations

import copy

import pytest
from report_scenarios import BASE

from memstack_capacity.api.simulation import simulate
from memstack_capacity.outputs import bottleneck
from memstack_capacity.outputs.findings import findings, oom_memory
from memstack_capacity.results.alert_series import alert_frame
from memstack_capacity.scenario.load import parse_scenario

CPU = [{"cpu": {"dist": "exponential", "mean": "16ms"}}]


def _data(**changes):
    data = copy.deepcopy(BASE)
    data["workload"]["requests"] = [{"name": "req", "weight": 1, "memory": "1Mi", "steps": copy.deepcopy(CPU)}]
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def _found(data) -> dict:
    result = simulate(parse_scenario(data))
    return {f.key: f for f in findings(result.scenario, result.summary, result.series, alert_frame(result))}, result


def _hpa(max_replicas: int, target: int = 50, pods_per_min: int = 1) -> dict:
    return {"minReplicas": 1, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": target}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0,
                                     "policies": [{"type": "Pods", "value": pods_per_min, "periodSeconds": 60}]}}}


RAMP = {"profile": [{"at": 0, "rps": 10}, {"at": "40s", "rps": 90}, {"at": "4m", "rps": 90}]}


def _autoscaled(replicas: int, max_replicas: int, pods_per_min: int = 1) -> dict:
    data = _data(**{"duration": "4m", "workload.arrivals": copy.deepcopy(RAMP)})
    api = data["deployments"]["api"]
    api.update(replicas=replicas, image_pull="20s", startup="20s", hpa=_hpa(max_replicas, pods_per_min=pods_per_min))
    return data


# ------------------------------------------------------------------ scale-up lag


def test_scale_up_too_slow_fires_on_a_ramp_the_hpa_cannot_follow():
    found, result = _found(_autoscaled(replicas=1, max_replicas=10))
    assert "scale_up_lag" in found, sorted(found)
    text = found["scale_up_lag"].text
    assert "`api` fell behind the load" in text and "p99 exceeded 1 s" in text
    assert result.summary["deployments"]["api"]["replicas"]["max"] > 1  # the engine's HPA did scale


def test_scale_up_too_slow_stays_silent_with_enough_pods_from_the_start():
    found, result = _found(_autoscaled(replicas=6, max_replicas=10))
    assert "scale_up_lag" not in found
    assert result.summary["requests"]["latency_s"]["p99"] < 1.0


# --------------------------------------------------------------- at maxReplicas


def test_autoscaler_stuck_at_max_replicas():
    found, _ = _found(_autoscaled(replicas=1, max_replicas=2, pods_per_min=4))
    assert "at_max_replicas" in found, sorted(found)
    assert found["at_max_replicas"].title == "Autoscaler stuck at maxReplicas"
    assert "maxReplicas = 2" in found["at_max_replicas"].text and "cpu" in found["at_max_replicas"].text


def test_autoscaler_with_headroom_is_not_stuck():
    found, _ = _found(_autoscaled(replicas=6, max_replicas=10))
    assert "at_max_replicas" not in found


# ----------------------------------------------------------------- pending pods


def test_pods_stuck_pending_on_a_full_cluster():
    data = _data(**{"cluster": {"nodes": 1, "node": {"cpu": 2, "memory": "8Gi"}}, "duration": "2m"})
    data["deployments"]["api"]["replicas"] = 6  # 500m each: 4 fit on the 2-core node
    found, result = _found(data)
    assert "pending_pods" in found, sorted(found)
    assert found["pending_pods"].title == "Pods stuck Pending"
    assert "up to 2 pod(s) Pending" in found["pending_pods"].text


def test_no_pending_when_the_cluster_has_room():
    found, _ = _found(_data(**{"duration": "2m"}))
    assert "pending_pods" not in found


# ----------------------------------------------------------- datastore and pool


def _with_postgres(rps: float, cores: int = 1, pool_size: int = 2) -> dict:
    data = _data(**{"duration": "2m", "workload.arrivals": {"profile": [{"at": 0, "rps": rps}]}})
    data["workload"]["requests"][0]["steps"].insert(0, {"call": "postgres", "time": {"dist": "exponential",
                                                                                     "mean": "30ms"}})
    data["datastores"] = {"postgres": {"kind": "postgresql", "cores": cores, "max_connections": 100,
                                       "pool": {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": "2s"}}}
    return data


def test_datastore_saturated():
    found, result = _found(_with_postgres(rps=40, pool_size=20))  # 40/s × 30 ms = 1.2 cores of queries on 1 core
    assert "datastore_saturation" in found, sorted(found)
    assert found["datastore_saturation"].title == "Datastore or pool saturated"
    assert "`postgres` was ≥ 90 % busy" in found["datastore_saturation"].text
    # ...and the report names it as the tier that breaks first, with its utilisation-law ceiling.
    sentence = bottleneck.first_to_break(result.scenario, result.summary, result.series)
    assert "First to break: the `postgres`" in sentence and "1 cores / 30.00 ms" in sentence


def test_pool_saturated_before_the_server():
    # 2 pods × 1 connection against 80/s × 30 ms = 2.4 connections busy on a server with 8 cores.
    found, result = _found(_with_postgres(rps=80, cores=8, pool_size=1))
    assert "datastore_saturation" in found, sorted(found)
    text = found["datastore_saturation"].text
    assert "waited for a pooled `postgres` connection" in text and "failed on a pool timeout" in text
    assert "≥ 90 % busy" not in text
    sentence = bottleneck.first_to_break(result.scenario, result.summary, result.series)
    assert sentence.startswith("**First to break: the `postgres` connection pool**")


def test_datastore_with_headroom_is_not_saturated():
    found, result = _found(_with_postgres(rps=5, cores=4, pool_size=10))
    assert "datastore_saturation" not in found
    sentence = bottleneck.first_to_break(result.scenario, result.summary, result.series)
    # Nothing broke; the lowest ceiling is the API's CPU: 2 pods × 1 core / 16 ms = 125 req/s.
    assert sentence.startswith("**Nothing saturated in this run.**") and "the API's CPU at ≈ 125 req/s" in sentence


# ------------------------------------------------------------ worker jobs, OOM


def _with_worker(concurrency: int, limit: str, rps: float, job_cpu: str = "500ms") -> dict:
    data = _data(**{"duration": "2m", "workload.arrivals": {"profile": [{"at": 0, "rps": rps}]}})
    data["workload"]["requests"][0]["steps"].append({"enqueue": "episode"})
    data["workload"]["jobs"] = [{"name": "episode", "memory": "64Mi",
                                 "steps": [{"cpu": {"dist": "exponential", "mean": job_cpu}}]}]
    data["deployments"]["worker"] = {
        "consumes": ["episode"], "replicas": 1, "processes": 1, "concurrency": concurrency, "backlog": 0,
        "memory_base": "350Mi",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": limit}},
    }
    return data


def test_worker_backlog_growing():
    found, result = _found(_with_worker(concurrency=4, limit="2Gi", rps=10))  # 5 core-s/s of jobs on 1 core
    assert "job_backlog" in found, sorted(found)
    assert found["job_backlog"].title == "Worker backlog growing"
    assert "`worker` job backlog grew" in found["job_backlog"].text
    assert "oom_kills" not in found


def test_worker_backlog_in_a_flow_model_run_where_no_job_finished():
    """The flow model leaves jobs.completed None when no job finished; the finding says 0."""
    result = simulate(parse_scenario(_with_worker(concurrency=4, limit="2Gi", rps=10)), engine="fluid")
    summary = copy.deepcopy(result.summary)
    summary["jobs"]["completed"] = None  # what engine/fluid/report.py writes when no job finished
    found = {f.key: f for f in findings(result.scenario, summary, result.series)}
    assert "0 jobs completed in the measured window" in found["job_backlog"].text


def test_worker_keeping_up_has_no_backlog_finding():
    found, _ = _found(_with_worker(concurrency=4, limit="2Gi", rps=2, job_cpu="50ms"))
    assert "job_backlog" not in found


def test_oom_memory_per_deployment_kind():
    sc = parse_scenario(_with_worker(concurrency=40, limit="1Gi", rps=10))
    assert oom_memory(sc, "worker") == ("jobs", 40, 64 * 2**20)  # the job class's memory, the worker's slots
    assert oom_memory(sc, "api") == ("requests", 100, 1 * 2**20)


def test_worker_oomkill_uses_the_job_memory_and_the_worker_slots():
    found, result = _found(_with_worker(concurrency=40, limit="1Gi", rps=10))
    assert result.summary["deployments"]["worker"]["oom_kills"] > 0
    text = found["oom_kills"].text
    # 350 Mi + 1 × 40 × 64 Mi = 2910 Mi; 90 % of 1024 Mi leaves room for (921.6 - 350) / 64 = 8 jobs.
    assert "1 process(es) × 40 jobs in flight × 64 Mi = 2910 Mi against a 1024 Mi limit" in text
    assert "Cap concurrency at 8 per process" in text


# -------------------------------------------------------- HighCPUUsage vs guide


def test_high_cpu_usage_compares_cores_not_the_guides_percent():
    data = _data(**{"duration": "4m", "workload.arrivals": {"profile": [{"at": 0, "rps": 100}]}})
    api = data["deployments"]["api"]
    api.update(replicas=1, processes=2)
    api["resources"]["limits"]["cpu"] = "2"  # 100/s × 16 ms = 1.6 cores on a 2-core limit
    found, result = _found(data)
    assert "alert_thresholds" in found, sorted(found)
    text = found["alert_thresholds"].text
    assert "HighCPUUsage compares cores (> 0.8)" in text and "of the 2-core limit" in text
    peak = float(alert_frame(result)["cpu_cores_5m_max"].max())
    assert f"{peak:.2f} cores" in text


def test_high_cpu_usage_silent_when_the_limit_is_one_core():
    data = _data(**{"duration": "4m", "workload.arrivals": {"profile": [{"at": 0, "rps": 50}]}})
    data["deployments"]["api"]["replicas"] = 1  # 0.8 cores of limit 1: 0.8 cores *is* 80 %
    found, _ = _found(data)
    assert "HighCPUUsage" not in getattr(found.get("alert_thresholds"), "text", "")


@pytest.mark.parametrize("kind", ["requests", "jobs"])
def test_ceilings_follow_the_utilisation_law(kind):
    sc = parse_scenario(_with_worker(concurrency=4, limit="2Gi", rps=10))
    cs = {c.name: c for c in bottleneck.ceilings(sc)}
    if kind == "requests":
        api = cs["the API's CPU"]
        assert api.rps == pytest.approx(2 * 1 / 0.016) and api.path == "requests"
    else:
        workers = cs["the `worker` job slots"]  # 1 pod × 4 slots / (1 job × 0.5 s) per request
        assert workers.rps == pytest.approx(4 / 0.5) and workers.path == "jobs"


# ------------------------------------------------------ replications and capacity


def test_report_html_with_replications_shows_95_ci_on_the_headline_figures(tmp_path):
    import re

    from memstack_capacity.outputs.report_files import render_html, write_report

    sc = parse_scenario(_data(**{"duration": "1m"}))
    results = [simulate(sc, seed=s) for s in (1, 2, 3)]
    page = render_html(results)
    table = page[page.index("Headline figures"):page.index("The guide")]
    assert "<th>95 % CI</th>" in table and "95 % t-interval" in table
    for figure in ("throughput (OK answers)", "latency p50", "latency p99", "api replicas (mean)"):
        row = re.search(rf"<td>{re.escape(figure)}</td><td>[^<]+</td><td>([^<]*)</td>", table)
        assert row and row.group(1).startswith("± "), figure
    paths = write_report(results, tmp_path / "out")
    assert "<th>95 % CI</th>" in (tmp_path / "out" / "report.html").read_text() and paths


def test_capacity_on_a_closed_scenario_with_the_hpa():
    from memstack_capacity.api.capacity import find_capacity

    data = _data(**{"duration": "90s", "warmup": "10s"})
    del data["workload"]["arrivals"]
    data["workload"]["users"] = {"profile": [{"at": 0, "users": 10}], "think_time": {"dist": "exponential",
                                                                                    "mean": "200ms"}}
    data["deployments"]["api"].update(replicas=1, hpa=_hpa(3, target=60, pods_per_min=4))
    data["targets"] = {"latency_p99": {"max": "250ms"}}
    res = find_capacity(parse_scenario(data), rel_tol=0.25, max_multiplier=16)
    assert res.mode == "users" and res.found and res.hi is not None
    assert res.lo.load < res.hi.load and res.lo.passed and not res.hi.passed
    assert "users at peak" in res.describe()
