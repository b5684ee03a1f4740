"""``validate FILE…`` and ``show SCENARIO``: check scenario files, print a resolved one."""

from __future__ import annotations

import argparse
import sys

import yaml

from memstack_capacity.cli.common import EXIT_BAD_INPUT, EXIT_OK, check_scenario_file
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario
from memstack_capacity.scenario.models import Scenario
from memstack_capacity.scenario.overrides import parse_set_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` and ``show`` commands."""
    validate = subparsers.add_parser(
        "validate",
        help="check scenario files and report every problem",
        description="Check each scenario file; print `ok: FILE` or every problem in it. "
        "Exit 0 when all are valid, 2 otherwise.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files")
    validate.set_defaults(handler=run_validate)

    show = subparsers.add_parser(
        "show",
        help="print the resolved scenario with every default filled in",
        description="Print the scenario as YAML with every default filled in and the overrides applied.",
    )
    show.add_argument("scenario", metavar="SCENARIO", help="a scenario YAML file")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="dotted.key=value",
                      help="override one value (repeatable), e.g. --set deployments.api.hpa.maxReplicas=30")
    show.set_defaults(handler=run_show)


def check_buildable(scenario: Scenario, path) -> None:
    """Wire the scenario into the simulator without running it, so `validate` catches what `run`
    would reject at build time (references between events and deployments, unsupported steps)."""
    from memstack_capacity.engine.des.build import build

    try:
        build(scenario, scenario.seed)
    except ScenarioError as exc:
        raise ScenarioError(exc.problems, str(path)) from None


def run_validate(args: argparse.Namespace) -> int:
    """Check every file (all of them, even after a bad one); 0 if all are valid, else 2."""
    status = EXIT_OK
    for path in args.files:
        try:
            check_scenario_file(path)
            check_buildable(load_scenario(path), path)
        except ScenarioError as exc:
            status = EXIT_BAD_INPUT
            for problem in exc.problems:
                print(problem.render(exc.source), file=sys.stderr)
        else:
            print(f"ok: {path}")
    return status


def resolved_yaml(scenario: Scenario) -> str:
    """The scenario as YAML in the contract's spellings, defaults filled in, unset blocks left out."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def run_show(args: argparse.Namespace) -> int:
    """Print the resolved scenario; a ScenarioError reaches the dispatcher (exit 2)."""
    check_scenario_file(args.scenario)
    scenario = load_scenario(args.scenario, parse_set_arguments(args.overrides))
    sys.stdout.write(resolved_yaml(scenario))
    return EXIT_OK
