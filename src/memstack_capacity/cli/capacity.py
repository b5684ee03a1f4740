"""``capacity SCENARIO``: the most users (or req/s) that still meet every target.

capacity.json says, for every load tried, which targets were missed in how many runs, and
which targets scale with the load (the throughput target). Exit codes: 0 a passing load was
found, 1 no load tried passes, 2 bad input, 3 the Dask scheduler (``--scheduler``) cannot be
reached.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, PROGRESS_VARIABLE, Progress,
                                          add_executor_arguments, add_format_argument, add_scenario_arguments,
                                          calibration_record, load_from_args, output_dir_problem, plan_line, say,
                                          scheduler_client)
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "capacity",
        help="the most users (or req/s) that still meet every target",
        description="Scale the scenario's load profile (users, or rps for an open model) by a multiplier and "
        "bisect for the largest multiplier at which every replication (seeds seed..seed+K-1) meets every "
        "target (the throughput target scales with the load). Exit 0 found, 1 none passes, 2 bad input, "
        "3 the scheduler cannot be reached.",
    )
    add_scenario_arguments(parser)
    parser.add_argument("--rel-tol", type=float, default=0.05, metavar="F",
                        help="stop when the bracket's upper/lower load ratio is at most 1+F (default 0.05)")
    parser.add_argument("--out", default=None, help="where to write capacity.json and capacity.md "
                        "(default: out/<scenario name>-capacity/)")
    add_executor_arguments(parser)
    add_format_argument(parser, "capacity.json")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.api.batch import runner
    from memstack_capacity.api.capacity import find_capacity

    if args.replications < 1 or not args.rel_tol > 0:
        print("error: --replications must be >= 1 and --rel-tol > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out) if args.out else Path("out") / f"{scenario.name}-capacity"
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, plan_line("capacity", scenario, args, args.replications,
                        f"scaling the load up or down and bisecting; writing {out}/"))
    client = scheduler_client(args.scheduler)
    progress = _TrialProgress(f"capacity {scenario.name}")
    try:
        with runner(args.workers, client, args.engine, progress) as run_many:
            result = find_capacity(scenario, replications=args.replications, seed=args.seed, rel_tol=args.rel_tol,
                                   progress=progress.trial_done, run_many=run_many)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        progress.close()
        if client is not None:
            client.close()
    header = f"scenario {scenario.name}: {args.replications} run(s) per load, a load passes when all meet every target"
    say(args, header)
    say(args, result.describe())
    try:
        write_capacity(result, header, out, calibration_record(args))
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, f"outputs: {out}/")
    if args.format == "json":
        print((out / "capacity.json").read_text(encoding="utf-8"), end="", flush=True)
    return EXIT_OK if result.found else EXIT_FAILED


class _TrialProgress:
    """Progress of the search on stderr: the runs of the load being tried (a bar on a terminal,
    heartbeat lines elsewhere, :class:`~memstack_capacity.cli.common.Progress`), and one line per
    load when its runs are done, saying which targets were missed."""

    def __init__(self, label: str):
        self.label, self.count = label, 1
        self.bar = Progress(f"{label}, load 1", unit="runs")

    def __call__(self, done: float, total: int) -> None:
        self.bar(done, total)

    def trial_done(self, trial) -> None:
        self.bar.close()
        self.count += 1
        self.bar = Progress(f"{self.label}, load {self.count}", unit="runs")
        if os.environ.get(PROGRESS_VARIABLE, "") == "0" and not sys.stderr.isatty():
            return
        missed = ", ".join(f"{t['name']} ({t['missed_runs']}/{trial.runs})" for t in trial.missed)
        print(f"{self.label}: ×{trial.multiplier:.3g} = {trial.load:,.1f} → {trial.passed_runs}/{trial.runs} runs met "
              "every target" + (f"; missed: {missed}" if missed else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def write_capacity(result, header: str, out: Path, calibration: list | None = None) -> None:
    """capacity.json (the figures, with the --calibration overlays used) and capacity.md (the same
    for people), swapped in together as a run's outputs are (:mod:`memstack_capacity.outputs.rundir`)."""
    lines = [f"# Capacity: {header.split(':')[0].removeprefix('scenario ')}", "", header + ".", ""]
    lines += ["    " + line for line in result.describe().splitlines()]
    lines += ["", "| load | runs meeting every target | verdict | targets missed (runs) |", "|---|---|---|---|"]
    for t in result.trials:
        missed = ", ".join(f"{m['name']} {m['kind']} {m['limit']:.4g} ({m['missed_runs']}/{t.runs})" for m in t.missed)
        lines.append(f"| {t.load:.1f} | {t.passed_runs}/{t.runs} | {'pass' if t.passed else 'fail'} | {missed or '–'} |")
    if calibration:
        lines += ["", "Calibration: " + ", ".join(f"`{c['file']}` (sha256 {c['sha256'][:12]}…)" for c in calibration)]
    document = result.to_dict() | ({"calibration": calibration} if calibration else {})
    texts = {"capacity.json": summary_json(document), "capacity.md": "\n".join(lines) + "\n"}
    staging = new_staging(out)
    try:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        swap_in(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
