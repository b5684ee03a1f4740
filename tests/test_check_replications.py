"""``check --replications K``: a target is met or missed only when its 95 % interval says so."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import yaml

from memstack_capacity import replicate
from memstack_capacity.cli import main
from memstack_capacity.results.replications import combine_summaries
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario

K = 4


@pytest.fixture(scope="module")
def data():
    return pod_scenario(50, 0.01, replicas=2, duration=120, warmup=20, name="tiny")


@pytest.fixture(scope="module")
def intervals(data):
    """The 95 % intervals of p99 latency and throughput over seeds 1..K, computed independently of check."""
    runs = replicate(parse_scenario(data), K, workers=1)
    req = combine_summaries([r.summary for r in runs])["requests"]
    return {"latency_p99": req["latency_s"]["p99_ci95"], "throughput_rps": req["throughput_rps_ci95"]}


def run_check(tmp_path, data, targets, *extra):
    scenario = dict(data, targets=targets)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    junit = tmp_path / "capacity.xml"
    code = main(["check", str(path), "--replications", str(K), "--junit", str(junit), *extra])
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    return code, cases


def test_limits_clear_of_the_interval_are_met(tmp_path, data, intervals, capsys):
    (p_lo, p_hi), (t_lo, _) = intervals["latency_p99"], intervals["throughput_rps"]
    targets = {"latency_p99": {"max": p_hi * 1.2}, "throughput_rps": {"min": t_lo * 0.9}}
    code, cases = run_check(tmp_path, data, targets, "--workers", "1")
    assert code == 0
    assert all(c.find("failure") is None for c in cases.values())
    out = capsys.readouterr().out
    assert f"{K} replications, 95% intervals" in out and "CI" in out


def test_an_interval_entirely_on_the_wrong_side_is_missed(tmp_path, data, intervals, capsys):
    p_lo, _ = intervals["latency_p99"]
    code, cases = run_check(tmp_path, data, {"latency_p99": {"max": p_lo * 0.8}}, "--workers", "1")
    assert code == 1
    assert cases["latency_p99"].find("failure").get("type") == "TargetMissed"
    assert "MISSED" in capsys.readouterr().out


def test_an_interval_straddling_the_limit_is_inconclusive_and_fails(tmp_path, data, intervals, capsys):
    p_lo, p_hi = intervals["latency_p99"]
    t_lo, t_hi = intervals["throughput_rps"]
    targets = {"latency_p99": {"max": (p_lo + p_hi) / 2}, "throughput_rps": {"min": (t_lo + t_hi) / 2}}
    code, cases = run_check(tmp_path, data, targets, "--workers", "1")
    assert code == 1
    for name in ("latency_p99", "throughput_rps"):
        failure = cases[name].find("failure")
        assert failure.get("type") == "Inconclusive"
        assert "straddles" in failure.get("message")
    out = capsys.readouterr().out
    assert "INCONCLUSIVE: CI [" in out and "straddles the limit" in out
    assert "2 inconclusive, counted as failures" in out


def test_a_single_run_would_pass_where_the_interval_is_inconclusive(tmp_path, data, intervals):
    """The interval rule is stricter than judging the mean: the mean alone meets this limit."""
    p_lo, p_hi = intervals["latency_p99"]
    mean = (p_lo + p_hi) / 2
    code, cases = run_check(tmp_path, data, {"latency_p99": {"max": mean * 1.001}}, "--workers", "1")
    assert code == 1
    assert cases["latency_p99"].find("failure").get("type") == "Inconclusive"


def test_replications_on_the_process_pool_give_the_same_verdicts(tmp_path, data, intervals):
    p_lo, p_hi = intervals["latency_p99"]
    code, cases = run_check(tmp_path, data, {"latency_p99": {"max": (p_lo + p_hi) / 2}}, "--workers", "2")
    assert code == 1
    message = cases["latency_p99"].find("failure").get("message")
    assert f"{p_lo * 1000:.3g} ms" in message and f"{p_hi * 1000:.3g} ms" in message
