"""The command line at its edges: internal errors, bad flags, special files, names a plot
cannot parse, limits on scale, and the progress line off a terminal."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from memstack_capacity.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

#: A deployment and a datastore whose names are mathtext that matplotlib cannot parse.
MATH = r"$\frac$"


def tiny_scenario(**changes) -> dict:
    """Five closed users for 40 s on one API pod with a PostgreSQL pool: a run of a second or two."""
    data = {
        "name": "tiny",
        "duration": "40s",
        "warmup": "5s",
        "sample_interval": "5s",
        "workload": {
            "users": {"profile": [{"at": 0, "users": 5}], "think_time": {"dist": "exponential", "mean": "1s"}},
            "requests": [{"name": "read", "weight": 1, "steps": [
                {"call": "postgres", "time": {"dist": "exponential", "mean": "1ms"}},
                {"cpu": {"dist": "exponential", "mean": "5ms"}}]}],
        },
        "deployments": {"api": {"replicas": 1, "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                                             "limits": {"cpu": 1, "memory": "1Gi"}}}},
        "datastores": {"postgres": {"kind": "postgresql", "max_connections": 100, "pool": {"pool_size": 5}}},
    }
    data.update(changes)
    return data


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- names a plot cannot parse


def test_a_run_with_mathtext_names_writes_every_plot(tmp_path, capsys):
    data = tiny_scenario()
    data["workload"]["requests"][0]["steps"][0]["call"] = MATH
    data["datastores"] = {MATH: data["datastores"]["postgres"]}
    data["deployments"][MATH] = data["deployments"]["api"]
    out = tmp_path / "out"
    assert main(["run", write(tmp_path, data), "--out", str(out)]) == 0, capsys.readouterr().err
    assert {"datastores.png", "replicas.png", "utilisation.png"} <= {p.name for p in (out / "plots").iterdir()}
    assert MATH in (out / "report.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the edge: every exception has an exit code


def _boom(*args, **kwargs):
    raise ZeroDivisionError("float division by zero")


def test_an_internal_error_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMSTACK_DEBUG", raising=False)
    monkeypatch.setattr("memstack_capacity.api.simulation.simulate", _boom)
    assert main(["run", write(tmp_path, tiny_scenario()), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "internal error" in line]
    assert line.startswith("internal error in `run`: ZeroDivisionError: float division by zero at memstack_capacity/")
    assert "report it to the memstack-capacity issue tracker" in line and "--debug" in line


def test_capacity_refuses_a_search_it_cannot_ask_before_simulating_and_a_value_error_inside_is_internal(
        tmp_path, capsys, monkeypatch):
    """A scenario without targets is bad input (exit 2, nothing simulated); a ValueError raised by a
    run is the tool's error (exit 1), not the user's."""
    monkeypatch.delenv("MEMSTACK_DEBUG", raising=False)

    def value_error(*args, **kwargs):
        raise ValueError("math domain error")

    monkeypatch.setattr("memstack_capacity.api.simulation.simulate", value_error)
    path = write(tmp_path, tiny_scenario())
    assert main(["capacity", path, "--screen", "none", "--out", str(tmp_path / "a")]) == 2
    assert "sets no targets" in capsys.readouterr().err and not (tmp_path / "a").exists()
    path = write(tmp_path, tiny_scenario(targets={"latency_mean": {"max": "1s"}}), "t.yaml")
    assert main(["capacity", path, "--screen", "none", "--workers", "1", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "internal error in `capacity`: ValueError: math domain error" in err and "Traceback" not in err


def test_debug_flag_and_variable_show_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("memstack_capacity.api.simulation.simulate", _boom)
    path = write(tmp_path, tiny_scenario())
    monkeypatch.delenv("MEMSTACK_DEBUG", raising=False)
    for argv in (["--debug", "run", path], ["run", path, "--debug"]):
        assert main(argv + ["--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "internal error in `run`" in err
    monkeypatch.setenv("MEMSTACK_DEBUG", "1")
    assert main(["check", path]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_interrupt_and_the_package_errors_keep_their_codes(tmp_path, capsys, monkeypatch):
    from memstack_capacity.errors import Problem, ScenarioError, SimulationError

    path = write(tmp_path, tiny_scenario())
    raised = {KeyboardInterrupt(): 130, ScenarioError([Problem("x", "is wrong")], "s.yaml"): 2,
              SimulationError("the clock ran backwards"): 1}
    for exc, code in raised.items():
        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr("memstack_capacity.api.simulation.simulate", fail)
        assert main(["check", path]) == code
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err


def test_an_internal_error_in_validate_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMSTACK_DEBUG", raising=False)
    monkeypatch.setattr("memstack_capacity.cli.scenario_commands.check_buildable", _boom)
    assert main(["validate", write(tmp_path, tiny_scenario())]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error in `validate`: ZeroDivisionError") and "Traceback" not in err


# --------------------------------------------------------------------------- flags


def test_a_negative_seed_is_bad_input_in_every_simulating_command(tmp_path, capsys):
    path = write(tmp_path, tiny_scenario())
    for command in (["run", path], ["check", path], ["capacity", path], ["sweep", path, "--grid", "seed=1,2"]):
        assert main(command + ["--seed", "-1"]) == 2, command
        assert "error: --seed must be a whole number 0 or more, got -1" in capsys.readouterr().err


def test_workers_below_one_are_bad_input(tmp_path, capsys):
    path = write(tmp_path, tiny_scenario())
    for command in (["run", path], ["check", path], ["sweep", path, "--grid", "seed=1,2"]):
        for workers in ("0", "-1"):
            assert main(command + ["--replications", "2", "--workers", workers]) == 2, command
            err = capsys.readouterr().err
            assert f"error: --workers must be at least 1 (or left out for one per CPU), got {workers}" in err


# --------------------------------------------------------------------------- files that are not scenario files


def test_special_files_are_refused_before_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block until a writer comes
    for path in ("/dev/zero", str(fifo)):
        for command in (["run", path], ["check", path], ["show", path], ["validate", path], ["manifests", path]):
            assert main(command) == 2, command
            assert f"{path}: (top level): is not a regular file" in capsys.readouterr().err


def test_a_huge_file_is_refused_before_reading(tmp_path, capsys):
    from memstack_capacity.cli.common import MAX_SCENARIO_BYTES

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_SCENARIO_BYTES + 1)  # sparse: no disk space used
    assert main(["run", str(big)]) == 2
    assert f"not accepted: {MAX_SCENARIO_BYTES + 1:,} bytes, larger than {MAX_SCENARIO_BYTES:,}" in capsys.readouterr().err


# --------------------------------------------------------------------------- limits on scale


def _refuses(capsys, argv, *fragments) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    for fragment in (*fragments, "--allow-large (or MEMSTACK_ALLOW_LARGE=1) runs it anyway"):
        assert fragment in err, err
    return err


def test_runs_beyond_the_limits_are_refused_before_simulating(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMSTACK_ALLOW_LARGE", raising=False)
    monkeypatch.setattr("memstack_capacity.api.simulation.simulate", _boom)  # never reached
    monkeypatch.setattr("memstack_capacity.api.batch.replicate", _boom)
    users = tiny_scenario()
    users["workload"]["users"]["profile"] = [{"at": 0, "users": 10**8}]
    _refuses(capsys, ["run", write(tmp_path, users)],
             "workload.users.profile: the most closed users (with any traffic spike) are 100,000,000, "
             "over the limit of 1,000,000")
    pods = tiny_scenario()
    pods["deployments"]["api"]["replicas"] = 20_000
    _refuses(capsys, ["check", write(tmp_path, pods)], "deployments: the pods at most", "20,000",
             "over the limit of 10,000")
    long = tiny_scenario(duration="3650d")
    err = _refuses(capsys, ["run", write(tmp_path, long), "--engine", "fluid"],
                   "duration: 3,650.0 days, over the limit of 92 days")
    assert "expected requests" not in err  # the flow model keeps no request
    busy = tiny_scenario(duration="60d")
    busy["workload"]["users"]["profile"] = [{"at": 0, "users": 500}]  # 500 req/s for 60 days: 2.6 G requests
    _refuses(capsys, ["run", write(tmp_path, busy)],
             "workload: the expected requests (rate × duration) are", "over the limit of 1,000,000,000",
             "--engine fluid")
    _refuses(capsys, ["run", write(tmp_path, tiny_scenario()), "--replications", "1000000"],
             "--replications: the runs are 1,000,000, over the limit of 10,000")
    _refuses(capsys, ["sweep", write(tmp_path, tiny_scenario()), "--grid", "seed=1,2", "--replications", "6000"],
             "the runs are 12,000")
    _refuses(capsys, ["capacity", write(tmp_path, users)], "100,000,000")


def test_the_memory_estimate_counts_runs_at_once(tmp_path, capsys, monkeypatch):
    from memstack_capacity.engine import scale

    monkeypatch.delenv("MEMSTACK_ALLOW_LARGE", raising=False)
    monkeypatch.setattr("memstack_capacity.api.batch.replicate", _boom)
    one = scale.estimate(parse(tiny_scenario()), "des").memory_bytes
    monkeypatch.setattr(scale, "LIMITS", scale.Limits(memory_bytes=int(1.5 * one)))
    _refuses(capsys, ["run", write(tmp_path, tiny_scenario()), "--replications", "2", "--workers", "2"],
             "(memory estimate): the estimated memory (2 runs at once) is")


def test_allow_large_lifts_the_limits(tmp_path, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("memstack_capacity.api.simulation.simulate", lambda *a, **k: seen.append(1) or _boom())
    path = write(tmp_path, tiny_scenario(duration="3650d"))
    monkeypatch.delenv("MEMSTACK_ALLOW_LARGE", raising=False)
    assert main(["run", path, "--engine", "fluid", "--allow-large"]) == 1 and seen == [1]
    monkeypatch.setenv("MEMSTACK_ALLOW_LARGE", "1")
    assert main(["check", path, "--engine", "fluid"]) == 1 and seen == [1, 1]
    assert "over the limit" not in capsys.readouterr().err


def test_every_bundled_scenario_is_within_the_limits():
    from memstack_capacity.engine.capabilities import choose
    from memstack_capacity.engine.scale import scale_problems
    from memstack_capacity.scenario.load import load_scenario

    for path in sorted(SCENARIOS.glob("*.yaml")):
        scenario = load_scenario(path)
        engine = "fluid" if path.stem == "week" else choose(scenario, "auto").engine  # week.yaml: a flow model run
        assert scale_problems(scenario, engine, runs=4, parallel=2) == [], path.name


def parse(data: dict):
    from memstack_capacity.scenario.load import parse_scenario

    return parse_scenario(data)


# --------------------------------------------------------------------------- progress off a terminal


def test_progress_lines_with_an_eta_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMSTACK_PROGRESS", raising=False)
    monkeypatch.setattr("memstack_capacity.cli.common.HEARTBEAT_FIRST_S", 0.0)
    monkeypatch.setattr("memstack_capacity.cli.common.HEARTBEAT_EVERY_S", 0.0)
    path = write(tmp_path, tiny_scenario(duration="3m"))  # the clock reports every simulated minute
    assert main(["run", path, "--out", str(tmp_path / "o")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("run tiny: ")]
    assert len(lines) == 2 and "\r" not in "".join(lines)
    assert re.fullmatch(r"run tiny: 67% \(120 of 180 s simulated\), \d+ s elapsed, about \d+ s left", lines[-1])
    assert main(["run", write(tmp_path, tiny_scenario(), "r.yaml"), "--out", str(tmp_path / "o2"), "--replications", "2",
                 "--workers", "1"]) == 0
    assert "replicate tiny: 50% (1 of 2 runs done)" in capsys.readouterr().err


def test_no_progress_line_for_a_short_run_or_when_silenced(tmp_path, capsys, monkeypatch):
    import io

    from memstack_capacity.cli.common import Progress

    monkeypatch.delenv("MEMSTACK_PROGRESS", raising=False)
    stream = io.StringIO()
    progress = Progress("run x", stream=stream, first_s=60.0)
    for t in range(0, 100, 10):
        progress(t, 100)
    assert stream.getvalue() == ""
    monkeypatch.setenv("MEMSTACK_PROGRESS", "0")
    progress = Progress("run x", stream=stream, first_s=0.0, every_s=0.0)
    progress(50, 100)
    assert stream.getvalue() == ""


def test_progress_lines_come_every_interval_not_every_call(monkeypatch):
    import io

    from memstack_capacity.cli import common

    monkeypatch.delenv("MEMSTACK_PROGRESS", raising=False)
    clock = iter([0.0, 4.0, 6.0, 7.0, 20.0, 36.5, 40.0])
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = common.Progress("run x", stream=stream)  # made at t = 0
    for done in (10, 20, 30, 40, 50, 60):  # at t = 4, 6, 7, 20, 36.5, 40
        progress(done, 100)
    assert stream.getvalue().splitlines() == [
        "run x: 20% (20 of 100 s simulated), 6 s elapsed, about 24 s left",
        "run x: 50% (50 of 100 s simulated), 36 s elapsed, about 36 s left",
    ]
