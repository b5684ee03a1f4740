"""Arguments and helpers the commands share: the exit codes, the scenario, --seed, --set, progress."""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path

# PROGRESS_VARIABLE (MEMSTACK_PROGRESS=0 silences the progress lines off a terminal) is the API's,
# which writes the capacity search's lines too.
from memstack_capacity.api.progress import PROGRESS_VARIABLE  # noqa: F401  (the commands import it from here)
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.engine import capabilities
from memstack_capacity.scenario import safe_yaml
from memstack_capacity.scenario.load import load_scenario

#: The contract's exit codes: 0 done (targets met, a load found), 1 the simulation failed or its
#: answer is no (a target missed, no load passes), 2 bad input (nothing was simulated), 3 the
#: Dask scheduler given by --scheduler cannot be used (nothing was simulated; retry when it is up).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

#: How long to wait for a Dask scheduler before giving up (exit EXIT_UNAVAILABLE).
CONNECT_TIMEOUT = "15s"


class SchedulerUnavailable(Exception):
    """The Dask scheduler named by --scheduler cannot be reached, or Dask is not installed."""


#: The environment variable that lifts the limits on scale, as --allow-large does.
ALLOW_LARGE_VARIABLE = "MEMSTACK_ALLOW_LARGE"

#: The environment variable that picks the engine when --engine is not given.
ENGINE_VARIABLE = "MEMSTACK_ENGINE"
ENGINE_CHOICES = ("auto", *capabilities.ENGINES)


def add_scenario_arguments(parser, replications: bool = True, seed: bool = True) -> None:
    """SCENARIO, --set, and for a command that simulates --seed, --engine (and --replications)."""
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario YAML file")
    if seed:
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
        parser.add_argument("--engine", default=None, metavar="ENGINE",
                            help=f"{', '.join(ENGINE_CHOICES)} (default: ${ENGINE_VARIABLE}, else auto: the fastest "
                                 "engine that models everything the scenario uses; docs/performance.md)")
        parser.add_argument("--allow-large", action="store_true",
                            help=f"run even beyond the limits on scale (users, pods, requests, duration, runs, "
                                 f"memory; also ${ALLOW_LARGE_VARIABLE}=1; docs/reference/limits.md)")
    if seed:
        parser.add_argument("--calibration", action="append", default=[], metavar="FILE",
                            help="an overlay written by `calibrate` (calibration.yaml, replay.yaml): its keys are "
                                 "applied like --set, before it (--set wins); repeatable; the summary records "
                                 "each file's name and SHA-256")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value by dotted path, e.g. deployments.api.hpa.maxReplicas=30 (repeatable)",
    )
    if replications:
        parser.add_argument("--replications", type=int, default=1, metavar="K", help="independent runs (seeds seed..seed+K-1)")


def add_executor_arguments(parser, scheduler: bool = True) -> None:
    """--workers N and --scheduler ADDRESS: where a command's many runs go."""
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local processes for the runs (default: one per CPU; 1 runs them in this process)")
    if scheduler:
        parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                            help="a Dask scheduler address, e.g. tcp://10.0.0.5:8786, to run the runs on its "
                                 "cluster instead of local processes (needs pip install 'memstack-capacity[dask]'; "
                                 f"exit {EXIT_UNAVAILABLE} when it cannot be reached)")


def add_format_argument(parser, what: str) -> None:
    """--format text|json: json puts ``what`` on stdout for machines and the human text on stderr."""
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help=f"json: print {what} as JSON on stdout, and the human-readable text on stderr")


def human_stream(args):
    """Where the human-readable text goes: stdout, or stderr when stdout carries --format json."""
    return sys.stderr if getattr(args, "format", "text") == "json" else sys.stdout


def say(args, text: str = "") -> None:
    """Print human-readable text at once (flushed: a CI log shows it as it happens, not at exit)."""
    print(text, file=human_stream(args), flush=True)


def scheduler_client(address: str | None):
    """A ``distributed.Client`` for ``address``, or None without one; SchedulerUnavailable when
    Dask is missing or the scheduler does not answer within CONNECT_TIMEOUT."""
    if not address:
        return None
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerUnavailable(f"--scheduler {address} needs Dask: pip install 'memstack-capacity[dask]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerUnavailable(f"cannot connect to the Dask scheduler at {address} (waited {CONNECT_TIMEOUT}): "
                                   f"{exc}; check the address and that the scheduler is up, or leave out "
                                   "--scheduler to run on local processes") from None


def calibration_record(args) -> list[dict] | None:
    """What the summary records of the overlays given with --calibration: each file's name, path,
    SHA-256 and number of keys, in the order applied; None without any."""
    used = getattr(args, "calibration_used", None)
    return [dict(u) for u in used] if used else None


def plan_line(command: str, scenario, args, runs: int = 1, then: str = "", before: str = "") -> str:
    """What a command is about to simulate, said before it starts: ``check peak: simulating 3,600 s
    (warm-up 300 s) of 1,200 users, seed 1, on the general engine; then judging 3 targets``."""
    wl = scenario.workload
    load = (f"{max(p.users for p in wl.users.profile):,} users" if wl.users is not None
            else f"{max(p.rps for p in wl.arrivals.profile):,.4g} req/s")
    seed = scenario.seed if getattr(args, "seed", None) is None else args.seed
    k = getattr(args, "replications", 1)
    seeds = f"seed {seed}" if k == 1 else f"seeds {seed}..{seed + k - 1}"
    if runs > 1:
        seeds = f"{runs} runs, {seeds}"
    engine = getattr(args, "engine_chosen", None)
    where = ""
    if runs > 1:
        where = f" on {args.scheduler}" if getattr(args, "scheduler", None) else \
            f" on {min(getattr(args, 'workers', None) or os.cpu_count() or 1, runs)} local process(es)"
    text = (f"{command} {scenario.name}: {before}simulating {scenario.duration:,.0f} s (warm-up {scenario.warmup:,.0f} s) "
            f"at up to {load}, {seeds}{where}" + (f", {ENGINE_NAMES.get(engine, engine)} engine" if engine else ""))
    used = getattr(args, "calibration_used", None)
    if used:
        text += ", calibrated by " + ", ".join(f"{u['file']} (sha256 {u['sha256'][:12]}…)" for u in used)
    return text + (f"; then {then}" if then else "")


#: Engines by the names people use.
ENGINE_NAMES = {"des": "general", "fast": "compiled data plane", "kernel": "per-pod kernel", "hybrid": "batched data plane", "fluid": "fluid"}


#: The largest scenario file the commands read: the loader's own limit, checked here on the file's
#: size before anything is read (a log or a disk image given by mistake).
MAX_SCENARIO_BYTES = safe_yaml.MAX_BYTES


def check_scenario_file(path) -> None:
    """A ScenarioError unless ``path`` is a regular file of at most MAX_SCENARIO_BYTES.

    Checked before reading, so that ``/dev/zero``, a pipe or a huge file is refused at once
    instead of being read until memory runs out. A missing file or a directory is left to
    the loader, which names those cases itself.
    """
    try:
        info = os.stat(path)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError([Problem("", "is not a regular file (a device, pipe or socket); give a scenario YAML file")],
                            str(path))
    if info.st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError([Problem("", f"not accepted: {info.st_size:,} bytes, larger than {MAX_SCENARIO_BYTES:,} "
                                         "bytes (the limit MAX_BYTES)")], str(path))


def argument_problem(args) -> str | None:
    """What is wrong with the numeric flags every command shares (--seed, --replications, --workers), or None."""
    seed = getattr(args, "seed", None)
    if seed is not None and seed < 0:
        return f"--seed must be a whole number 0 or more, got {seed}"
    replications = getattr(args, "replications", None)
    if replications is not None and replications < 1:
        return f"--replications must be at least 1, got {replications}"
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        return f"--workers must be at least 1 (or left out for one per CPU), got {workers}"
    return None


def load_from_args(args, simulates: bool = True):
    """The scenario the arguments name, with its --set overrides; for a command that simulates,
    also settles ``args.engine`` (--engine, else $MEMSTACK_ENGINE, else auto) and checks that
    engine can run the scenario, saying on stderr when auto has to take the slow general engine."""
    overrides, origin = {}, {}
    for path in getattr(args, "calibration", None) or ():
        from memstack_capacity.calibration.overlay import load as load_overlay

        keys, digest = load_overlay(path)
        for key, value in keys.items():
            overrides.pop(key, None)
            overrides[key] = value
            origin[key] = f"--calibration {path}: {key}"
        args.calibration_used = [*getattr(args, "calibration_used", []),
                                 {"file": Path(path).name, "path": str(path), "sha256": digest, "keys": len(keys)}]
    if args.overrides:
        from memstack_capacity.scenario.overrides import parse_set_argument

        for item in args.overrides:
            key, value = parse_set_argument(item)
            overrides.pop(key, None)
            overrides[key] = value
            origin.pop(key, None)
    check_scenario_file(args.scenario)
    scenario = load_scenario(args.scenario, overrides or None, label=lambda p: origin.get(p, f"--set {p}"))
    if simulates:
        engine = settle_engine(args, scenario)
        check_scale(args, scenario, engine)
    return scenario


def check_scale(args, scenario, engine: str) -> None:
    """A ScenarioError (exit 2, before simulating) when the run would pass a limit on scale,
    unless --allow-large or $MEMSTACK_ALLOW_LARGE lifts them."""
    from memstack_capacity.engine.scale import scale_problems

    if getattr(args, "allow_large", False) or os.environ.get(ALLOW_LARGE_VARIABLE, "") not in ("", "0"):
        return
    runs = getattr(args, "replications", 1) * getattr(args, "variants", 1)
    parallel = 1 if runs == 1 else min(getattr(args, "workers", None) or os.cpu_count() or 1, runs)
    problems = scale_problems(scenario, engine, runs=runs, parallel=parallel)
    if problems:
        lift = f"; --allow-large (or {ALLOW_LARGE_VARIABLE}=1) runs it anyway (docs/reference/limits.md)"
        raise ScenarioError([Problem(p.field, p.message + lift, p.value, p.has_value) for p in problems],
                            str(args.scenario))


def settle_engine(args, scenario) -> str:
    """``args.engine`` from --engine (or run's --mode fluid), else the environment, else auto; checked.
    Returns the engine that will run (auto's choice)."""
    from memstack_capacity.engine.capabilities import choose, fallback_note

    source = str(args.scenario)
    field, requested = "--engine", getattr(args, "engine", None)
    if getattr(args, "mode", None) == "fluid":
        if requested not in (None, "fluid"):
            raise ScenarioError([Problem("--mode", "fluid contradicts --engine (give one of them)", requested, True)],
                                source)
        requested = "fluid"
    if requested is None and os.environ.get(ENGINE_VARIABLE):
        field, requested = ENGINE_VARIABLE, os.environ[ENGINE_VARIABLE]
    requested = requested or "auto"
    if requested not in ENGINE_CHOICES:
        hint = " (an environment variable; unset it for auto)" if field == ENGINE_VARIABLE else ""
        raise ScenarioError([Problem(field, f"must be one of {', '.join(ENGINE_CHOICES)}{hint}", requested, True)],
                            source)
    try:
        choice = choose(scenario, requested)
    except ScenarioError as exc:
        raise ScenarioError([Problem(field, p.message, p.value, p.has_value) for p in exc.problems], source) from None
    note = fallback_note(choice)
    if note:
        print(note, file=sys.stderr)
    args.engine = requested
    args.engine_chosen = choice.engine
    return choice.engine


def output_dir_problem(out: Path) -> str | None:
    """Why ``out`` cannot take a run's outputs, or None; before anything is simulated.

    A directory is replaced only when it is new, empty, or a previous run's outputs holding
    nothing but what the run wrote (its marker lists it); what a killed run left beside it
    is finished first (:func:`memstack_capacity.outputs.rundir.prepare`).
    """
    from memstack_capacity.outputs.rundir import prepare

    return prepare(out)



def write_and_report(args, out: Path, write, json_name: str, found: bool) -> int:
    """Call ``write()`` (which swaps the outputs into ``out``), say where they went, print
    ``out/json_name`` on stdout under ``--format json``, and give the exit code: 0 when
    ``found``, 1 when not, 2 when ``out`` cannot be written."""
    try:
        write()
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, f"outputs: {out}/")
    if args.format == "json":
        print((out / json_name).read_text(encoding="utf-8"), end="", flush=True)
    return EXIT_OK if found else EXIT_FAILED


#: Off a terminal: the first progress line after this many seconds, then one every HEARTBEAT_EVERY_S.
HEARTBEAT_FIRST_S, HEARTBEAT_EVERY_S = 5.0, 30.0


class Progress:
    """Progress on stderr, as ``progress(done, total)`` is called.

    On a terminal: a bar drawn by rich (:class:`~memstack_capacity.api.progress.RichBar`), after
    the first ``delay_s``. Elsewhere (a CI log, a file), where a redrawn bar would be noise or
    nothing at all (rich draws no bar off a terminal), the heartbeat is kept hand-written:
    a plain line after ``first_s`` and then every ``every_s`` (HEARTBEAT_FIRST_S, HEARTBEAT_EVERY_S), with the share done, the time
    elapsed and an estimate of the time left, so a long run shows that it is alive and when it
    will end; a run shorter than ``first_s`` writes nothing. ``unit`` is ``"s"`` (simulated
    seconds) or what is counted (``"runs"``, ``"configurations"``).
    """

    def __init__(self, label: str, delay_s: float = 2.0, stream=None, unit: str = "s",
                 first_s: float | None = None, every_s: float | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = self.tty or os.environ.get(PROGRESS_VARIABLE, "") != "0"
        self.start = time.perf_counter()
        self.delay_s = delay_s
        self.unit = unit
        self.every_s = HEARTBEAT_EVERY_S if every_s is None else every_s
        self.next_line_s = HEARTBEAT_FIRST_S if first_s is None else first_s
        self.bar = None

    def __call__(self, done: float, total: float) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = min(1.0, done / total) if total else 1.0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        if self.tty:
            if elapsed < self.delay_s and done < total:
                return
            if self.bar is None:
                from memstack_capacity.api.progress import RichBar

                self.bar = RichBar(self.label, self.stream)
            count = f"{int(done):,}/{total:,.0f} {self.unit}" if self.unit != "s" else f"sim {done:,.0f}/{total:,.0f} s"
            self.bar.update(done, total, count)
        elif elapsed >= self.next_line_s and done < total:
            self.stream.write(heartbeat_line(self.label, done, total, elapsed, eta, self.unit) + "\n")
            self.stream.flush()
            self.next_line_s = elapsed + self.every_s

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def heartbeat_line(label: str, done: float, total: float, elapsed: float, eta: float, unit: str = "s") -> str:
    """``run peak: 42% (1,512 of 3,600 s simulated), 31 s elapsed, about 43 s left``."""
    frac = done / total if total else 1.0
    # Runs: whole runs done (``done`` also counts the share of a run under way).
    what = f"{int(done):,} of {total:,.0f} {unit} done" if unit != "s" else f"{done:,.0f} of {total:,.0f} s simulated"
    left = f"about {_clock(eta)} left" if done > 0 else "the time left not yet known"
    return f"{label}: {frac:.0%} ({what}), {_clock(elapsed)} elapsed, {left}"


def _clock(seconds: float) -> str:
    """``43 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def add_anchor_argument(parser) -> None:
    """--anchor: the wall-clock time of simulated t = 0 in openmetrics.txt and the Grafana dashboard."""
    parser.add_argument("--anchor", metavar="TIME", default=None,
                        help="wall-clock time of simulated t = 0 in openmetrics.txt and grafana-dashboard.json: "
                             "ISO 8601 (UTC without a zone) or Unix seconds (default 2026-01-01T00:00:00Z)")


def anchor_problem(args) -> str | None:
    """Why ``--anchor`` is not a time, or None."""
    from memstack_capacity.results.result import anchor_timestamp

    if args.anchor is None:
        return None
    value = float(args.anchor) if re.fullmatch(r"[+-]?\d+(\.\d+)?", args.anchor) else args.anchor
    try:
        anchor_timestamp(value)
    except (ValueError, OverflowError):
        return (f"--anchor {args.anchor!r} is not a time: give ISO 8601 (e.g. 2026-03-02T18:00:00Z) "
                "or Unix seconds")
    args.anchor = value
    return None
