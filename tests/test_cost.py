"""The cost model (results/cost.py, scenario/cost.py): summary.json's ``cost`` block checked by hand.

References: OpenCost's allocation rule, a workload pays ``max(request, usage) × price`` (the
OpenCost specification, "Workload Costs", spec/opencost-specv01.md), and OpenCost's default
prices, ``CPU`` 0.031611 USD per vCPU-hour and ``RAM`` 0.004237 USD per GiB-hour
(configs/default.json, "Default prices based on GCP us-central1"). Every expected figure below
is written out from the scenario: replicas × requests × price × hours, node counts × hours,
cores and memory × the rates. Amounts are exact up to floating point (rel 1e-9) where the run
fixes them; usage above requests, a random quantity, is checked against its own series exactly
and against the load's mean (λ·E[S] cores) within a stated tolerance.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from memstack_capacity import simulate
from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.report import render_markdown
from memstack_capacity.results.replications import combine_summaries
from memstack_capacity.scenario.load import load_scenario, parse_scenario
from tests.factory import pod_scenario

SMALL = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"
CPU, RAM = 0.031611, 0.004237  # OpenCost configs/default.json: USD per vCPU-hour, per GiB-hour
MIB, GIB, HOUR = 2**20, 2**30, 3600.0
EXACT = 1e-9


def fixed(replicas=3, duration=600.0, rate=20.0, **cost) -> dict:
    """`replicas` fixed pods of 500m / 512Mi under a light load (0.2 cores in all: never above requests)."""
    data = pod_scenario(rate, 0.01, replicas=replicas, duration=duration, warmup=60.0)
    if cost:
        data["cost"] = cost
    return data


@pytest.mark.parametrize("engine", ["kernel", "hybrid", "des", "fluid"])
def test_fixed_replicas_cost_replicas_times_requests_times_price_times_hours(engine):
    result = simulate(parse_scenario(fixed()), seed=1, engine=engine)
    cost = result.summary["cost"]
    api = cost["deployments"]["api"]
    assert api["cpu_above_requests_core_seconds"] == 0 and api["memory_above_requests_byte_seconds"] == 0
    assert api["cpu_core_seconds"] == pytest.approx(3 * 0.5 * 600, rel=EXACT)
    assert api["memory_byte_seconds"] == pytest.approx(3 * 512 * MIB * 600, rel=EXACT)
    expected = 3 * 0.5 * (600 / HOUR) * CPU + 3 * 0.5 * (600 / HOUR) * RAM  # 512Mi is half a GiB
    assert api["cost"] == pytest.approx(expected, rel=EXACT)
    assert cost["basis"] == "requests" and cost["currency"] == "USD"
    assert cost["total"] == pytest.approx(expected, rel=EXACT)  # no datastore
    assert cost["per_month"] == pytest.approx(expected / (600 / HOUR) * 730, rel=EXACT)
    assert cost["hours_per_month"] == 730
    assert cost["prices"]["cpu_core_hour"] == CPU and cost["prices"]["memory_gib_hour"] == RAM
    assert cost["price_sources"] == {"cpu_core_hour": "default", "memory_gib_hour": "default", "node_hour": "derived"}


def test_scenario_prices_replace_the_defaults():
    result = simulate(parse_scenario(fixed(cpu_core_hour=0.05, memory_gib_hour=0.01, currency="EUR")), seed=1)
    cost = result.summary["cost"]
    assert cost["currency"] == "EUR"
    assert cost["price_sources"]["cpu_core_hour"] == cost["price_sources"]["memory_gib_hour"] == "scenario"
    assert cost["total"] == pytest.approx(3 * 0.5 * (600 / HOUR) * (0.05 + 0.01), rel=EXACT)
    half = simulate(parse_scenario(fixed(cpu_core_hour=0.05)), seed=1).summary["cost"]
    assert half["price_sources"]["cpu_core_hour"] == "scenario" and half["price_sources"]["memory_gib_hour"] == "default"
    assert half["total"] == pytest.approx(3 * 0.5 * (600 / HOUR) * (0.05 + RAM), rel=EXACT)


def hpa_scenario() -> dict:
    """One pod of 500m at 0.6 cores (utilisation 120 %) under an HPA aiming at 50 %: the first sync
    with metrics wants ceil(1 × 1.2 / 0.5) = 3 pods, then 0.2 cores a pod (40 %) keeps 3; scale-down
    waits 300 s of stabilisation, longer than the run, so replicas only go up."""
    data = pod_scenario(60.0, 0.01, replicas=1, duration=300.0, warmup=30.0)
    data["deployments"]["api"]["hpa"] = {
        "minReplicas": 1, "maxReplicas": 4,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                      "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    return data


@pytest.mark.parametrize("engine", ["des", "hybrid"])
def test_hpa_pod_seconds_from_its_decisions(engine):
    """Pods are created when the HPA rescales: pod-seconds = 1 × T + Σ (new replicas × (T − t_rescale))."""
    result = simulate(parse_scenario(hpa_scenario()), seed=1, engine=engine)
    T = 300.0
    rescales = result.scaling[result.scaling["rescaled"].astype(bool)]
    assert len(rescales) >= 1 and (rescales["desired_replicas"].diff().dropna() > 0).all()
    previous, derived = 1, T
    for t, desired in zip(rescales["t_s"], rescales["desired_replicas"]):
        derived += (int(desired) - previous) * (T - float(t))
        previous = int(desired)
    api = result.summary["cost"]["deployments"]["api"]
    assert result.summary["deployments"]["api"]["pod_seconds"] == pytest.approx(derived, rel=EXACT)
    assert api["cpu_core_seconds"] - api["cpu_above_requests_core_seconds"] == pytest.approx(0.5 * derived, rel=EXACT)
    assert api["memory_byte_seconds"] == pytest.approx(512 * MIB * derived, rel=EXACT)  # no memory above requests
    # before the rescale one pod used 0.6 cores against 0.5 requested: OpenCost counts the usage
    assert api["cpu_above_requests_core_seconds"] > 0


def above_requests() -> dict:
    """One pod requesting 500m and 512Mi, two processes, at λ·E[S] = 150 × 8 ms = 1.2 cores, and a
    600Mi working set with nothing in flight (memory_base): usage is above both requests."""
    data = pod_scenario(150.0, 0.008, processes=2, replicas=1, duration=300.0, warmup=30.0)
    data["deployments"]["api"]["memory_base"] = "600Mi"
    return data


@pytest.mark.parametrize("engine", ["kernel", "des"])
def test_usage_above_requests_is_what_is_counted(engine):
    result = simulate(parse_scenario(above_requests()), seed=1, engine=engine)
    api = result.summary["cost"]["deployments"]["api"]
    series, dt, T = result.series, 5.0, 300.0
    # from the series, independently: the one pod runs throughout, so its requests are 0.5 cores at every sample
    expected_cpu = float(np.maximum(series["api/cpu_cores"] - 0.5, 0.0).sum() * dt)
    assert api["cpu_above_requests_core_seconds"] == pytest.approx(expected_cpu, rel=EXACT)
    # and from the load: the mean usage is 1.2 cores, so about 0.7 cores above for T; the sampled mean of
    # 45 000 exponential demands has a relative s.d. of √(2/45000) ≈ 0.7 %, ≈ 1 % of the 0.7: 5 % is 5 s.d.
    assert api["cpu_above_requests_core_seconds"] == pytest.approx(0.7 * T, rel=0.05)
    # memory: 600Mi held against 512Mi at every sample, exactly (88Mi × T)
    assert api["memory_above_requests_byte_seconds"] == pytest.approx(88 * MIB * T, rel=EXACT)
    billed = 0.5 * T + api["cpu_above_requests_core_seconds"]
    assert api["cpu_core_seconds"] == pytest.approx(billed, rel=EXACT)
    assert api["cpu_cost"] == pytest.approx(billed / HOUR * CPU, rel=EXACT)
    assert api["memory_cost"] == pytest.approx(600 * MIB * T / GIB / HOUR * RAM, rel=EXACT)


def test_usage_above_requests_in_the_flow_model():
    """The flow model's usage is the mean itself (λ·E[S] = 1.2 cores at every step): 0.7 cores above for T."""
    api = simulate(parse_scenario(above_requests()), seed=1, engine="fluid").summary["cost"]["deployments"]["api"]
    assert api["cpu_above_requests_core_seconds"] == pytest.approx(0.7 * 300.0, rel=0.01)


def test_node_pricing_with_a_known_node_count():
    data = fixed(node_hour=0.5)
    data["cluster"] = {"nodes": 3, "node": {"cpu": 4, "memory": "16Gi"}}
    cost = simulate(parse_scenario(data), seed=1).summary["cost"]
    assert cost["basis"] == "nodes"
    assert cost["nodes"] == {"cost": pytest.approx(3 * 600 / HOUR * 0.5, rel=EXACT), "node_seconds": 1800.0,
                             "count_start": 3, "count_max": 3, "added": 0}
    assert cost["compute"] == cost["total"] == pytest.approx(0.25, rel=EXACT)
    assert cost["price_sources"]["node_hour"] == "scenario"
    # without a node price the node costs its cores and memory at the rates (OpenCost's custom pricing of a node)
    data["cost"] = {"basis": "nodes"}
    derived = simulate(parse_scenario(data), seed=1).summary["cost"]
    assert derived["prices"]["node_hour"] == pytest.approx(4 * CPU + 16 * RAM, rel=EXACT)
    assert derived["total"] == pytest.approx(3 * 600 / HOUR * (4 * CPU + 16 * RAM), rel=EXACT)


def autoscaled() -> dict:
    """1 node of 8 cores holds 2 pods of 3 cores; at 25 s the API goes to 5 replicas, 3 Pending; the
    autoscaler's scan at 30 s asks for 2 nodes (two 3-core pods per node), Ready at 90 s (tests/test_cluster.py)."""
    data = pod_scenario(10.0, 0.01, replicas=2, duration=200.0, warmup=0.0)
    data["deployments"]["api"]["resources"] = {"requests": {"cpu": 3, "memory": "1Gi"},
                                               "limits": {"cpu": 3, "memory": "4Gi"}}
    data["cluster"] = {"nodes": 1, "node": {"cpu": 8, "memory": "32Gi"},
                       "node_autoscaler": {"max_nodes": 3, "provisioning_delay": "60s"}}
    data["events"] = [{"at": 25, "config_change": {"deployments.api.replicas": 5}}]
    data["cost"] = {"node_hour": 0.4}
    return data


def test_node_autoscaler_nodes_are_paid_from_when_they_were_asked_for():
    result = simulate(parse_scenario(autoscaled()), seed=1)
    asked = [e.t_s for e in result.record.recorder.pod_events if e.event == "TriggeredScaleUp"]
    assert asked == [30.0] and result.record.nodes_requested_at == [30.0, 30.0]
    nodes = result.summary["cost"]["nodes"]
    node_seconds = 1 * 200 + 2 * (200 - 30)  # node-0 all along; node-1 and node-2 from the request at 30 s
    assert nodes["node_seconds"] == pytest.approx(node_seconds, rel=EXACT)
    assert (nodes["count_start"], nodes["count_max"], nodes["added"]) == (1, 3, 2)
    assert result.summary["cost"]["total"] == pytest.approx(node_seconds / HOUR * 0.4, rel=EXACT)
    # the pods: 2 all along, 3 from 25 s (Pending until 90 s: their requests stand from creation)
    api = result.summary["cost"]["deployments"]["api"]
    assert api["cpu_core_seconds"] == pytest.approx(3 * (2 * 200 + 3 * 175), rel=EXACT)


def test_the_flow_model_reports_the_nodes_it_added():
    data = autoscaled()
    data.pop("events")
    data["deployments"]["api"]["replicas"] = 5  # 3 pods Pending from the start
    result = simulate(parse_scenario(data), seed=1, engine="fluid")
    nodes, asked = result.summary["cost"]["nodes"], result.record.nodes_requested_at
    assert nodes["added"] == len(asked) >= 1
    assert nodes["node_seconds"] == pytest.approx(200 + sum(200 - t for t in asked), rel=EXACT)


def with_datastores() -> dict:
    data = yaml.safe_load(SMALL.read_text(encoding="utf-8"))
    data["duration"], data["warmup"] = "60s", "10s"
    data["datastores"].update({
        "neo4j": {"kind": "neo4j", "cores": 8},
        "redis": {"kind": "redis", "maxmemory": "256Mi"},
        "embeddings": {"kind": "external", "latency": {"dist": "exponential", "mean": "100ms"}},
        "llm": {"kind": "external", "latency": {"dist": "exponential", "mean": "1s"}},
    })
    data["cost"] = {"datastores": {"postgres": {"memory": "16Gi"}, "neo4j": {"hourly": 1.2}, "llm": {"hourly": 0.5}}}
    return data


def test_datastore_servers_by_cores_and_memory_or_their_hourly_price():
    cost = simulate(parse_scenario(with_datastores()), seed=1).summary["cost"]
    hours = 60 / HOUR
    stores = cost["datastores"]
    assert set(stores) == {"postgres", "neo4j", "redis", "llm"}  # the embeddings API has no price: left out
    assert stores["postgres"]["hourly"] == pytest.approx(4 * CPU + 16 * RAM, rel=EXACT)
    assert stores["postgres"]["cost"] == pytest.approx((4 * CPU + 16 * RAM) * hours, rel=EXACT)
    assert stores["redis"]["hourly"] == pytest.approx(1 * CPU + 0.25 * RAM, rel=EXACT)  # one thread, maxmemory
    assert (stores["neo4j"]["cost"], stores["neo4j"]["price_source"]) == (pytest.approx(1.2 * hours), "scenario")
    assert stores["llm"]["cost"] == pytest.approx(0.5 * hours, rel=EXACT)
    api = cost["deployments"]["api"]["cost"]
    assert cost["total"] == pytest.approx(api + sum(s["cost"] for s in stores.values()), rel=EXACT)
    assert api == pytest.approx(2 * 0.5 * hours * (CPU + RAM), rel=EXACT)


def test_a_datastore_without_memory_prices_its_cores_only():
    data = with_datastores()
    data["cost"] = {}
    stores = simulate(parse_scenario(data), seed=1).summary["cost"]["datastores"]
    assert stores["postgres"]["memory_bytes"] is None
    assert stores["postgres"]["hourly"] == pytest.approx(4 * CPU, rel=EXACT)
    assert stores["neo4j"]["hourly"] == pytest.approx(8 * CPU, rel=EXACT)
    assert "llm" not in stores and "embeddings" not in stores


BAD = [
    ({"cpu_core_hour": -0.01}, "cost.cpu_core_hour", "must not be negative"),
    ({"node_hour": "cheap"}, "cost.node_hour", "must be a number"),
    ({"cpu_hour": 0.03}, "cost.cpu_hour", "allowed keys here"),
    ({"basis": "pods"}, "cost.basis", "'requests' or 'nodes'"),
    ({"currency": "EUR", "cpu_core_hour": 0.03}, "cost.memory_gib_hour", "required with currency EUR"),
    ({"datastores": {"mysql": {"hourly": 1}}}, "cost.datastores.mysql", "names no datastore"),
    ({"datastores": {"postgres": {"memory": "8Gi", "hourly": 1}}}, "cost.datastores.postgres", "not both"),
    ({"datastores": {"postgres": {"memory": "lots"}}}, "cost.datastores.postgres.memory", ""),
]


@pytest.mark.parametrize("block, field, words", BAD)
def test_bad_cost_input_names_the_field(block, field, words):
    data = yaml.safe_load(SMALL.read_text(encoding="utf-8"))
    data["cost"] = block
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, source="small.yaml")
    assert [p.field for p in err.value.problems] == [field]
    assert words in err.value.problems[0].message and f"small.yaml: {field}" in str(err.value)


def test_an_external_api_is_priced_by_the_hour_not_by_memory():
    data = with_datastores()
    data["cost"] = {"datastores": {"llm": {"memory": "1Gi"}}}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert [p.field for p in err.value.problems] == ["cost.datastores.llm.memory"]
    assert "hourly" in err.value.problems[0].message


def test_replications_average_the_amounts_and_keep_the_prices():
    scenario = parse_scenario(above_requests())
    runs = [simulate(scenario, seed=s, engine="kernel") for s in (1, 2, 3)]
    combined = combine_summaries([r.summary for r in runs], scenario.targets)["cost"]
    totals = [r.summary["cost"]["total"] for r in runs]
    assert combined["total"] == pytest.approx(sum(totals) / 3, rel=EXACT)
    lo, hi = combined["total_ci95"]
    assert lo < combined["total"] < hi
    assert combined["prices"] == runs[0].summary["cost"]["prices"]
    assert not any(key.endswith("_ci95") for key in combined["prices"]) and "hours_per_month_ci95" not in combined
    assert (combined["currency"], combined["basis"], combined["price_sources"]) == \
        ("USD", "requests", runs[0].summary["cost"]["price_sources"])


def test_the_cost_is_the_same_for_the_same_seed():
    scenario = parse_scenario(hpa_scenario())
    assert simulate(scenario, seed=4).summary["cost"] == simulate(scenario, seed=4).summary["cost"]


def test_report_and_console_show_the_cost():
    from memstack_capacity.cli.run import format_summary

    result = simulate(load_scenario(SMALL), seed=1)
    cost = result.summary["cost"]
    md = render_markdown(result)
    section = md[md.index("## Cost"):md.index("## Findings")]
    assert "0.031611 USD per core-hour (OpenCost's default)" in section
    assert f"{cost['per_month']:,.2f} USD" in section and "| `postgres` (postgresql) | 4 cores, memory not priced" in section
    assert "cost.datastores.postgres.memory" in section
    line = next(x for x in format_summary(result.summary).splitlines() if "cost:" in x)
    assert f"{cost['per_month']:,.2f} USD per month (730 h)" in line and "OpenCost's default prices" in line


def test_the_cost_block_leaves_every_other_figure_alone():
    """Adding prices changes the cost and nothing else of the run."""
    data = fixed()
    priced = copy.deepcopy(data)
    priced["cost"] = {"cpu_core_hour": 1.0, "node_hour": 2.0}
    a, b = (simulate(parse_scenario(d), seed=2).summary for d in (data, priced))
    assert {k: v for k, v in a.items() if k != "cost"} == {k: v for k, v in b.items() if k != "cost"}
    assert a["cost"] != b["cost"]
