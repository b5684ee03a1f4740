"""replicate, sweep, compare: grid expansion, the long frame, common random numbers, executors, intervals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from memstack_capacity import ScenarioError, compare, replicate, simulate, sweep
from memstack_capacity.api.batch import expand_grid, flatten
from memstack_capacity.results.replications import combine_summaries, interval_verdict, mean_ci95, t975
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario


def tiny(**targets):
    """50 req/s into 2 pods, one cpu step of 10 ms, 100 s measured."""
    data = pod_scenario(50, 0.01, replicas=2, duration=120, warmup=20, name="tiny")
    data["targets"] = targets or {"throughput_rps": {"min": 40}, "latency_p99": {"max": "1s"}}
    return parse_scenario(data)


def summary_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith(("requests.", "deployments.", "met"))]]


# --------------------------------------------------------------------------- grid expansion (pure)


def test_expand_grid_is_the_product_in_key_order_last_fastest():
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"},
    ]


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ({}, [{}]),
        ({"a": 3}, [{"a": 3}]),
        ({"a": "30m"}, [{"a": "30m"}]),
        ({"a": {"cpu": 1}}, [{"a": {"cpu": 1}}]),
        ({"a": range(2)}, [{"a": 0}, {"a": 1}]),
        ({"a": (1,), "b": [[1, 2]]}, [{"a": 1, "b": [1, 2]}]),
    ],
)
def test_expand_grid_cases(grid, expected):
    assert expand_grid(grid) == expected


def test_expand_grid_rejects_an_empty_value_list_naming_the_key():
    with pytest.raises(ValueError, match="'deployments.api.replicas' has no values"):
        expand_grid({"deployments.api.replicas": []})


# --------------------------------------------------------------------------- sweep


def test_sweep_shape_columns_and_common_random_numbers():
    frame = sweep(tiny(), {"deployments.api.replicas": [2, 3], "workload.arrivals.profile[0].rps": [40, 50]},
                  replications=2, seed=7, workers=1)
    assert len(frame) == 2 * 2 * 2
    assert list(frame.columns[:6]) == ["run_id", "variant", "replication", "seed",
                                       "deployments.api.replicas", "workload.arrivals.profile[0].rps"]
    for column in ("requests.throughput_rps", "requests.latency_s.p99", "deployments.api.replicas.max",
                   "requests.error_rate", "targets.latency_p99.max", "met"):
        assert column in frame.columns
    assert list(frame["run_id"]) == list(range(8))
    assert list(frame["variant"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    # Common random numbers: replication r has seed 7 + r in every variant.
    assert frame.groupby("replication")["seed"].unique().map(list).to_dict() == {0: [7], 1: [8]}
    # The overrides took effect: the replica count shows in the summary figures.
    assert (frame["deployments.api.replicas.max"] == frame["deployments.api.replicas"]).all()
    assert frame.loc[frame["workload.arrivals.profile[0].rps"] == 40, "requests.throughput_rps"].mean() < 45


def test_a_variant_identical_to_the_base_gives_identical_rows():
    base = tiny()
    frame = sweep(base, {"deployments.api.replicas": [2, 2, 3]}, replications=2, workers=1)
    figures = summary_columns(frame)
    first, second = figures[frame["variant"] == 0], figures[frame["variant"] == 1]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))
    # ...and identical to simulating the base directly with the same seed.
    direct = flatten(simulate(base, seed=base.seed).summary)
    assert frame.loc[0, "requests.latency_s.p99"] == direct["requests.latency_s.p99"]


def test_sweep_seed_defaults_to_the_scenario_seed():
    frame = sweep(tiny(), {"deployments.api.replicas": [2]}, replications=3, workers=1)
    assert list(frame["seed"]) == [1, 2, 3]


def test_grid_key_that_names_nothing_fails_with_the_path_and_nearest_keys():
    with pytest.raises(ScenarioError) as info:
        sweep(tiny(), {"deployments.api.replicaz": [2, 3], "deployments.api.hpa.maxReplicas": [4]}, workers=1)
    text = str(info.value)
    assert "grid key deployments.api.replicaz" in text
    assert "did you mean `replicas`" in text
    assert "deployments.api.hpa" in text  # hpa is null in a fixed-replica scenario: also reported


def test_a_value_the_scenario_rejects_is_a_scenario_error():
    with pytest.raises(ScenarioError, match="replicas"):
        sweep(tiny(), {"deployments.api.replicas": [-1]}, workers=1)


def test_executors_give_identical_figures_in_process_and_process_pool():
    grid = {"deployments.api.replicas": [2, 3]}
    serial = sweep(tiny(), grid, replications=2, workers=1)
    pooled = sweep(tiny(), grid, replications=2, workers=2)
    pd.testing.assert_frame_equal(serial, pooled)


def test_dask_local_cluster_gives_identical_figures():
    distributed = pytest.importorskip(
        "distributed", reason="dask[distributed] is not installed: pip install -e '.[dask]'"
    )
    grid = {"deployments.api.replicas": [2, 3]}
    serial = sweep(tiny(), grid, replications=2, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            remote = sweep(tiny(), grid, replications=2, client=client)
            runs = replicate(tiny(), 2, seed=3, client=client)
    pd.testing.assert_frame_equal(serial, remote)
    assert [r.summary for r in runs] == [r.summary for r in replicate(tiny(), 2, seed=3, workers=1)]


def test_progress_callback_counts_every_run():
    calls = []
    sweep(tiny(), {"deployments.api.replicas": [2, 3]}, replications=2, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert [(d, t) for d, t in calls if float(d).is_integer()] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(done) > 4  # and the share of the run under way in between


# --------------------------------------------------------------------------- replicate


def test_replicate_uses_consecutive_seeds_and_pool_results_match():
    here = replicate(tiny(), 3, seed=10, workers=1)
    pooled = replicate(tiny(), 3, seed=10, workers=2)
    assert [r.seed for r in here] == [10, 11, 12] == [r.seed for r in pooled]
    assert [r.summary for r in here] == [r.summary for r in pooled]
    # Frames of a pooled result are rebuilt on demand, identical to the in-process run.
    pd.testing.assert_frame_equal(pooled[1].requests, here[1].requests)


def test_replicate_rejects_zero():
    with pytest.raises(ValueError, match="at least 1"):
        replicate(tiny(), 0)


# --------------------------------------------------------------------------- intervals


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t975(4) == pytest.approx(2.7764, abs=1e-4)
    assert t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t975(60) == pytest.approx(2.000298, abs=1e-5)
    assert t975(120) == pytest.approx(1.979930, abs=1e-5)
    assert t975(10**6) == pytest.approx(1.959966, abs=1e-5)


#: t(0.975, df) as the hand-written table (df <= 30) and Cornish-Fisher series (beyond) gave them.
OLD_T975 = {1: 12.706204736, 2: 4.302652730, 5: 2.570581836, 10: 2.228138852, 29: 2.045229642,
            30: 2.042272456, 31: 2.0395134200869105, 40: 2.0210753829953374, 60: 2.000297821058262,
            1000: 1.9623390808264076}


def test_t_quantiles_equal_the_old_table_to_many_digits():
    for df, old in OLD_T975.items():
        assert t975(df) == pytest.approx(old, rel=1e-9 if df <= 30 else 2e-8), df
    with pytest.raises(ValueError):
        t975(0)


def test_mean_ci95_by_hand():
    mean, (lo, hi) = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(t975(2) * 1.0 / math.sqrt(3))
    assert lo == pytest.approx(2 * mean - hi)
    assert mean_ci95([5.0]) == (5.0, None)
    assert mean_ci95([1.0, None]) == (None, None)


def test_combined_summary_keeps_keys_and_adds_ci95_siblings():
    runs = replicate(tiny(), 3, workers=1)
    combined = combine_summaries([r.summary for r in runs], runs[0].scenario.targets)
    lat = combined["requests"]["latency_s"]
    p99s = [r.summary["requests"]["latency_s"]["p99"] for r in runs]
    assert lat["p99"] == pytest.approx(sum(p99s) / 3)
    lo, hi = lat["p99_ci95"]
    assert lo <= lat["p99"] <= hi
    assert combined["replications"] == 3
    assert combined["seed"] == 1 and combined["seeds"] == [1, 2, 3]
    assert combined["duration_s"] == 120.0 and "duration_s_ci95" not in combined
    assert "throughput_rps_ci95" in combined["requests"]
    assert combined["deployments"]["api"]["replicas"]["max"] == 2
    assert [t["verdict"] for t in combined["targets"]] == ["met", "met"]
    assert combined["met"] is True
    assert all(t["value_ci95"] is not None for t in combined["targets"])


def test_combined_summary_treats_absent_error_statuses_as_zero_and_missing_figures_as_none():
    a = {"seed": 1, "requests": {"errors": {"503": 4}, "latency_s": {"p99": 1.0}}}
    b = {"seed": 2, "requests": {"errors": {}, "latency_s": {"p99": None}}}
    combined = combine_summaries([a, b])
    assert combined["requests"]["errors"]["503"] == 2.0
    assert combined["requests"]["latency_s"]["p99"] is None
    assert combined["requests"]["latency_s"]["p99_ci95"] is None


@pytest.mark.parametrize(
    ("interval", "kind", "limit", "verdict"),
    [
        ([0.8, 0.9], "max", 1.0, "met"),
        ([1.1, 1.2], "max", 1.0, "missed"),
        ([0.9, 1.1], "max", 1.0, "inconclusive"),
        ([50, 60], "min", 40, "met"),
        ([30, 39], "min", 40, "missed"),
        ([35, 45], "min", 40, "inconclusive"),
        (None, "max", 1.0, "met"),
    ],
)
def test_interval_rule(interval, kind, limit, verdict):
    value = sum(interval) / 2 if interval else 0.5
    assert interval_verdict(value, interval, kind, limit) == verdict


def test_interval_rule_no_value_is_missed():
    assert interval_verdict(None, None, "max", 1.0) == "missed"


# --------------------------------------------------------------------------- compare


def test_compare_puts_headline_figures_side_by_side_with_intervals():
    two = replicate(tiny(), 2, workers=1)
    one = simulate(tiny().with_overrides({"workload.arrivals.profile[0].rps": 30}))
    table = compare({"base": two, "light": one})
    assert list(table.columns.get_level_values(0).unique()) == ["base", "light"]
    assert {"throughput_rps", "latency_p99_s", "api.replicas_max", "met_fraction"} <= set(table.index)
    assert "job_latency_p99_s" not in table.index  # no jobs in either: the all-NaN row is dropped
    assert table.loc["throughput_rps", ("light", "value")] < table.loc["throughput_rps", ("base", "value")]
    assert not math.isnan(table.loc["throughput_rps", ("base", "ci95_lo")])
    assert math.isnan(table.loc["throughput_rps", ("light", "ci95_lo")])


def test_auto_progress_is_silent_off_a_terminal_and_when_disabled(capsys):
    from memstack_capacity.api.progress import TerminalProgress, auto_progress

    assert auto_progress("sweep x", False) is None
    assert auto_progress("sweep x", None) is None  # pytest's stderr is not a terminal, and no kernel runs
    mine = lambda done, total: None  # noqa: E731
    assert auto_progress("sweep x", mine) is mine

    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    tty = Tty()
    bar = TerminalProgress("sweep x", stream=tty, delay_s=0)
    bar(1, 2)
    bar(2, 2)
    assert "sweep x" in tty.text and "50%" in tty.text and "1/2 runs" in tty.text
    assert "100%" in tty.text and tty.text.rstrip("\x1b[?25h").endswith("\n")  # drawn by rich, ended by close()
    assert bar.bar is None  # closed at 2/2
