"""``validate`` and ``show`` through the CLI entry point: exit codes and output, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memstack_capacity.cli import main
from memstack_capacity.scenario.load import load_scenario, parse_scenario

DATA = Path(__file__).parent / "data"
MINIMAL = str(DATA / "minimal.yaml")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_validate_ok(capsys):
    code, out, err = _run(capsys, "validate", MINIMAL)
    assert (code, out, err) == (0, f"ok: {MINIMAL}\n", "")


def test_validate_checks_every_file(capsys):
    bad = str(DATA / "bad_two_problems.yaml")
    missing = str(DATA / "nope.yaml")
    code, out, err = _run(capsys, "validate", bad, MINIMAL, missing)
    assert code == 2
    assert out == f"ok: {MINIMAL}\n"
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{bad}: deployments.api.resources.requests.cpu: ")
    assert lines[1].startswith(f"{bad}: workload.requests[0].steps[1].call: ")
    assert lines[2] == f"{missing}: (top level): no such file"


@pytest.mark.parametrize("name", ["bad_yaml.yaml", "empty.yaml", "list.yaml", "bad_unknown_key.yaml"])
def test_validate_bad_files_exit_2(capsys, name):
    code, out, err = _run(capsys, "validate", str(DATA / name))
    assert code == 2 and out == "" and err.startswith(str(DATA / name) + ": ")


def test_validate_needs_a_file(capsys):
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2


def test_show_prints_resolved_yaml_in_contract_spellings(capsys):
    code, out, err = _run(capsys, "show", MINIMAL)
    assert code == 0 and err == ""
    data = yaml.safe_load(out)
    assert data["duration"] == "10m" and data["sample_interval"] == "5s" and data["warmup"] == "0s"
    api = data["deployments"]["api"]
    assert api["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert api["backlog"] == 2048 and api["load_balancing"] == "round_robin"  # defaults filled in
    assert data["cluster"]["node"] == {"cpu": "8", "memory": "32Gi"}
    assert "null" not in out
    # What `show` prints is itself a valid scenario, identical to the file's.
    assert parse_scenario(data) == load_scenario(MINIMAL)


def test_show_with_set(capsys):
    code, out, _ = _run(capsys, "show", MINIMAL, "--set", "deployments.api.replicas=7", "--set", "duration=30m",
                        "--set", "workload.requests[ping].weight=2")
    data = yaml.safe_load(out)
    assert code == 0
    assert data["deployments"]["api"]["replicas"] == 7 and data["duration"] == "30m"
    assert data["workload"]["requests"][0]["weight"] == 2.0


def test_show_bad_set_path(capsys):
    code, out, err = _run(capsys, "show", MINIMAL, "--set", "deployments.api.replicaz=7")
    assert code == 2 and out == ""
    assert "--set deployments.api.replicaz: deployments.api has no key `replicaz`" in err
    assert "did you mean `replicas`?" in err


def test_show_bad_set_value(capsys):
    code, out, err = _run(capsys, "show", MINIMAL, "--set", "deployments.api.replicas=many")
    assert code == 2 and out == ""
    assert "deployments.api.replicas: must be a whole number (got 'many')" in err


def test_show_bad_set_syntax(capsys):
    code, _, err = _run(capsys, "show", MINIMAL, "--set", "replicas")
    assert code == 2 and "expected dotted.key=value" in err


def test_show_bad_file(capsys):
    code, out, err = _run(capsys, "show", str(DATA / "bad_unknown_key.yaml"))
    assert code == 2 and out == ""
    assert "duraton: unknown key" in err
