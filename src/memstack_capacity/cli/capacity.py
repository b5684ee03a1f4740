"""``capacity SCENARIO``: the most users (or req/s) that still meet every target.

Exit codes: 0 a passing load was found, 1 no load tried passes, 2 bad input.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from memstack_capacity.api.simulation import simulate
from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, add_scenario_arguments,
                                          load_from_args, output_dir_problem)
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "capacity",
        help="the most users (or req/s) that still meet every target",
        description="Scale the scenario's load profile (users, or rps for an open model) by a multiplier and "
        "bisect for the largest multiplier at which every replication (seeds seed..seed+K-1) meets every "
        "target. Exit 0 found, 1 none passes, 2 bad input.",
    )
    add_scenario_arguments(parser)
    parser.add_argument("--rel-tol", type=float, default=0.05, metavar="F",
                        help="stop when the bracket's upper/lower load ratio is at most 1+F (default 0.05)")
    parser.add_argument("--out", default=None, help="where to write capacity.json and capacity.md "
                        "(default: out/<scenario name>-capacity/)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
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

    def progress(trial):
        if sys.stderr.isatty():
            print(f"  ×{trial.multiplier:.3g}: {trial.load:.1f} → {trial.passed_runs}/{trial.runs} met", file=sys.stderr)

    try:
        result = find_capacity(scenario, replications=args.replications, seed=args.seed, rel_tol=args.rel_tol,
                               progress=progress, simulate=partial(simulate, engine=args.engine))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    header = f"scenario {scenario.name}: {args.replications} run(s) per load, a load passes when all meet every target"
    print(header)
    print(result.describe())
    try:
        write_capacity(result, header, out)
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"outputs: {out}/")
    return EXIT_OK if result.found else EXIT_FAILED


def write_capacity(result, header: str, out: Path) -> None:
    """capacity.json (the figures) and capacity.md (the same for people), swapped in together
    as a run's outputs are (:mod:`memstack_capacity.outputs.rundir`)."""
    lines = [f"# Capacity: {header.split(':')[0].removeprefix('scenario ')}", "", header + ".", ""]
    lines += ["    " + line for line in result.describe().splitlines()]
    lines += ["", "| load | runs meeting every target | verdict |", "|---|---|---|"]
    for t in result.trials:
        lines.append(f"| {t.load:.1f} | {t.passed_runs}/{t.runs} | {'pass' if t.passed else 'fail'} |")
    texts = {"capacity.json": summary_json(result.to_dict()), "capacity.md": "\n".join(lines) + "\n"}
    staging = new_staging(out)
    try:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        swap_in(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
