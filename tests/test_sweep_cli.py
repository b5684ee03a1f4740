"""The ``sweep`` command: grid arguments, the CSV, exit codes."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from memstack_capacity.cli import main
from memstack_capacity.cli.sweep import parse_grid_argument
from memstack_capacity.errors import ScenarioError
from tests.factory import pod_scenario


@pytest.fixture
def scenario(tmp_path):
    data = pod_scenario(50, 0.01, replicas=2, duration=120, warmup=20, name="tiny")
    data["targets"] = {"latency_p99": {"max": "1s"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("deployments.api.replicas=2,4,8", "deployments.api.replicas", [2, 4, 8]),
        ("duration=30m, 1h", "duration", ["30m", "1h"]),
        ("deployments.api.resources.limits.cpu=500m,1", "deployments.api.resources.limits.cpu", ["500m", 1]),
        ("workload.requests[r].weight=0.5", "workload.requests[r].weight", [0.5]),
        ("x={cpu: 1}, {cpu: 2}", "x", [{"cpu": 1}, {"cpu": 2}]),
    ],
)
def test_parse_grid_argument(text, key, values):
    assert parse_grid_argument(text) == (key, values)


@pytest.mark.parametrize("text", ["deployments.api.replicas", "=1,2", "deployments.api.replicas=", "a=1,,2", "a=[1"])
def test_parse_grid_argument_rejects(text):
    with pytest.raises(ScenarioError, match="--grid"):
        parse_grid_argument(text)


@pytest.mark.parametrize("text, says", [("a=&x [*x]", "recursive alias"), ("a={b: 1, b: 2}", "given twice"),
                                        ("a=" + "[" * 200 + "]" * 200, "MAX_DEPTH")])
def test_grid_values_are_read_within_the_loaders_limits(text, says):
    with pytest.raises(ScenarioError, match=says):
        parse_grid_argument(text)


def test_sweep_writes_the_long_csv(scenario, tmp_path, capsys):
    out = tmp_path / "runs" / "sweep.csv"
    code = main(["sweep", str(scenario), "--grid", "deployments.api.replicas=2,3",
                 "--grid", "workload.arrivals.profile[0].rps=40,50", "--replications", "2", "--workers", "1",
                 "--seed", "5", "--out", str(out)])
    assert code == 0
    frame = pd.read_csv(out)
    assert len(frame) == 8
    assert list(frame.columns[:6]) == ["run_id", "variant", "replication", "seed",
                                       "deployments.api.replicas", "workload.arrivals.profile[0].rps"]
    assert {"requests.throughput_rps", "requests.latency_s.p99", "deployments.api.replicas.max", "met"} <= set(frame.columns)
    assert sorted(frame["seed"].unique()) == [5, 6]
    printed = capsys.readouterr().out
    assert "4 variants × 2 replications = 8 runs" in printed and str(out) in printed


def test_sweep_to_stdout(scenario, capsys):
    assert main(["sweep", str(scenario), "--grid", "deployments.api.replicas=2", "--workers", "1", "--out", "-"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("run_id,variant,replication,seed,deployments.api.replicas,")


def test_a_grid_key_that_does_not_exist_exits_2_with_nearest_keys(scenario, capsys):
    assert main(["sweep", str(scenario), "--grid", "deployments.api.replicaz=2,3", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "grid key deployments.api.replicaz" in err and "did you mean `replicas`" in err


@pytest.mark.parametrize(
    "extra",
    [
        [],  # no --grid at all
        ["--grid", "deployments.api.replicas=2", "--grid", "deployments.api.replicas=3"],
        ["--grid", "deployments.api.replicas=-1"],
        ["--grid", "deployments.api.replicas=2", "--workers", "0"],
        ["--grid", "deployments.api.replicas=2", "--replications", "0"],
    ],
)
def test_bad_input_exits_2(scenario, extra, capsys):
    assert main(["sweep", str(scenario), "--workers", "1", *extra]) == 2
    assert "error" in capsys.readouterr().err


def test_scheduler_that_cannot_be_reached_exits_3(scenario, capsys, monkeypatch):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed: pip install -e '.[dask]'")
    monkeypatch.setattr("memstack_capacity.cli.common.CONNECT_TIMEOUT", "1s")
    code = main(["sweep", str(scenario), "--grid", "deployments.api.replicas=2", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in err
    assert "problem" not in err  # not reported as a problem in the scenario


def test_a_grid_variant_past_a_limit_on_scale_is_refused_before_simulating(tmp_path, capsys, monkeypatch):
    """The scenario is within the limits (docs/reference/limits.md: 10 000 pods), one variant is
    not: refused with that variant named, nothing simulated, nothing written; --allow-large lifts it."""
    import memstack_capacity.api.batch as batch

    monkeypatch.delenv("MEMSTACK_ALLOW_LARGE", raising=False)
    ran = []
    monkeypatch.setattr(batch, "sweep", lambda *a, **k: ran.append(1) or pd.DataFrame({"variant": []}))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(pod_scenario(5.0, 0.05, duration=60, warmup=10)), encoding="utf-8")
    out = tmp_path / "sweep.csv"
    argv = ["sweep", str(path), "--grid", "deployments.api.replicas=2,20000", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--grid (deployments.api.replicas=20000)" in err and "over the limit of 10,000" in err
    assert not ran and not out.exists()
    from types import SimpleNamespace

    from memstack_capacity.cli.sweep import check_variants_scale
    from memstack_capacity.scenario.load import parse_scenario

    lifted = SimpleNamespace(allow_large=True, engine=None, scenario=str(path), replications=1, variants=2, workers=1)
    check_variants_scale(lifted, parse_scenario(pod_scenario(5.0, 0.05, duration=60, warmup=10)),
                         {"deployments.api.replicas": [2, 20000]})
