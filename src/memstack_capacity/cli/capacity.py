"""``capacity SCENARIO``: the most users (or req/s) that still meet every target.

capacity.json says, for every load tried, which engine judged it, which targets were missed in
how many runs, and which targets scale with the load (the throughput target). ``--screen fluid``
(the default) locates the bracket on the flow model first and judges only its ends and the
bisection inside it with the DES (:mod:`memstack_capacity.api.capacity_screen`). Exit codes: 0 a passing load was
found, 1 no load tried passes, 2 bad input, 3 the Dask scheduler (``--scheduler``) cannot be
reached.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.api.progress import TrialLines
from memstack_capacity.cli.common import (EXIT_BAD_INPUT, Progress,
                                          add_executor_arguments, add_format_argument, add_scenario_arguments,
                                          calibration_record, load_from_args, output_dir_problem, plan_line, say,
                                          scheduler_client, write_and_report)
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "capacity",
        help="the most users (or req/s) that still meet every target",
        description="Scale the scenario's load profile (users, or rps for an open model) by a multiplier and "
        "bisect for the largest multiplier at which every replication (seeds seed..seed+K-1) meets every "
        "target (the throughput target scales with the load). With --screen fluid (the default) the flow model "
        "locates the bracket in seconds and the DES judges its ends and bisects inside it. Exit 0 found, "
        "1 none passes, 2 bad input, 3 the scheduler cannot be reached.",
    )
    add_scenario_arguments(parser)
    parser.add_argument("--rel-tol", type=float, default=0.05, metavar="F",
                        help="stop when the bracket's upper/lower load ratio is at most 1+F (default 0.05)")
    parser.add_argument("--screen", choices=("fluid", "none"), default="fluid",
                        help="fluid (default): locate the bracket with the flow model (a second a run; latency "
                             "percentiles it lacks judged on mean × ln(1/(1−q)), exact for an exponential response "
                             "time), then judge its ends and bisect with the DES; the answer is always the DES's. "
                             "Where the flow model cannot run the scenario the search goes on without it. "
                             "none: every load on the DES, doubling from the scenario's load")
    parser.add_argument("--out", default=None, help="where to write capacity.json and capacity.md "
                        "(default: out/<scenario name>-capacity/)")
    add_executor_arguments(parser)
    add_format_argument(parser, "capacity.json")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.api.batch import runner
    from memstack_capacity.api.capacity import check_search, find_capacity

    if args.replications < 1 or not args.rel_tol > 0:
        print("error: --replications must be >= 1 and --rel-tol > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out) if args.out else Path("out") / f"{scenario.name}-capacity"
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    screen = None if args.screen == "none" else args.screen
    try:
        check_search(scenario, args.replications, args.rel_tol, screen)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    how = ("locating the bracket on the flow model, judging its ends and bisecting on the DES" if screen
           else "scaling the load up or down and bisecting")
    say(args, plan_line("capacity", scenario, args, args.replications, f"{how}; writing {out}/"))
    client = scheduler_client(args.scheduler)
    progress = _TrialProgress(f"capacity {scenario.name}")
    try:
        with runner(args.workers, client, args.engine, progress) as run_many:
            result = find_capacity(scenario, replications=args.replications, seed=args.seed, rel_tol=args.rel_tol,
                                   progress=progress.trial_done, run_many=run_many, screen=screen,
                                   engine=args.engine)
    finally:
        progress.close()
        if client is not None:
            client.close()
    header = f"scenario {scenario.name}: {args.replications} run(s) per load, a load passes when all meet every target"
    say(args, header)
    say(args, result.describe())
    return write_and_report(args, out, lambda: write_capacity(result, header, out, calibration_record(args)),
                            "capacity.json", result.found)


class _TrialProgress:
    """Progress of the search on stderr: the runs of the load being tried (a bar on a terminal,
    heartbeat lines elsewhere, :class:`~memstack_capacity.cli.common.Progress`), and one plain line
    per load when its runs are done, saying which engine judged it and which targets were missed
    (:class:`~memstack_capacity.api.progress.TrialLines`)."""

    def __init__(self, label: str):
        self.label, self.count = label, 1
        self.bar = Progress(f"{label}, load 1", unit="runs")
        self.lines = TrialLines(label)

    def __call__(self, done: float, total: int) -> None:
        self.bar(done, total)

    def trial_done(self, trial) -> None:
        self.bar.close()
        self.count += 1
        self.bar = Progress(f"{self.label}, load {self.count}", unit="runs")
        self.lines(trial)

    def close(self) -> None:
        self.bar.close()


def write_capacity(result, header: str, out: Path, calibration: list | None = None) -> None:
    """capacity.json (the figures, with the --calibration overlays used) and capacity.md (the same
    for people), swapped in together as a run's outputs are (:mod:`memstack_capacity.outputs.rundir`)."""
    lines = [f"# Capacity: {header.split(':')[0].removeprefix('scenario ')}", "", header + ".", ""]
    lines += ["    " + line for line in result.describe().splitlines()]
    lines += ["", "| load | engine | runs meeting every target | verdict | targets missed (runs) |",
              "|---|---|---|---|---|"]
    screened = result.screen.trials if result.screen is not None else []
    for t in [*screened, *result.trials]:
        missed = ", ".join(f"{m['name']} {m['kind']} {m['limit']:.4g}"
                           + (f" on {m['stand_in'].split(' (')[0]}" if m.get("stand_in") else "")
                           + f" ({m['missed_runs']}/{t.runs})" for m in t.missed)
        lines.append(f"| {t.load:.1f} | {t.engine} | {t.passed_runs}/{t.runs} | {'pass' if t.passed else 'fail'} | "
                     f"{missed or '–'} |")
    if screened:
        lines += ["", "Rows on `fluid` are the screen's: they chose where the DES looked; the capacity comes "
                      "from the other rows alone."]
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
