"""``sweep SCENARIO --grid key=v1,v2 …``: every combination, K replications each, one CSV row per run.

Each ``--grid`` names a dotted scenario key and its values, comma-separated and read
as YAML (``deployments.api.replicas=2,4,8``, ``duration=30m,1h``,
``deployments.api.resources.limits.cpu=500m,1``). The CSV is the long DataFrame of
:func:`memstack_capacity.sweep`: ``run_id, variant, replication, seed``, the grid keys,
then the summary figures. Replication r of every variant runs with the same seed
(common random numbers). Runs go to a local process pool (``--workers N``; 1 runs
them in this process) or to a Dask scheduler (``--scheduler tcp://host:8786``, needs
``pip install 'memstack-capacity[dask]'``). ``--format json`` prints the rows on stdout
as JSON objects. Exit 0, 2 for bad input (a grid key that names nothing is reported
with the nearest keys), or 3 when the scheduler cannot be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

import yaml

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_OK, Progress, add_executor_arguments,
                                          add_format_argument, add_scenario_arguments, load_from_args, plan_line,
                                          say, scheduler_client)
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.scenario import safe_yaml


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="simulate every combination of --grid values; one CSV row per run",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scenario_arguments(parser)
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a dotted key and its comma-separated values (repeatable; the grid is their product)")
    add_executor_arguments(parser)
    add_format_argument(parser, "the rows (one object per run, the CSV's columns)")
    parser.add_argument("--out", default=None, metavar="FILE.csv",
                        help="the CSV to write (default: out/<scenario name>-sweep.csv; - for stdout)")
    parser.set_defaults(handler=handle)


def parse_grid_argument(text: str) -> tuple[str, list]:
    """``"deployments.api.replicas=2,4"`` → ``("deployments.api.replicas", [2, 4])``; values read as YAML,
    with the safe loader's limits (no duplicate keys, bounded depth, aliases and size)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ScenarioError([Problem(f"--grid {text}", "expected dotted.key=v1,v2,…, e.g. deployments.api.replicas=2,4,8")])
    try:
        values = safe_yaml.load_text(f"[{raw}]")  # the limits of scenario files and --set values
    except ValueError as exc:
        raise ScenarioError([Problem(f"--grid {text}", str(exc))]) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise ScenarioError([Problem(f"--grid {text}", f"the values are not valid YAML: {problem}")]) from None
    if not values or any(v is None for v in values):
        raise ScenarioError([Problem(f"--grid {text}", "every value must be non-empty (values are separated by commas)")])
    return key, values


def parse_grid_arguments(texts: list[str]) -> dict[str, list]:
    grid: dict[str, list] = {}
    problems = []
    for text in texts:
        key, values = parse_grid_argument(text)
        if key in grid:
            problems.append(Problem(f"--grid {text}", f"`{key}` is already in the grid; give all its values in one --grid"))
        grid[key] = values
    if problems:
        raise ScenarioError(problems)
    return grid


def handle(args) -> int:
    from memstack_capacity.api.batch import sweep

    for flag, value in (("--replications", args.replications), ("--workers", args.workers)):
        if value is not None and value < 1:
            print(f"error: {flag} must be at least 1, got {value}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if not args.grid:
        print("error: give at least one --grid KEY=V1,V2", file=sys.stderr)
        return EXIT_BAD_INPUT
    grid = parse_grid_arguments(args.grid)
    args.variants = math.prod(len(values) for values in grid.values())
    if args.out == "-" and args.format == "json":
        print("error: --out - and --format json both want stdout; give --out FILE.csv with --format json",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    check_variants_scale(args, scenario, grid)
    runs = args.variants * args.replications
    where = "stdout" if args.out == "-" else (args.out or f"out/{scenario.name}-sweep.csv")
    line = plan_line("sweep", scenario, args, runs, f"writing one CSV row per run to {where}",
                     before=f"{args.variants} variant(s) of the grid, ")
    print(line, file=sys.stderr if args.out == "-" or args.format == "json" else sys.stdout, flush=True)
    client = scheduler_client(args.scheduler)
    progress = Progress(f"sweep {scenario.name}", unit="runs")
    try:
        frame = sweep(scenario, grid, replications=args.replications, seed=args.seed, workers=args.workers,
                      client=client, engine=args.engine, progress=progress)
    finally:
        progress.close()
        if client is not None:
            client.close()
    if args.out == "-":
        frame.to_csv(sys.stdout, index=False)
        return EXIT_OK
    out = Path(args.out) if args.out else Path("out") / f"{scenario.name}-sweep.csv"
    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(partial, index=False)
        partial.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    variants = int(frame["variant"].max()) + 1 if len(frame) else 0
    say(args, f"sweep {scenario.name}: {variants} variant{'s' if variants != 1 else ''} × "
              f"{args.replications} replication{'s' if args.replications != 1 else ''} = {len(frame)} runs")
    say(args, _overview(frame, list(grid)))
    say(args, f"wrote {out}")
    if args.format == "json":
        print(summary_json(rows_document(frame)), end="", flush=True)
    return EXIT_OK


def check_variants_scale(args, scenario, grid: dict[str, list]) -> None:
    """Every variant of the grid within the limits on scale, as the scenario itself was checked:
    a grid can take it past one (``deployments.api.replicas=2,20000``). A ScenarioError naming
    the first variant over a limit, before anything is simulated, unless --allow-large."""
    from memstack_capacity.api.batch import check_grid_keys, expand_grid
    from memstack_capacity.cli.common import check_scale
    from memstack_capacity.engine.capabilities import choose

    check_grid_keys(scenario, grid)
    for point in expand_grid(grid):
        configured = scenario.with_overrides(point)
        try:
            check_scale(args, configured, choose(configured, args.engine or "auto").engine)
        except ScenarioError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise ScenarioError([Problem(f"--grid ({where})", p.message, p.value, p.has_value)
                                 for p in exc.problems], str(args.scenario)) from None


def rows_document(frame) -> list[dict]:
    """The CSV's rows as JSON-ready objects: the same columns, numbers as numbers, empty cells as null."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _overview(frame, keys: list[str]) -> str:
    """The headline means per variant, for a glance on the terminal."""
    columns = [c for c in ("requests.throughput_rps", "requests.error_rate", "requests.latency_s.p99", "met")
               if c in frame.columns]
    table = frame.groupby(["variant", *keys], sort=False, dropna=False)[columns].mean(numeric_only=False)
    return table.to_string(float_format=lambda v: f"{v:.4g}")
