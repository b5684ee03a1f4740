"""The cluster: scheduling with room, the node autoscaler's timeline, cordons.

cluster-autoscaler (FAQ, "How does scale-up work?"; ``--scan-interval`` 10 s): a scan
finds pods unschedulable for lack of room, the estimator bin-packs them onto template
nodes, and the node group grows by that many, each node joining after it is provisioned.
"""

from __future__ import annotations

import pytest

from memstack_capacity import simulate
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import assert_conservation, pod_scenario


def tight(max_nodes=3, delay="60s"):
    data = pod_scenario(10.0, 0.01, replicas=2, duration=200.0, warmup=0.0)
    data["deployments"]["api"].update({"image_pull": 5, "startup": 8,
                                       "readinessProbe": {"initialDelaySeconds": 10, "periodSeconds": 5},
                                       "resources": {"requests": {"cpu": 3, "memory": "1Gi"},
                                                     "limits": {"cpu": 3, "memory": "4Gi"}}})
    data["cluster"] = {"nodes": 1, "node": {"cpu": 8, "memory": "32Gi"},
                       "node_autoscaler": {"max_nodes": max_nodes, "provisioning_delay": delay}}
    # at 25 s: 5 replicas of 3 cores on 8-core nodes → 2 fit on node-0, 3 are Pending
    data["events"] = [{"at": 25, "config_change": {"deployments.api.replicas": 5}}]
    return data


def test_node_autoscaler_timeline():
    """Pending at 25 s; the scan at 30 s packs 3 pods of 3 cores two per 8-core node → 2 nodes;
    Ready at 90 s (60 s provisioning); the pods are scheduled then, started at 95 s (image pull 5 s),
    Ready at 105.0005 s (readiness initialDelay 10 s)."""
    result = simulate(parse_scenario(tight()))
    assert_conservation(result)
    events = result.record.recorder.pod_events
    scale_ups = [e for e in events if e.event == "TriggeredScaleUp"]
    assert [(e.t_s, e.detail) for e in scale_ups] == [(30.0, "2 node(s) for 3 pending pod(s)")]
    ready_nodes = sorted((e.t_s, e.pod) for e in events if e.deployment == "cluster" and e.event == "NodeReady")
    assert ready_nodes == [(90.0, "node-1"), (90.0, "node-2")]
    late = [e for e in events if e.event == "Scheduled" and e.t_s > 25]
    assert len(late) == 3 and all(e.t_s == 90.0 for e in late)
    ready = sorted(e.t_s for e in events if e.event == "Ready" and e.deployment == "api" and e.t_s > 25)
    assert ready == pytest.approx([105.0005] * 3)


def test_node_autoscaler_stops_at_max_nodes():
    result = simulate(parse_scenario(tight(max_nodes=2)))
    events = result.record.recorder.pod_events
    assert [e.detail for e in events if e.event == "TriggeredScaleUp"] == ["1 node(s) for 3 pending pod(s)"]
    assert any(e.event == "NotTriggerScaleUp" for e in events)
    api_ready = [e for e in events if e.event == "Ready" and e.deployment == "api"]
    assert len(api_ready) == 2  # one pod is still Pending at the end: 2 nodes hold 4 of the 5
