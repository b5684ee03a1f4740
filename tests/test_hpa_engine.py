"""The HPA controller inside the engine: a hand-derived trajectory and properties.

Trajectory (hpa-spec.md §3, §7, §9): 3 pods, each fed 80 req/s × 10 ms = 0.8 cores, i.e. 160 %
of a 500m request; target 70 %; scale-up policies Percent 100/30 s and Pods 2/60 s, Max.
metrics-server scrapes at 0, 15, 30 … s; the controller syncs at 1, 16, 31 … s.

- t=1: one scrape only, no CPU rate yet → metric invalid → stay at 3.
- t=16: 160 % → ceil(160/70 × 3) = 7; the Percent policy allows 3 × 2 = 6, Pods 3 + 2 = 5,
  Max → 6 (ScaleUpLimit). New pods: scheduled at 16, image pull 5 s → started 21, app up
  at 29, first readiness probe at 31 → Ready ≈ 31.0005, in the endpoints 1 s later.
- t=31: new pods have one scrape (at 30) → missing → counted as 0 on a scale-up:
  80/70 = 1.14 → 7, but the Percent policy's period start is 6 − 3 = 3 → limit 6.
- t=46: the new pods' sample (taken at 45) is older than Ready + window (46.0005) within the
  CPU initialisation period → unready → 0 → the ratio flips below 1 → keep 6.
- t=61: six pods at 0.4 cores = 80 % → ceil(1.143 × 6) = 7 (policies allow 12).
- t≥76: seven pods at 0.343 cores = 68 % → within tolerance → stay at 7.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstack_capacity import simulate
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import assert_conservation, pod_scenario

REAL_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}, {"type": "Pods", "value": 2, "periodSeconds": 60}],
}
REAL_SCALE_DOWN = {"stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}


def autoscaled(rate: float, *, duration: float = 150.0, min_replicas=3, max_replicas=20, cv=1.0, service="exponential"):
    """An autoscaled API; the control loops aligned (scrapes at 0, 15 …, syncs 1 s later) as the
    hand-derived timelines assume."""
    data = pod_scenario(rate, 0.01, replicas=min_replicas, duration=duration, warmup=0.0, service_dist=service)
    data["cluster"] = {"control_loops": "aligned"}
    data["workload"]["arrivals"]["cv"] = cv
    api = data["deployments"]["api"]
    api["resources"]["limits"]["cpu"] = 2
    api["image_pull"] = 5
    api["startup"] = 8
    api["readinessProbe"] = {"initialDelaySeconds": 10, "periodSeconds": 5}
    api["hpa"] = {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        "behavior": {"scaleUp": REAL_SCALE_UP, "scaleDown": REAL_SCALE_DOWN},
    }
    return data


def test_hand_derived_scale_up_trajectory():
    result = simulate(parse_scenario(autoscaled(240.0, cv=0.001, service="constant")))
    scaling = result.scaling.set_index("t_s")
    desired = scaling["desired_replicas"].to_dict()
    assert [desired[t] for t in (1.0, 16.0, 31.0, 46.0, 61.0, 76.0, 91.0, 106.0)] == [3, 6, 6, 6, 7, 7, 7, 7]
    assert scaling.loc[16.0, "proposal"] == 7
    assert scaling.loc[16.0, "limited_reason"] == "ScaleUpLimit"
    assert scaling.loc[16.0, "cpu_utilization_pct"] in (159, 160)
    assert 79 <= scaling.loc[61.0, "cpu_utilization_pct"] <= 80
    ready = result.pods.query("event == 'Ready'")
    assert np.allclose(ready.t_s.iloc[:3], 31.0005)
    assert_conservation(result)


def test_no_pod_receives_traffic_before_it_is_ready():
    result = simulate(parse_scenario(autoscaled(240.0)))
    pods = result.pods
    ready_at = pods.query("event == 'Ready'").groupby("pod").t_s.min()
    names = {f"api-{i}": i for i in range(50)}
    reqs = result.requests
    for pod, t in ready_at.items():
        first = reqs.loc[reqs.pod == names[pod], "t_arrival_s"].min()
        assert first >= t, (pod, first, t)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(20, 300),
    min_replicas=st.integers(1, 3),
    extra=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_replicas_stay_within_bounds_and_scale_down_respects_policy(rate, min_replicas, extra, seed):
    data = autoscaled(rate, duration=300.0, min_replicas=min_replicas, max_replicas=min_replicas + extra)
    data["workload"]["arrivals"]["profile"] = [{"at": 0, "rps": rate}, {"at": 120, "rps": rate}, {"at": 130, "rps": 1}]
    data["deployments"]["api"]["hpa"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = 0
    result = simulate(parse_scenario(data), seed=seed)
    assert_conservation(result)
    scaling = result.scaling
    assert scaling.desired_replicas.between(min_replicas, min_replicas + extra).all()
    # Scale-down: Percent 50 per 60 s — within any 60 s, replicas never fall below half of where they started.
    t = scaling.t_s.to_numpy()
    d = scaling.desired_replicas.to_numpy()
    for i in range(len(t)):
        window = (t > t[i] - 60.0) & (t <= t[i])
        start = d[np.argmax(window)] if window.any() else d[i]
        before = d[max(0, np.argmax(window) - 1)]
        assert d[i] >= int(max(start, before) * 0.5) or d[i] >= min_replicas and d[i] == min_replicas
