"""Input and output edge cases of the commands: build-time checks in `validate`, ambiguous
memory units, scaling.csv without an HPA, throughput targets in the capacity search."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from memstack_capacity.api.capacity import scale_load
from memstack_capacity.cli import main
from memstack_capacity.scenario.load import parse_scenario
from memstack_capacity.scenario.quantities import parse_memory
from tests.factory import pod_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_validate_reports_what_the_build_would_reject(tmp_path, capsys):
    data = pod_scenario(10.0, 0.005, duration=300.0, warmup=30.0)
    data["events"] = [{"at": 60, "pod_kill": {"deployment": "nope"}}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: events[0].pod_kill.deployment: names no deployment (have: api)" in err


def test_upper_case_megabytes_are_ambiguous():
    assert parse_memory("256mb") == 256 * 2**20  # Redis' spelling
    assert parse_memory("300M") == 300_000_000 and parse_memory("300Mi") == 300 * 2**20
    with pytest.raises(ValueError, match="ambiguous"):
        parse_memory("300MB")


def test_scaling_csv_has_a_header_without_an_hpa(tmp_path):
    assert main(["run", str(SCENARIOS / "small.yaml"), "--out", str(tmp_path / "o")]) == 0
    frame = pd.read_csv(tmp_path / "o" / "scaling.csv")
    assert frame.empty and {"t_s", "deployment", "desired_replicas", "reason"} <= set(frame.columns)


def test_capacity_scales_a_throughput_target_with_the_load():
    data = pod_scenario(100.0, 0.005, duration=120.0, warmup=10.0)
    data["targets"] = {"throughput_rps": {"min": 90}, "latency_p99": {"max": 0.5}}
    scaled = scale_load(parse_scenario(data), 2.0)
    assert scaled.workload.arrivals.profile[0].rps == 200.0
    assert scaled.targets.throughput_rps.min == 180.0
    assert scaled.targets.latency_p99.max == 0.5


def test_capacity_writes_its_figures_and_confidence(tmp_path):
    """An M/M/1-like pod with a mean-latency target of 50 ms: W = 1/(μ−λ) ≤ 0.05 s ⇒ λ ≤ 80 req/s."""
    import json

    data = pod_scenario(50.0, 0.01, duration=120.0, warmup=20.0)
    data["targets"] = {"latency_mean": {"max": 0.05}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "cap"
    assert main(["capacity", str(path), "--replications", "3", "--out", str(out)]) == 0
    figures = json.loads((out / "capacity.json").read_text())
    assert 60 < figures["capacity"] <= 80 * 1.06 and figures["unit"] == "req/s"
    assert figures["pass_probability_lower_95"] == pytest.approx(0.05 ** (1 / 3))
    assert "Clopper–Pearson" in (out / "capacity.md").read_text()


@pytest.mark.parametrize("value, says", [
    ("turbo", "MEMSTACK_ENGINE: must be one of auto, des, fast, hybrid, kernel, fluid"),
    ("hybrid", "MEMSTACK_ENGINE: the batched data plane does not model closed users"),
])
def test_a_bad_engine_variable_is_bad_input(tmp_path, capsys, monkeypatch, value, says):
    monkeypatch.setenv("MEMSTACK_ENGINE", value)
    out = tmp_path / "o"
    assert main(["run", str(SCENARIOS / "small.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{SCENARIOS / 'small.yaml'}: {says}" in err and f"(got '{value}')" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["manifests", str(SCENARIOS / "small.yaml"), "--out", str(tmp_path / "m")]) == 0  # no simulation
