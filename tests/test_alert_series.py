"""Alert evaluation on a run: the deployment's rules on a Result's series."""

from __future__ import annotations

import pytest
from report_scenarios import scenario

from memstack_capacity import simulate
from memstack_capacity.results.alert_series import ALERT_COLUMNS, alert_frame, attach_alerts


def test_no_alert_on_a_healthy_run():
    result = simulate(scenario())
    frame = alert_frame(result)
    assert list(frame.columns) == list(ALERT_COLUMNS)
    assert frame["api_5xx_rps"].max() == 0 and frame["api_targets_down"].max() == 0
    assert attach_alerts(result) == [] and result.summary["alerts"] == []


def test_high_latency_fires_after_its_for_duration():
    # Every request takes 1.2 s of CPU: p99 > 1 s from the first answer on, so the rule is
    # pending from the first evaluation with data and fires 10 min (its `for:`) later.
    slow = [{"name": "slow", "weight": 1, "steps": [{"cpu": {"dist": "constant", "mean": "1.2s"}}]}]
    result = simulate(scenario(duration="14m", **{"workload.requests": slow,
                                                 "workload.arrivals.profile": [{"at": 0, "rps": 0.5}]}))
    alerts = attach_alerts(result)
    high = [a for a in alerts if a["alert"] == "MemStackAPIHighLatency"]
    assert len(high) == 1
    a = high[0]
    assert a["name"] == "HighLatency" and a["end_s"] is None
    assert a["start_s"] - a["pending_since_s"] == pytest.approx(600.0)
    assert a["pending_since_s"] <= 40.0
    assert result.summary["alerts"] == alerts
