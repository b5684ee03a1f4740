"""The command line in CI: sub-command usage on errors, a line before simulating, heartbeats off a
terminal, ``check --out``, ``--format json``, ``--scheduler`` and replications that reuse run 1."""

from __future__ import annotations

import pytest

from memstack_capacity.cli import main


def test_an_unknown_option_prints_the_commands_usage_not_the_top_level_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "tests/data/minimal.yaml", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m memstack_capacity check " in err
    assert "check: error: unrecognized arguments: --bogus" in err


import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

from tests.factory import pod_scenario

ROOT = Path(__file__).resolve().parents[1]


def write_scenario(tmp_path, targets=None, duration=60.0, name="tiny.yaml"):
    """50 req/s into 2 pods, one cpu step of 10 ms (p99 ≈ 55 ms): a second or two per run."""
    data = pod_scenario(50, 0.01, replicas=2, duration=duration, warmup=10, name="tiny")
    data["targets"] = targets if targets is not None else {"throughput_rps": {"min": 40}, "latency_p99": {"max": "1s"}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- a line before simulating


def line_within(cmd, prefix: str, seconds: float, env) -> tuple[str | None, float]:
    """The first line starting with ``prefix`` the command writes on stdout or stderr (pipes, not
    a terminal) within ``seconds``, and when (None if none came)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()

    def read(stream):
        for line in stream:
            lines.append((time.perf_counter() - start, line))

    readers = [threading.Thread(target=read, args=(s,), daemon=True) for s in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()
    try:
        while time.perf_counter() - start < seconds:
            found = [(when, line) for when, line in list(lines) if line.startswith(prefix)]
            if found:
                return found[0][1], found[0][0]
            time.sleep(0.05)
        return None, time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()


def test_check_off_a_terminal_says_what_it_will_do_within_5_s(tmp_path):
    """Before simulating (the 10 simulated minutes of peak.yaml take far longer than 5 s), with
    stdout a pipe: the line is flushed, not held in a buffer until the end."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [sys.executable, "-m", "memstack_capacity", "check", "scenarios/peak.yaml", "--set", "duration=10m",
           "--out", str(tmp_path / "o")]
    # On a machine busy with other work, importing the package alone can take seconds: allow that.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import memstack_capacity.cli"], env=env, check=True)
    limit = max(5.0, (time.perf_counter() - started) + 2.0)
    line, when = line_within(cmd, "check peak: ", limit, env)
    assert line is not None, f"no line from check within {when:.1f} s"
    assert line.startswith("check peak: simulating 600 s (warm-up 120 s) at up to 1,200 users, seed 1")
    assert "judging 3 targets" in line and f"writing the outputs to {tmp_path / 'o'}/" in line


def test_the_heartbeat_goes_on_during_a_run_of_a_batch_here():
    """Runs done in this process report the share simulated, so a heartbeat line can come during them."""
    from memstack_capacity.api.batch import replicate
    from memstack_capacity.scenario.load import parse_scenario

    calls = []
    replicate(parse_scenario(pod_scenario(50, 0.01, duration=300, warmup=10)), 2, workers=2,
              progress=lambda done, total: calls.append(done))
    assert any(0 < d < 1 for d in calls) and calls[-1] == 2


# --------------------------------------------------------------------------- --format json


def test_run_format_json_prints_summary_json_on_stdout(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", str(write_scenario(tmp_path)), "--out", str(out), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads((out / "summary.json").read_text())
    assert "scenario tiny (seed 1" in captured.err  # the human summary, on stderr


def test_check_format_json_gives_the_verdicts_and_out_keeps_a_failed_run(tmp_path, capsys):
    path = write_scenario(tmp_path, {"throughput_rps": {"min": 40}, "latency_p99": {"max": "10ms"}})
    out = tmp_path / "o"
    assert main(["check", str(path), "--out", str(out), "--format", "json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "report.html").is_file() and (out / "requests.csv.gz").is_file()
    keys = ("name", "kind", "limit", "value", "met")
    assert [{k: t[k] for k in keys} for t in document["targets"]] == [{k: t[k] for k in keys} for t in summary["targets"]]
    assert document["passed"] is False and document["failed"] == ["latency_p99"]
    assert [t["verdict"] for t in document["targets"]] == ["met", "missed"]
    assert "FAILED: 1 of 2 checks" in captured.err and "MISSED" in captured.err


def test_capacity_format_json_is_capacity_json_with_the_missed_target_per_load(tmp_path, capsys):
    data = pod_scenario(50.0, 0.01, duration=60.0, warmup=10.0, name="cap")
    data["targets"] = {"latency_mean": {"max": 0.05}, "throughput_rps": {"min": 45}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "cap"
    assert main(["capacity", str(path), "--rel-tol", "0.5", "--out", str(out), "--format", "json"]) == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)
    assert figures == json.loads((out / "capacity.json").read_text())
    failed = [t for t in figures["trials"] if not t["passed"]]
    assert failed and all(t["failed_targets"] == ["latency_mean.max"] for t in failed)
    for trial in figures["trials"]:
        limits = {t["name"]: t["limit"] for t in trial["targets"]}
        assert limits["throughput_rps"] == pytest.approx(45 * trial["multiplier"])  # scaled with the load ...
        assert limits["latency_mean"] == 0.05
    assert "scales with the load" in figures["scaled_targets"]["throughput_rps"]  # ... and says so
    assert "missed: latency_mean (1/1)" in captured.err


def test_sweep_format_json_gives_the_csv_rows(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["sweep", str(write_scenario(tmp_path, duration=30.0)), "--grid", "deployments.api.replicas=2,3",
                 "--workers", "1", "--out", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    csv = pd.read_csv(out)
    assert list(rows[0]) == list(csv.columns) and len(rows) == len(csv) == 2
    pd.testing.assert_frame_equal(pd.DataFrame(rows)[csv.columns], csv, check_dtype=False)


def test_sweep_refuses_two_things_on_stdout(tmp_path, capsys):
    assert main(["sweep", str(write_scenario(tmp_path)), "--grid", "deployments.api.replicas=2", "--out", "-",
                 "--format", "json"]) == 2
    assert "both want stdout" in capsys.readouterr().err


# --------------------------------------------------------------------------- replications and --scheduler


def test_run_with_replications_simulates_k_runs_not_k_plus_1(tmp_path, monkeypatch):
    import memstack_capacity.api.batch as batch
    import memstack_capacity.api.simulation as simulation
    import memstack_capacity.engine.run as engine_run

    here, remote = [], []
    real_run, real_execute = engine_run.run, batch._execute

    def counting_run(*args, **kwargs):
        here.append(kwargs.get("seed"))
        return real_run(*args, **kwargs)

    def counting_execute(tasks, *args, first_here=False, **kwargs):
        remote.extend(task[1] for task in (tasks[1:] if first_here else tasks))
        return real_execute(tasks, *args, first_here=first_here, **kwargs)

    monkeypatch.setattr(simulation, "run", counting_run)
    monkeypatch.setattr(engine_run, "run", counting_run)  # where a SummaryResult would rebuild its frames
    monkeypatch.setattr(batch, "_execute", counting_execute)
    out = tmp_path / "o"
    assert main(["run", str(write_scenario(tmp_path, duration=30.0)), "--replications", "2", "--workers", "2",
                 "--out", str(out)]) == 0
    assert here == [1] and remote == [2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["replications"] == 2 and summary["seeds"] == [1, 2]


@pytest.mark.parametrize("argv", [
    ["run", "{s}", "--replications", "2"],
    ["check", "{s}", "--replications", "2"],
    ["capacity", "{s}"],
    ["sweep", "{s}", "--grid", "deployments.api.replicas=2,3"],
])
def test_an_unreachable_scheduler_has_its_own_error_and_exit_code(tmp_path, capsys, monkeypatch, argv):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed: pip install -e '.[dask]'")
    monkeypatch.setattr("memstack_capacity.cli.common.CONNECT_TIMEOUT", "1s")
    path = write_scenario(tmp_path)
    args = [a.format(s=path) for a in argv] + ["--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")]
    if argv[0] == "sweep":
        args[-1] = str(tmp_path / "o.csv")
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "error: cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in err
    assert "problem" not in err and not (tmp_path / "o").exists()


def test_replications_on_a_dask_cluster_give_the_local_figures(tmp_path, capsys):
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    path = write_scenario(tmp_path, duration=30.0)
    code = main(["check", str(path), "--replications", "2", "--workers", "1", "--format", "json"])
    local = json.loads(capsys.readouterr().out)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        assert main(["check", str(path), "--replications", "2", "--scheduler", cluster.scheduler_address,
                     "--format", "json"]) == code
    assert json.loads(capsys.readouterr().out)["targets"] == local["targets"]


# --------------------------------------------------------------------------- human verdicts


def test_verdict_lines_speak_in_human_names_and_units():
    from memstack_capacity.cli.run import format_summary  # noqa: F401 - the user of verdict_line
    from memstack_capacity.cli.verdicts import figure_value, verdict_line

    line = verdict_line({"name": "latency_p99", "kind": "max", "limit": 1.0, "value": 10.25, "met": False})
    assert line == "MISS  p99 latency  10.2 s  (target ≤ 1 s)"
    assert figure_value("latency_p99", 10.25) == "10.2 s" and figure_value("latency_mean", 0.0552) == "55.2 ms"
    assert figure_value("error_rate", 1.475e-05) == "0.00147 %"
    assert figure_value("throughput_rps", 392.37) == "392 req/s"
    assert "e+" not in figure_value("latency_p99", 10250.0) and "e-" not in figure_value("error_rate", 1e-9)


def test_anchor_sets_the_exported_times_and_a_bad_one_is_refused(tmp_path, capsys):
    """``--anchor`` is the wall-clock time of t = 0 in openmetrics.txt (first sample at t = 5 s);
    something that is not a time is refused before simulating, naming the option (exit 2)."""
    out = tmp_path / "o"
    small = str(ROOT / "scenarios" / "small.yaml")
    assert main(["run", small, "--set", "duration=1m", "--set", "warmup=10s", "--anchor", "2026-03-02T18:00:00Z",
                 "--out", str(out)]) == 0
    first = next(line for line in (out / "openmetrics.txt").read_text().splitlines() if line and line[0] != "#")
    assert float(first.split()[-1]) == pd_timestamp("2026-03-02T18:00:05Z")
    capsys.readouterr()
    assert main(["check", small, "--anchor", "yesterday-ish", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--anchor 'yesterday-ish' is not a time" in err and not (tmp_path / "c").exists()


def pd_timestamp(text: str) -> float:
    import pandas as pd

    return pd.Timestamp(text).timestamp()
