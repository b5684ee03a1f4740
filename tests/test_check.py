"""The ``check`` command: exit codes, the verdict table, JUnit XML, baselines, the interval rule."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from memstack_capacity import simulate
from memstack_capacity.cli import main
from memstack_capacity.cli.check import baseline_checks, parse_tolerance
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario

MET = {"throughput_rps": {"min": 40}, "latency_p99": {"max": "1s"}, "error_rate": {"max": 0.01}}


def write_scenario(tmp_path, targets=None, name="tiny.yaml"):
    """50 req/s into 2 pods, one cpu step of 10 ms, 100 s measured (p99 ≈ 55 ms)."""
    data = pod_scenario(50, 0.01, replicas=2, duration=120, warmup=20, name="tiny")
    data["targets"] = MET if targets is None else targets
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def junit_cases(path):
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    return suite, {case.get("name"): case for case in suite.iter("testcase")}


def write_baseline(tmp_path, scenario_path, change=None):
    """The run's own summary.json, optionally doctored by change(summary)."""
    data = yaml.safe_load(scenario_path.read_text())
    summary = simulate(parse_scenario(data)).summary
    if change:
        change(summary)
    path = tmp_path / "baseline-summary.json"
    path.write_text(json.dumps(summary), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- exit codes


def test_all_met_exits_0_and_prints_the_table(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    assert main(["check", str(scenario)]) == 0
    out = capsys.readouterr().out
    assert "p99 latency" in out and "throughput" in out and "met" in out
    assert "≤ 1 s" in out and "req/s" in out  # human names and units
    assert "passed: all 3 checks" in out


def test_a_missed_target_exits_1(tmp_path, capsys):
    scenario = write_scenario(tmp_path, {"latency_p99": {"max": "10ms"}, "throughput_rps": {"min": 40}})
    assert main(["check", str(scenario)]) == 1
    out = capsys.readouterr().out
    assert "MISSED" in out and "FAILED: 1 of 2 checks" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "{missing}"],
        ["check", "{scenario}", "--set", "deployments.api.replicaz=3"],
        ["check", "{scenario}", "--replications", "0"],
        ["check", "{scenario}", "--tolerance", "five"],
        ["check", "{scenario}", "--baseline", "{missing}"],
    ],
)
def test_bad_input_exits_2(tmp_path, argv, capsys):
    scenario = write_scenario(tmp_path)
    args = [a.format(scenario=scenario, missing=tmp_path / "nope.json") for a in argv]
    assert exit_code(args) == 2
    assert "error" in capsys.readouterr().err


def exit_code(argv) -> int:
    """main()'s return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_bad_override_names_the_path_and_nearest_key(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    assert main(["check", str(scenario), "--set", "deployments.api.replicaz=3"]) == 2
    err = capsys.readouterr().err
    assert "replicaz" in err and "did you mean `replicas`" in err


# --------------------------------------------------------------------------- JUnit


def test_junit_has_one_testcase_per_target_with_failures(tmp_path):
    scenario = write_scenario(tmp_path, {"latency_p99": {"max": "10ms"}, "throughput_rps": {"min": 40, "max": 1000}})
    junit = tmp_path / "reports" / "capacity.xml"
    assert main(["check", str(scenario), "--junit", str(junit)]) == 1
    suite, cases = junit_cases(junit)
    assert set(cases) == {"latency_p99", "throughput_rps (min)", "throughput_rps (max)"}
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failure = cases["latency_p99"].find("failure")
    assert failure.get("type") == "TargetMissed"
    assert "exceeds the max 10 ms" in failure.get("message") and "latency_p99 = " in failure.get("message")
    assert cases["throughput_rps (min)"].find("failure") is None
    assert cases["latency_p99"].get("classname") == "memstack_capacity.check.tiny.targets"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["scenario"] == "tiny" and props["replications"] == "1"


def test_junit_all_met_has_no_failures(tmp_path):
    scenario = write_scenario(tmp_path)
    junit = tmp_path / "capacity.xml"
    assert main(["check", str(scenario), "--junit", str(junit)]) == 0
    suite, cases = junit_cases(junit)
    assert suite.get("failures") == "0" and len(cases) == 3
    assert all(case.find("failure") is None for case in cases.values())


# --------------------------------------------------------------------------- baseline


def test_the_same_run_as_baseline_passes(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    baseline = write_baseline(tmp_path, scenario)
    junit = tmp_path / "capacity.xml"
    assert main(["check", str(scenario), "--baseline", str(baseline), "--tolerance", "5%", "--junit", str(junit)]) == 0
    _, cases = junit_cases(junit)
    assert {"requests.throughput_rps", "requests.error_rate", "requests.latency_s.p99"} <= set(cases)
    assert "baseline" in capsys.readouterr().out


def test_a_doctored_baseline_triggers_a_regression(tmp_path, capsys):
    scenario = write_scenario(tmp_path)

    def faster(summary):  # the stored run was 20 % faster at the tail: today's p99 is a regression
        summary["requests"]["latency_s"]["p99"] *= 0.8

    baseline = write_baseline(tmp_path, scenario, faster)
    junit = tmp_path / "capacity.xml"
    assert main(["check", str(scenario), "--baseline", str(baseline), "--junit", str(junit)]) == 1
    _, cases = junit_cases(junit)
    failure = cases["requests.latency_s.p99"].find("failure")
    assert failure is not None and failure.get("type") == "Regression"
    assert "baseline" in failure.get("message")
    assert cases["requests.throughput_rps"].find("failure") is None
    assert "REGRESSED" in capsys.readouterr().out


def test_a_change_within_tolerance_passes_and_better_is_never_a_regression(tmp_path):
    scenario = write_scenario(tmp_path)

    def drift(summary):
        summary["requests"]["latency_s"]["p99"] *= 0.97  # today is 3 % slower: within 5 %
        summary["requests"]["throughput_rps"] *= 0.5  # today is much better
        summary["requests"]["latency_s"]["p50"] *= 2.0  # today is much better

    baseline = write_baseline(tmp_path, scenario, drift)
    assert main(["check", str(scenario), "--baseline", str(baseline), "--tolerance", "5%"]) == 0
    assert main(["check", str(scenario), "--baseline", str(baseline), "--tolerance", "1%"]) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: line 1"),
        ("[1, 2]", "not a summary.json"),
        ('{"requests": {"throughput_rps": "fast"}}', "requests.throughput_rps is 'fast', not a number"),
        ('{"requests": {}}', "has none of the figures"),
    ],
)
def test_a_malformed_baseline_exits_2_with_a_clear_message(tmp_path, capsys, content, message):
    scenario = write_scenario(tmp_path)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content, encoding="utf-8")
    assert main(["check", str(scenario), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(baseline) in err


def test_a_missing_baseline_exits_2_before_simulating(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    assert main(["check", str(scenario), "--baseline", str(tmp_path / "gone.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_baseline_checks_rules():
    base = {"requests": {"throughput_rps": 100.0, "error_rate": 0.0, "latency_s": {"p99": 1.0, "p50": None}}}
    now = {"requests": {"throughput_rps": 96.0, "error_rate": 0.0005, "latency_s": {"p99": 1.04, "p50": 0.2}}}
    checks = {c["name"]: c for c in baseline_checks(now, base, 0.05)}
    assert set(checks) == {"requests.throughput_rps", "requests.error_rate", "requests.latency_s.p99"}  # null skipped
    assert checks["requests.throughput_rps"]["limit"] == pytest.approx(95.0)
    assert checks["requests.latency_s.p99"]["limit"] == pytest.approx(1.05)
    assert checks["requests.error_rate"]["limit"] == pytest.approx(0.001)  # the absolute slack on a zero baseline
    assert all(c["met"] for c in checks.values())
    worse = {"requests": {"throughput_rps": 94.0, "error_rate": 0.002, "latency_s": {"p99": None}}}
    verdicts = {c["name"]: c["verdict"] for c in baseline_checks(worse, base, 0.05)}
    assert verdicts == {"requests.throughput_rps": "missed", "requests.error_rate": "missed",
                        "requests.latency_s.p99": "missed"}


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("0", 0.0), (" 12.5% ", 0.125)])
def test_parse_tolerance(text, value):
    assert parse_tolerance(text) == pytest.approx(value)
