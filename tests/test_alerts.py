"""Prometheus alert semantics on hand-made series, and the deployment's seven rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memstack_capacity.results.alerts import AlertRule, evaluate_rule, evaluate_rules, memstack_rules
from memstack_capacity.results.promql import rate_window, window_quantile

ALL_COLUMNS = [
    "api_5xx_rps",
    "api_latency_p99_5m_s",
    "api_targets_down",
    "worker_targets_down",
    "worker_queue_fraction",
    "memory_limit_fraction_max",
    "cpu_cores_5m_max",
]


def _rule(for_s: float) -> AlertRule:
    return AlertRule("TestAlert", None, "warning", for_s, "g", "x > 0", "x > 0", ("x",),
                     lambda f: np.asarray(f["x"]) > 0)  # fmt: skip


def _series(true_ranges, end_s=900.0, step_s=30.0):
    """Condition sampled every step_s, true on each closed range [a, b] of times."""
    t = np.arange(0.0, end_s + step_s / 2, step_s)
    cond = np.zeros(t.size, dtype=bool)
    for a, b in true_ranges:
        cond |= (t >= a) & (t <= b)
    return t, cond


def test_fires_at_first_evaluation_at_or_after_pending_plus_for():
    t, cond = _series([(60, 900)])
    (ep,) = evaluate_rule(_rule(120), t, cond)
    assert ep == {"name": "TestAlert", "pending_since_s": 60.0, "start_s": 180.0, "end_s": None}


def test_for_not_a_multiple_of_the_interval_waits_for_the_next_evaluation():
    t, cond = _series([(60, 900)])
    (ep,) = evaluate_rule(_rule(100), t, cond)
    assert ep["start_s"] == 180.0  # 150 - 60 = 90 < 100; 180 - 60 = 120 >= 100


def test_never_fires_when_condition_clears_one_evaluation_early():
    t, cond = _series([(60, 150)])  # false at 180, the evaluation that would have fired
    assert evaluate_rule(_rule(120), t, cond) == []


def test_resolves_at_the_first_false_evaluation():
    t, cond = _series([(60, 300)])
    (ep,) = evaluate_rule(_rule(120), t, cond)
    assert (ep["start_s"], ep["end_s"]) == (180.0, 330.0)


def test_flapping_resets_the_pending_timer():
    t, cond = _series([(60, 150), (210, 900)])
    (ep,) = evaluate_rule(_rule(120), t, cond)
    assert ep["pending_since_s"] == 210.0 and ep["start_s"] == 330.0


def test_two_episodes_and_for_zero_fires_immediately():
    t, cond = _series([(60, 90), (300, 330)])
    eps = evaluate_rule(_rule(0), t, cond)
    assert [(e["start_s"], e["end_s"]) for e in eps] == [(60.0, 120.0), (300.0, 360.0)]


def test_still_firing_at_the_end_has_no_end():
    t, cond = _series([(600, 900)])
    (ep,) = evaluate_rule(_rule(300), t, cond)
    assert ep["start_s"] == 900.0 and ep["end_s"] is None


def test_evaluations_use_the_latest_sample_and_honour_the_lookback():
    # Samples every 20 s, evaluations every 30 s: the evaluation at 90 sees the sample at 80.
    t = np.arange(0.0, 401.0, 20.0)
    cond = t >= 80
    (ep,) = evaluate_rule(_rule(60), t, cond)
    assert ep["pending_since_s"] == 90.0 and ep["start_s"] == 150.0
    # A sample older than the lookback counts as absent, which resolves the alert.
    t2 = np.array([0.0, 30.0, 60.0, 90.0, 120.0, 600.0])
    (ep2,) = evaluate_rule(_rule(30), t2, np.ones(6, dtype=bool), lookback_s=300.0)
    assert ep2["start_s"] == 30.0 and ep2["end_s"] == 450.0


def test_seven_rules_as_deployed():
    rules = {r.name: r for r in memstack_rules()}
    expected = {
        "MemStackAPIHighErrorRate": ("HighErrorRate", "warning", 300.0, "memstack_api"),
        "MemStackAPIHighLatency": ("HighLatency", "warning", 600.0, "memstack_api"),
        "MemStackAPINotReady": ("APINotReady", "critical", 120.0, "memstack_api"),
        "MemStackWorkerNotReady": (None, "warning", 300.0, "memstack_worker"),
        "MemStackWorkerQueueFull": (None, "warning", 300.0, "memstack_worker"),
        "MemStackHighMemoryUsage": ("HighMemoryUsage", "warning", 600.0, "memstack_resources"),
        "MemStackHighCPUUsage": ("HighCPUUsage", "warning", 600.0, "memstack_resources"),
    }
    assert {n: (r.short_name, r.severity, r.for_s, r.group) for n, r in rules.items()} == expected
    assert sorted({c for r in rules.values() for c in r.columns}) == sorted(ALL_COLUMNS)


@pytest.mark.parametrize(
    ("name", "column", "at", "above"),
    [
        ("MemStackAPIHighErrorRate", "api_5xx_rps", 0.05, 0.0501),  # absolute 5xx/s, strict
        ("MemStackAPIHighLatency", "api_latency_p99_5m_s", 1.0, 1.001),
        ("MemStackAPINotReady", "api_targets_down", 0.0, 1.0),
        ("MemStackWorkerNotReady", "worker_targets_down", 0.0, 1.0),
        ("MemStackWorkerQueueFull", "worker_queue_fraction", 0.9, 0.91),
        ("MemStackHighMemoryUsage", "memory_limit_fraction_max", 0.9, 0.91),
        ("MemStackHighCPUUsage", "cpu_cores_5m_max", 0.8, 0.81),  # cores per container
    ],
)
def test_thresholds_as_written(name, column, at, above):
    rule = next(r for r in memstack_rules() if r.name == name)
    frame = pd.DataFrame({column: [at, above, np.nan]})
    assert rule.condition(frame).tolist() == [False, True, False]


def test_evaluate_rules_returns_tidy_episodes():
    t = np.arange(0.0, 1800.0 + 1, 15.0)
    frame = pd.DataFrame({c: np.zeros(t.size) for c in ALL_COLUMNS}, index=pd.Index(t, name="t_s"))
    frame.loc[(t >= 100) & (t <= 700), "api_targets_down"] = 2.0
    frame.loc[t >= 300, "api_5xx_rps"] = 0.2
    out = evaluate_rules(memstack_rules(), frame)
    assert list(out.columns)[:5] == ["alert", "severity", "start_s", "end_s", "for_s"]
    assert out["alert"].tolist() == ["MemStackAPINotReady", "MemStackAPIHighErrorRate"]
    down, errors = out.iloc[0], out.iloc[1]
    assert (down.pending_since_s, down.start_s, down.end_s) == (120.0, 240.0, 720.0)
    assert (errors.pending_since_s, errors.start_s, errors.for_s) == (300.0, 600.0, 300.0)
    assert np.isnan(errors.end_s)


def test_evaluate_rules_lists_every_missing_column():
    with pytest.raises(ValueError, match=r"api_5xx_rps.*worker_queue_fraction"):
        evaluate_rules(memstack_rules(), pd.DataFrame({"api_latency_p99_5m_s": [0.1]}))


def test_rate_window_is_a_trailing_average():
    t = np.arange(15.0, 901.0, 15.0)
    counts = np.full(t.size, 3.0)  # 3 events per 15 s
    np.testing.assert_allclose(rate_window(counts, t, 300.0), 0.2)
    step = np.where(t > 450, 30.0, 0.0)  # 2/s from 450 s on
    rate = rate_window(step, t, 300.0)
    assert rate[t == 450][0] == 0.0
    assert rate[t == 600][0] == pytest.approx(1.0)  # half the window at 2/s
    assert rate[t == 750][0] == pytest.approx(2.0)
    # Uneven window edge: the straddled interval contributes its share.
    assert rate_window(step, t, 160.0)[t == 600][0] == pytest.approx(2.0 * 150 / 160)


def test_window_quantile_empirical_and_histogram():
    end = np.arange(1.0, 101.0)
    lat = np.linspace(0.01, 2.0, 100)
    q = window_quantile([100.0, 1000.0], end, lat, window_s=300.0, q=0.5)
    assert q[0] == pytest.approx(np.quantile(lat, 0.5)) and np.isnan(q[1])
    buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
    # 98 requests at 0.2 s and 2 at 3 s: rank 99 lies in (2.5, 5] -> 2.5 + 2.5 * (99 - 98) / 2.
    lat2 = np.r_[np.full(98, 0.2), 3.0, 3.0]
    assert window_quantile([100.0], end, lat2, q=0.99, buckets_s=buckets)[0] == pytest.approx(3.75)
    # 99 % within 1 s: the p99 stays at or below the 1 s bucket bound, so "> 1" is false.
    lat3 = np.r_[np.full(99, 0.9), 8.0]
    assert window_quantile([100.0], end, lat3, q=0.99, buckets_s=buckets)[0] == pytest.approx(1.0)
    # Beyond the largest finite bound histogram_quantile returns that bound.
    assert window_quantile([100.0], end, np.full(100, 50.0), q=0.99, buckets_s=buckets)[0] == 10.0


def _reference_window_quantile(t_s, end_s, latency_s, window_s, q, buckets_s):
    """window_quantile written out plainly: select each window, sort it, count per bucket."""
    out = []
    for t in t_s:
        sel = np.sort(latency_s[(end_s > t - window_s) & (end_s <= t)])
        if sel.size == 0:
            out.append(np.nan)
            continue
        if buckets_s is None:
            out.append(np.quantile(sel, q))
            continue
        # promql bucketQuantile on cumulative `le` counts; +Inf holds every observation.
        bounds = list(buckets_s) + [np.inf]
        counts = [np.float64(np.sum(sel <= b)) for b in buckets_s] + [np.float64(sel.size)]
        rank = q * sel.size
        b = next(i for i, c in enumerate(counts) if c >= rank)
        if b == len(bounds) - 1:
            out.append(float(bounds[-2]))
        elif b == 0 and bounds[0] <= 0:
            out.append(float(bounds[0]))
        else:
            lower, below = (0.0, 0.0) if b == 0 else (bounds[b - 1], counts[b - 1])
            out.append(lower + (bounds[b] - lower) * (rank - below) / (counts[b] - below))
    return np.array(out)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # q = 0 with an empty first bucket: 0/0
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_window_quantile_matches_a_plain_reference(seed, q):
    """Bucket counts without a sort per window equal sorting each window (NaN where it is empty)."""
    rng = np.random.default_rng(seed)
    buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
    n = 3000
    # End times in bursts with gaps longer than the window (empty windows), unsorted, with ties.
    third = n // 3
    end = np.concatenate([rng.uniform(0, 600, third), rng.uniform(1500, 1800, third), np.full(n - 2 * third, 1700.0)])
    rng.shuffle(end)
    lat = rng.lognormal(np.log(0.2), 1.5, n)
    on_bound = rng.random(n) < 0.3  # latencies exactly at a bound count in that bound's bucket
    lat[on_bound] = rng.choice(buckets, on_bound.sum())
    slow = (end > 1500) & (end < 1600)
    lat[slow] = rng.uniform(10.5, 60.0, slow.sum())  # windows with every latency in the +Inf bucket
    t = np.arange(0.0, 2400.0, 15.0)
    for buckets_s in (buckets, None, [0.0, 0.5, 1.0]):
        got = window_quantile(t, end, lat, 300.0, q, buckets_s)
        want = _reference_window_quantile(t, end, lat, 300.0, q, buckets_s)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.isnan(got[(t > 900) & (t < 1200)]).all() and not np.isnan(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)


def test_window_quantile_histogram_edges():
    buckets = [0.1, 1.0, 10.0]
    end = np.array([10.0, 20.0, 30.0, 40.0])
    # A latency equal to a bound is in that bound's bucket (`le`): p50 of {0.1, 0.1, 1, 1} is 0.1.
    at_bounds = np.array([0.1, 0.1, 1.0, 1.0])
    assert window_quantile([50.0], end, at_bounds, q=0.5, buckets_s=buckets)[0] == pytest.approx(0.1)
    # Every latency above the last bound: the last finite bound.
    assert window_quantile([50.0], end, np.full(4, 99.0), q=0.5, buckets_s=buckets)[0] == 10.0
    # No request in the window, and a window's edge: end == t - window is outside, end == t inside.
    out = window_quantile([5.0, 310.0, 340.0], end, np.full(4, 0.5), q=0.5, buckets_s=buckets)
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.55) and np.isnan(out[2])
    assert np.isnan(window_quantile([1.0], np.empty(0), np.empty(0), q=0.99, buckets_s=buckets)).all()
