"""``recommend SCENARIO… --space FILE``: the cheapest configuration in a space that meets every target.

Every configuration of the space file (dotted scenario keys and their values or ranges,
docs/recommend.md) is applied to every scenario, screened with the flow model, and the ones
that may pass are simulated in increasing cost, K replications per scenario with the same seeds
for every configuration, until the cheapest that meets every target in every run is found; its
neighbours along each key are simulated too. Writes recommend.json, recommend.md, manifests/,
manifests.diff and pareto.png to --out. Exit codes: 0 a configuration passes, 1 none does (the
report says what bounds the space), 2 bad input (the scenario, the space file, an option), 3 the
Dask scheduler (--scheduler) cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, PROGRESS_VARIABLE, Progress,
                                          add_executor_arguments, add_format_argument, load_from_args,
                                          output_dir_problem, say, scheduler_client,
                                          write_and_report)
from memstack_capacity.errors import Problem, ScenarioError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="the cheapest configuration in a search space that meets every target of every scenario",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                        help="scenario YAML files; a configuration must meet the targets of all of them")
    parser.add_argument("--space", required=True, metavar="FILE",
                        help="the search space: a YAML file mapping dotted keys to values or ranges "
                             "(e.g. scenarios/spaces/small.yaml)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write the outputs (default: out/<first scenario name>-recommend/)")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: each scenario's own)")
    parser.add_argument("--replications", type=int, default=3, metavar="K",
                        help="runs per configuration and scenario, seeds seed..seed+K-1 (default 3)")
    parser.add_argument("--margin", type=float, default=None, metavar="F",
                        help="the flow-model screen drops a configuration only when a figure misses its target by "
                             "more than F (relative; default 0.25); --no-screen simulates every configuration")
    parser.add_argument("--stand-in-margin", type=float, default=None, metavar="F",
                        help="the same for a percentile the flow model does not give, stood in for by its mean × "
                             "ln(1/(1-q)) (default 1.5: dropped only above 2.5 × the target)")
    parser.add_argument("--no-screen", action="store_true",
                        help="simulate every configuration (no flow-model screen); slow, for checking the screen")
    parser.add_argument("--allow-large", action="store_true",
                        help="run even beyond the limits on scale (docs/reference/limits.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of every scenario by dotted path, e.g. duration=10m (repeatable)")
    add_executor_arguments(parser)
    add_format_argument(parser, "recommend.json")
    parser.set_defaults(handler=handle, engine=None)


class _Args:
    """The per-scenario view load_from_args reads (one scenario at a time)."""

    def __init__(self, args, path: str):
        self.scenario, self.overrides, self.engine = path, args.overrides, None
        self.allow_large, self.replications, self.workers = args.allow_large, args.replications, args.workers


def handle(args) -> int:
    from memstack_capacity.api.recommend import DEFAULT_MARGIN, DEFAULT_STAND_IN_MARGIN
    from memstack_capacity.api.recommend_space import load_space

    margin = DEFAULT_MARGIN if args.margin is None else args.margin
    args.stand_in_margin = DEFAULT_STAND_IN_MARGIN if args.stand_in_margin is None else args.stand_in_margin
    for flag, value in (("--margin", margin), ("--stand-in-margin", args.stand_in_margin)):
        if not value >= 0 or not value < float("inf"):
            print(f"error: {flag} must be a number 0 or more, got {value}", file=sys.stderr)
            return EXIT_BAD_INPUT
    scenarios = []
    for path in args.scenarios:
        scenarios.append(load_from_args(_Args(args, path)))
    names = [sc.name for sc in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError([Problem("SCENARIO", "two scenarios have the same name; give each once",
                                     " ".join(args.scenarios), True)])
    for path, sc in zip(args.scenarios, scenarios):
        if not any(v is not None for v in sc.targets.model_dump().values()):
            raise ScenarioError([Problem("targets", "the scenario sets no targets, so every configuration would "
                                                    "'meet' them; add a `targets:` block")], path)
    space = load_space(args.space, scenarios)  # SpaceError → exit 2, one line
    check_points_scale(args, scenarios, space)
    out = Path(args.out) if args.out else Path("out") / f"{scenarios[0].name}-recommend"
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, f"recommend {', '.join(names)}: {space.size} configuration(s) of {space.source} "
              f"({', '.join(space.keys)}) in increasing cost floor: "
              + ("the servers' throughput bound and the flow model's screen, then " if not args.no_screen else "")
              + f"{args.replications} simulated run(s) per scenario; writing {out}/")
    return _search(args, scenarios, space, margin, out)


def check_points_scale(args, scenarios, space) -> None:
    """Every configuration of the space, in every scenario, within the limits on scale, and the
    search's runs at most (every point, K runs per scenario) within the limit on runs; a
    ScenarioError naming the space file and the first configuration over a limit otherwise.

    The scenarios were checked as given, but a space can take them past a limit (20 000 API
    replicas), and a search runs many points: both are refused before anything is simulated,
    unless --allow-large lifts the limits.
    """
    from types import SimpleNamespace

    from memstack_capacity.cli.common import check_scale
    from memstack_capacity.engine.capabilities import choose

    for path, sc in zip(args.scenarios, scenarios):
        view = SimpleNamespace(scenario=path, allow_large=args.allow_large, replications=args.replications,
                               variants=space.size * len(scenarios), workers=args.workers)
        for point in space.points():
            configured = sc.with_overrides(point)
            try:
                check_scale(view, configured, choose(configured, "auto").engine)
            except ScenarioError as exc:
                where = ", ".join(f"{k}={v}" for k, v in point.items())
                raise ScenarioError([Problem("space", f"at {where} in scenario {sc.name}: {p.message}", p.value,
                                             p.has_value) for p in exc.problems], space.source) from None


def _search(args, scenarios, space, margin, out: Path) -> int:
    from memstack_capacity.api.batch import runner
    from memstack_capacity.api.recommend import recommend
    from memstack_capacity.outputs.recommend_files import write_recommendation

    client = scheduler_client(args.scheduler)
    label = f"recommend {scenarios[0].name}"
    screen_bar = Progress(f"{label}, search", unit="configurations")
    run_bar = Progress(f"{label}, simulation", unit="runs")
    quiet = os.environ.get(PROGRESS_VARIABLE, "") == "0" and not sys.stderr.isatty()

    def notify(line: str) -> None:
        run_bar.close()
        if not quiet:
            print(f"{label}: {line}", file=sys.stderr, flush=True)

    # Every input was checked by handle(); an error from here on is the simulator's (exit 1), not bad input.
    try:
        with runner(args.workers, client, "auto", run_bar) as run_many:
            result = recommend(scenarios, space, replications=args.replications, seed=args.seed, margin=margin,
                               stand_in_margin=args.stand_in_margin, run_many=run_many, screen=not args.no_screen,
                               notify=notify, screen_progress=screen_bar)
    finally:
        screen_bar.close()
        run_bar.close()
        if client is not None:
            client.close()
    say(args, result.describe())
    doc = result.to_dict()
    recommended = scenarios[0].with_overrides(result.best.overrides) if result.found and result.best.overrides \
        else (scenarios[0] if result.found else None)
    return write_and_report(args, out, lambda: write_recommendation(doc, scenarios[0], recommended, out),
                            "recommend.json", result.found)
