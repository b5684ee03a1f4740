"""``manifests SCENARIO [--out DIR]``: the Kubernetes manifests of a scenario, without simulating.

Exit codes: 0 written, 2 bad input (including a layout the manifests cannot express).
"""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import EXIT_BAD_INPUT, EXIT_OK, add_scenario_arguments, load_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("manifests", help="write the Kubernetes manifests of a scenario")
    add_scenario_arguments(parser, replications=False, seed=False)
    parser.add_argument("--out", default=None, help="output directory (default: out/<scenario name>/manifests/)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.outputs.manifests.files import build_manifests, write_manifests
    from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario

    scenario = load_from_args(args, simulates=False)
    objects = build_manifests(inputs_from_scenario(scenario))  # ScenarioError → exit 2
    out = Path(args.out) if args.out else Path("out") / scenario.name / "manifests"
    try:
        paths = write_manifests(objects, out)
    except OSError as exc:
        print(f"error: cannot write the manifests to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in paths:
        print(path)
    return EXIT_OK
