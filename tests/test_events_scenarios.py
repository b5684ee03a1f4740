"""The bundled event scenarios (flash-crowd.yaml, node-loss.yaml), shortened, and what they produce."""

from __future__ import annotations

from pathlib import Path

from memstack_capacity import load_scenario, simulate
from tests.factory import assert_conservation

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_flash_crowd_scales_the_api_up_and_keeps_serving():
    # the first 4 minutes: 100 users, ×5 from 2m to 3m
    scenario = load_scenario(SCENARIOS / "flash-crowd.yaml").with_overrides({"duration": "4m30s", "warmup": "30s"})
    result = simulate(scenario)
    assert_conservation(result)
    req = result.requests
    t = req["t_arrival_s"]
    before = (t.between(60, 120, inclusive="left")).sum() / 60
    crowd = (t.between(210, 270, inclusive="left")).sum() / 60
    assert crowd > 3.5 * before  # ~100 → ~500 users, each about one request a second
    api = result.scaling[result.scaling.deployment == "api"].set_index("t_s")
    assert api.loc[:120, "desired_replicas"].max() == 3
    assert api.loc[150:, "desired_replicas"].max() >= 5  # the HPA reacts to the crowd
    assert api["desired_replicas"].between(3, 20).all()


def test_node_loss_errors_in_the_loss_window_then_recovery():
    # eviction toleration shortened to 60 s so the replacement comes within a short run
    scenario = load_scenario(SCENARIOS / "node-loss.yaml").with_overrides(
        {"duration": "5m", "warmup": "30s", "cluster.not_ready_toleration": "60s"})
    result = simulate(scenario)
    assert_conservation(result)
    req = result.requests
    lost = req[req["reason"] == "node_lost"]
    # in-flight work fails at 120 s; new requests to the lost pod fail until NotReady at 160 s
    assert len(lost) > 500 and lost["t_end_s"].between(120, 160.01).all()
    arrivals = req["t_arrival_s"].between(120, 160, inclusive="left").sum()
    assert 0.2 < len(lost) / arrivals < 0.45  # one API pod of three was on the node
    assert (req[req["t_arrival_s"] > 161]["status"] == "ok").mean() > 0.999
    events = result.record.recorder.pod_events
    evicted = [e for e in events if e.event == "TaintManagerEviction"]
    assert evicted and all(e.t_s == 220.0 for e in evicted)
    replacements = [e for e in events if e.deployment == "api" and e.event == "Ready" and e.t_s > 220]
    assert replacements and replacements[0].t_s < 260
    assert result.summary["deployments"]["api"]["replicas"]["min"] >= 2
