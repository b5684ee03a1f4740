"""Output safety: nothing of the user's is ever deleted, and a kill never leaves a half-written run.

A directory is a previous run only when it holds the marker the run wrote; anything else
in it, ``--out .``, a symlink or the current directory's parents are refused before
anything is simulated; outputs are swapped in atomically, and whatever a killed run left
beside them is cleaned up by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memstack_capacity.cli import main
from memstack_capacity.outputs import rundir
from memstack_capacity.outputs.files import write_run
from memstack_capacity.scenario.load import parse_scenario
from tests.factory import pod_scenario

ROOT = Path(__file__).resolve().parents[1]
SMALL = str(ROOT / "scenarios" / "small.yaml")
SHORT = ("--set", "duration=2m", "--set", "warmup=30s")


@pytest.fixture(scope="module")
def runs():
    """Two tiny runs (seeds 1 and 2) whose outputs differ."""
    from memstack_capacity import simulate

    scenario = parse_scenario(pod_scenario(5.0, 0.05, duration=60, warmup=10, sample_interval=5))
    return simulate(scenario, seed=1), simulate(scenario, seed=2)


@pytest.fixture
def no_simulation(monkeypatch):
    """Any simulation fails the test: the checks must come first."""
    import memstack_capacity.api.capacity as capacity
    import memstack_capacity.api.simulation as simulation

    def refuse(*args, **kwargs):
        raise AssertionError("simulated before the output directory was checked")

    monkeypatch.setattr(simulation, "simulate", refuse)
    monkeypatch.setattr(capacity, "find_capacity", refuse)


def tree(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (hidden ones included) → a hash of its bytes."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- refused before simulating ----------------------------------------------------------------


def test_a_user_file_beside_a_summary_is_refused_and_kept(tmp_path, capsys, no_simulation):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}", encoding="utf-8")
    (out / "thesis.tex").write_text("chapter 1", encoding="utf-8")
    assert main(["run", SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "thesis.tex" in err and rundir.MARKER in err and "Traceback" not in err
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "chapter 1" and (out / "summary.json").exists()


def test_a_user_file_added_to_a_previous_run_is_refused_and_kept(tmp_path, capsys, runs, no_simulation):
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    (out / "notes.md").write_text("mine", encoding="utf-8")
    (out / "plots").mkdir()
    (out / "plots" / "drawing.svg").write_text("<svg/>", encoding="utf-8")
    before = tree(out)
    assert main(["run", SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "notes.md" in err and "plots" in err
    assert tree(out) == before


@pytest.mark.parametrize("where", [".", "..", "cwd-absolute"])
def test_the_current_directory_and_its_parents_are_refused(tmp_path, monkeypatch, capsys, runs, no_simulation, where):
    run_dir = tmp_path / "o"
    write_run(runs[0], run_dir, report=False)
    monkeypatch.chdir(run_dir)
    before = tree(tmp_path)
    target = str(run_dir) if where == "cwd-absolute" else where
    assert main(["run", SMALL, "--out", target]) == 2
    assert "current directory or one of its parents" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_an_empty_current_directory_is_refused_before_simulating(tmp_path, monkeypatch, capsys, no_simulation):
    monkeypatch.chdir(tmp_path)
    assert main(["run", SMALL, "--out", "."]) == 2
    assert "--out ." in capsys.readouterr().err


def test_a_symlink_is_refused_and_its_target_kept(tmp_path, capsys, runs, no_simulation):
    real = tmp_path / "real"
    write_run(runs[0], real, report=False)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = tree(real)
    assert main(["run", SMALL, "--out", str(link)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert link.is_symlink() and tree(real) == before


def test_a_symlink_inside_a_previous_run_is_foreign(tmp_path, runs):
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    (out / "pods.csv").unlink()
    (out / "pods.csv").symlink_to(tmp_path)
    assert "pods.csv" in rundir.problem(out)


def test_capacity_checks_its_out_before_searching(tmp_path, capsys, no_simulation):
    out = tmp_path / "c"
    out.mkdir()
    (out / "keep.txt").write_text("x", encoding="utf-8")
    assert main(["capacity", SMALL, "--out", str(out)]) == 2
    assert "keep.txt" in capsys.readouterr().err and (out / "keep.txt").exists()


# ---- what is written --------------------------------------------------------------------------


def test_a_previous_run_is_replaced_whole_and_its_marker_lists_every_file(tmp_path, runs):
    out = tmp_path / "o"
    write_run(runs[0], out)
    first = tree(out)
    write_run(runs[1], out)
    marker = json.loads((out / rundir.MARKER).read_text(encoding="utf-8"))
    assert marker["tool"] == "memstack-capacity" and marker["version"] and marker["state"] == "complete"
    assert set(marker["files"]) | {rundir.MARKER} == set(tree(out))
    assert {"plots", "manifests"} <= set(marker["dirs"])
    assert tree(out) != first and siblings(out) == []
    assert rundir.problem(out) is None


def test_an_old_run_without_a_marker_is_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}", encoding="utf-8")
    assert "no .memstack-run.json" in rundir.problem(out)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_directories_follow_the_umask(tmp_path, runs, mask):
    old = os.umask(mask)
    try:
        out = tmp_path / "new" / "o"
        write_run(runs[0], out)
    finally:
        os.umask(old)
    for path in (out.parent, out, out / "plots", out / "manifests"):
        assert path.stat().st_mode & 0o777 == 0o777 & ~mask, path
    assert (out / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_the_swap_without_rename_exchange_also_works(tmp_path, runs, monkeypatch):
    monkeypatch.setattr(rundir, "_exchange", lambda a, b: False)
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    write_run(runs[1], out, report=False)
    assert json.loads((out / "summary.json").read_text())["seed"] == 2 and siblings(out) == []


# ---- what a killed run leaves -----------------------------------------------------------------


def test_a_half_done_swap_is_rolled_back_and_stale_folders_removed(tmp_path, runs):
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    good = tree(out)
    pid = dead_pid()
    out.rename(tmp_path / f".o.old-{pid}")  # killed between the two renames
    staged = tmp_path / f".o.partial-{pid}-0abc"
    staged.mkdir()
    (staged / "summary.json").write_text("{", encoding="utf-8")
    rundir.write_marker(staged, "writing")
    (tmp_path / f".o.partial-{pid}-0def").mkdir()  # killed before its marker
    (tmp_path / f".o.partial-{pid}-0fed").mkdir()  # killed between writing its marker and the rename
    (tmp_path / f".o.partial-{pid}-0fed" / rundir.MARKER_TMP).write_text("{", encoding="utf-8")
    assert rundir.prepare(out) is None
    assert tree(out) == good and siblings(out) == []


def test_a_removal_killed_halfway_keeps_the_marker_and_the_next_run_finishes_it(tmp_path, runs, monkeypatch):
    """A stale staging folder is removed marker last: killed after a few files, the folder still
    says it is ours, and the next run removes the rest (with the marker gone first it would stay)."""
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    staged = tmp_path / f".o.partial-{dead_pid()}-0abc"
    write_run(runs[1], staged, report=False)
    rundir.write_marker(staged, "writing")
    unlinked = []

    def killed_after_three(self, *args, **kwargs):
        if len(unlinked) == 3:
            raise KeyboardInterrupt("killed")
        unlinked.append(self.name)
        real_unlink(self, *args, **kwargs)

    real_unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        rundir.prepare(out)
    monkeypatch.undo()
    assert len(unlinked) == 3 and rundir.read_marker(staged)["state"] == "writing"
    assert rundir.prepare(out) is None and siblings(out) == []


def test_stale_folders_of_a_live_writer_or_without_a_marker_are_left_alone(tmp_path, runs):
    out = tmp_path / "o"
    write_run(runs[0], out, report=False)
    live = tmp_path / f".o.partial-{os.getppid()}-0abc"
    live.mkdir()
    rundir.write_marker(live, "writing")
    foreign = tmp_path / f".o.old-{dead_pid()}"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x", encoding="utf-8")
    assert rundir.prepare(out) is None
    assert live.is_dir() and (foreign / "mine.txt").exists()


def _write_in_child(result, out: Path, exchange: bool, report: bool) -> int:
    """Fork a child that does what ``run`` does after simulating: check, then write."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if not exchange:
                rundir._exchange = lambda a, b: False
            code = 0 if rundir.prepare(out) is None and write_run(result, out, report=report) else 1
        finally:
            os._exit(code)
    return pid


def _timed_write(result, out: Path, report: bool) -> float:
    t0 = time.perf_counter()
    pid = _write_in_child(result, out, True, report)
    assert os.waitpid(pid, 0)[1] == 0
    return time.perf_counter() - t0


def test_killed_at_random_moments_of_writing_leaves_the_old_run_or_the_new_one(tmp_path, runs):
    """SIGKILL at random instants of the output phase, many times: NAME is always one complete
    run (with the exchange, even before the next run recovers), and the next run leaves nothing else.

    Most writes leave out the report (tens of ms, so kills land in the swap as often as in the
    files); every fifth is complete (plots and report, seconds); every third swaps without the exchange.
    """
    refs = []
    for i, result in enumerate(runs):
        for report in (False, True):
            write_run(result, tmp_path / f"ref{i}{report}", report=report)
            refs.append(tree(tmp_path / f"ref{i}{report}"))
    out = tmp_path / "work" / "o"
    write_run(runs[0], out)
    write_s = {report: _timed_write(runs[1], out, report) for report in (False, True)}
    rng = random.Random(15)
    kills, tries, start = 0, 0, time.perf_counter()
    while kills < 24 and tries < 100:
        tries += 1
        seed = 0 if tree(out) in refs[:2] else 1
        exchange, report = tries % 3 != 0, tries % 5 == 0
        pid = _write_in_child(runs[1 - seed], out, exchange, report)
        time.sleep(rng.uniform(0.0, 1.1 * write_s[report]))
        os.kill(pid, signal.SIGKILL)
        kills += os.WIFSIGNALED(os.waitpid(pid, 0)[1])
        if not exchange:
            rundir.recover(out)
        assert tree(out) in refs, f"kill {tries}: neither the old run nor the new one"
    print(f"{kills} kills in {tries} writes, {time.perf_counter() - start:.1f} s")
    assert kills >= 20, (kills, tries)
    _timed_write(runs[0], out, True)
    left = {name: sorted(p.relative_to(out.parent / name).as_posix() for p in (out.parent / name).rglob("*"))
            for name in siblings(out)}
    assert tree(out) == refs[1] and left == {}


def test_the_command_killed_at_random_leaves_a_complete_run(tmp_path):
    """The real command in a subprocess, killed at random moments (simulating or writing)."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(json.dumps(pod_scenario(5.0, 0.05, duration=60, warmup=10)), encoding="utf-8")
    out = tmp_path / "work" / "o"
    cmd = [sys.executable, "-m", "memstack_capacity", "run", str(scenario), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    assert subprocess.run([*cmd, "--seed", "1"], env=env, capture_output=True).returncode == 0
    runs = [tree(out)]
    t0 = time.perf_counter()
    assert subprocess.run([*cmd, "--seed", "2"], env=env, capture_output=True).returncode == 0
    whole_s = time.perf_counter() - t0
    runs.append(tree(out))
    rng = random.Random(7)
    for seed in (1, 2):
        proc = subprocess.Popen([*cmd, "--seed", str(seed)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5 * whole_s, 1.05 * whole_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert tree(out) in runs
    assert subprocess.run([*cmd, "--seed", "1"], env=env, capture_output=True).returncode == 0
    assert tree(out) == runs[0] and siblings(out) == []


# ---- the smaller points -----------------------------------------------------------------------


def test_report_md_escapes_html_from_the_description():
    from memstack_capacity import simulate
    from memstack_capacity.outputs.report import render_markdown

    data = pod_scenario(5.0, 0.05, duration=30, warmup=5)
    data["description"] = "Peak <script>alert(1)</script> & <b>bold</b>, p99 < 1 s"
    md = render_markdown(simulate(parse_scenario(data), seed=1))
    assert "&lt;script>alert(1)&lt;/script>" in md and "&lt;b>bold&lt;/b>" in md and "p99 < 1 s" in md
    assert "<script" not in md and "<b>" not in md


def test_arrived_counts_the_whole_run_and_the_rest_after_the_warm_up(runs):
    result = runs[0]
    req = result.summary["requests"]
    assert req["arrived"] == len(result.requests) + req["in_flight_end"]
    measured = result.requests[result.requests["t_arrival_s"] >= result.scenario.warmup]
    assert req["completed"] + req["failed"] == len(measured) < len(result.requests)


@pytest.mark.parametrize("engine", ["des", "kernel", "hybrid", "fluid"])
def test_timeseries_has_the_last_interval(engine):
    from memstack_capacity import simulate

    data = pod_scenario(5.0, 0.05, duration=60, warmup=10, sample_interval=5)
    times = sorted(simulate(parse_scenario(data), seed=1, engine=engine).timeseries["t_s"].unique())
    assert times[0] == 5.0 and times[-1] == 60.0 and len(times) == 12
