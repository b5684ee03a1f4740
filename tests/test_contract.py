"""The public contract (design/contract.md): summary.json's keys from a real run, every command's
``--help``, flags that are not silently ignored, and an output directory that is never clobbered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memstack_capacity.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = str(ROOT / "scenarios" / "small.yaml")
SHORT = ["--set", "duration=40s", "--set", "warmup=5s"]

COMMANDS = ("run", "check", "sweep", "capacity", "manifests", "validate", "show")
#: The flags the contract promises, per command.
FLAGS = {
    "run": ("--out", "--seed", "--replications", "--set", "--workers", "--scheduler", "--format"),
    "check": ("--junit", "--seed", "--replications", "--set", "--out", "--workers", "--scheduler", "--format"),
    "sweep": ("--grid", "--workers", "--scheduler", "--seed", "--replications", "--set", "--format"),
    "capacity": ("--seed", "--replications", "--set", "--workers", "--scheduler", "--format"),
    "manifests": ("--out",),
    "validate": (),
    "show": (),
}

LATENCY = {"mean", "p50", "p95", "p99", "max"}
REQUEST_KEYS = {"completed", "failed", "throughput_rps", "error_rate", "latency_s", "errors"}
DEPLOYMENT_KEYS = {"replicas", "pod_seconds", "cpu_utilization", "memory_utilization", "throttled_fraction",
                   "oom_kills", "restarts"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS[command]:
        assert flag in text, f"{command} --help does not mention {flag}"


def test_help_through_the_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "memstack_capacity", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout


def test_manifests_takes_no_seed(capsys):
    """Manifests do not depend on the seed, so the flag is refused rather than ignored."""
    with pytest.raises(SystemExit) as exit_:
        main(["manifests", SMALL, "--seed", "3"])
    assert exit_.value.code == 2


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("contract") / "small"
    assert main(["run", SMALL, *SHORT, "--seed", "3", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_run_writes_the_contract_files(small_run):
    out, _ = small_run
    for name in ("summary.json", "timeseries.csv", "requests.csv.gz", "scaling.csv", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert list((out / "plots").glob("*.png"))
    assert list((out / "manifests").glob("*.yaml"))


def test_summary_has_the_contract_keys(small_run):
    _, s = small_run
    assert {"scenario", "seed", "duration_s", "warmup_s", "replications", "requests", "deployments", "alerts",
            "targets", "met"} <= set(s)
    assert (s["scenario"], s["seed"], s["duration_s"], s["warmup_s"], s["replications"]) == ("small", 3, 40.0, 5.0, 1)
    req = s["requests"]
    assert REQUEST_KEYS | {"by_class"} <= set(req)
    assert set(req["latency_s"]) >= LATENCY
    assert {"503", "504"} <= set(req["errors"])  # listed (zero) even when none happened
    assert set(req["by_class"]) == {"read", "write"}
    for block in req["by_class"].values():
        assert REQUEST_KEYS <= set(block) and set(block["latency_s"]) >= LATENCY
    api = s["deployments"]["api"]
    assert DEPLOYMENT_KEYS <= set(api)
    assert set(api["replicas"]) >= {"min", "max", "mean"}
    assert set(api["cpu_utilization"]) >= {"mean", "max"} and set(api["memory_utilization"]) >= {"mean", "max"}
    pg = s["datastores"]["postgres"]
    assert {"connections_max", "pool_wait_s", "pool_timeouts", "refused"} <= set(pg) and "p99" in pg["pool_wait_s"]
    assert isinstance(s["alerts"], list)
    for alert in s["alerts"]:
        assert {"name", "start_s", "end_s"} <= set(alert)
    assert [t["name"] for t in s["targets"]] == ["throughput_rps", "error_rate", "latency_p99"]
    for target in s["targets"]:
        assert {"name", "limit", "value", "met"} <= set(target)
    assert s["met"] == all(t["met"] for t in s["targets"])


def test_summary_meanings(small_run):
    _, s = small_run
    req = s["requests"]
    window = s["duration_s"] - s["warmup_s"]
    assert req["throughput_rps"] == pytest.approx(req["completed"] / window)
    answered = req["completed"] + req["failed"]
    assert req["error_rate"] == pytest.approx(req["failed"] / answered)
    assert sum(req["errors"].values()) == req["failed"]
    lat = req["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert sum(c["completed"] for c in req["by_class"].values()) == req["completed"]
    api = s["deployments"]["api"]
    assert api["replicas"] == {"min": 2, "max": 2, "mean": 2.0}  # fixed replicas in small.yaml
    assert api["pod_seconds"] == pytest.approx(2 * s["duration_s"])


def test_run_refuses_a_directory_it_would_clobber(tmp_path, capsys):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(["run", SMALL, *SHORT, "--out", str(keep)]) == 2
    assert (keep / "notes.txt").read_text(encoding="utf-8") == "keep me"
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    assert main(["run", SMALL, *SHORT, "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--out" in err
