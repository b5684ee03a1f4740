"""``calibrate``: estimate a scenario's service times from measurements and write them as an overlay.

``calibrate --scenario S (--locust PREFIX | --k6 FILE | --prometheus DIR …) --out DIR`` writes
``calibration.yaml`` (for ``--calibration``), ``replay.yaml`` (the measured load),
``calibration.md`` and ``calibration-fit.png``. ``--prometheus`` may be given with one of
``--locust``/``--k6``: Prometheus gives the CPU and memory, the load test the users and response
times. Each option may be repeated to calibrate from several recordings of the same system
(e.g. one load test per mix of endpoints, which tells apart classes whose shares never change
within one test): their windows are fitted together, each bootstrap drawing within its
recording; with both kinds given, the k-th ``--prometheus`` goes with the k-th load test (no
replay.yaml then: several tests are not one load to replay). A file that cannot be read as its
format says is bad input (exit 2), named with the line or series and what was expected. ``--out``
is held to ``run``'s rules (new, empty, or an earlier output of this tool) before anything is read,
and its files are swapped in whole (outputs/calibration_files.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import EXIT_BAD_INPUT, EXIT_OK, check_scenario_file, output_dir_problem, say
from memstack_capacity.scenario.load import load_scenario


def register(subparsers) -> None:
    parser = subparsers.add_parser("calibrate", help="estimate service times from load-test and Prometheus "
                                                     "measurements; write an overlay for --calibration")
    parser.add_argument("--scenario", required=True, metavar="SCENARIO", help="the scenario the estimates are for")
    parser.add_argument("--locust", metavar="PREFIX", action="append",
                        help="the prefix given to locust --csv (reads PREFIX_stats.csv and PREFIX_stats_history.csv); "
                             "repeat it for several recordings")
    parser.add_argument("--k6", metavar="FILE", action="append",
                        help="k6's --out csv=FILE (or .gz) or its --summary-export JSON; repeat it for several "
                             "recordings")
    parser.add_argument("--prometheus", metavar="DIR", action="append",
                        help="a directory of /api/v1/query_range answers: cpu.json, requests.json, memory.json, "
                             "replicas.json, … (calibration/prometheus.py); repeat it for several recordings, in the "
                             "order of their --locust/--k6 when those are given too")
    parser.add_argument("--mapping", metavar="M", help="a YAML file: measured names → classes, the deployment, the "
                                                       "window, Prometheus' file and label names")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.api.calibrate import calibrate
    from memstack_capacity.outputs.calibration_files import write_calibration

    if args.locust and args.k6:
        print("error: give one load test, --locust or --k6 (with --prometheus beside it if you have it)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if not (args.locust or args.k6 or args.prometheus):
        print("error: give the measurements: --locust PREFIX, --k6 FILE or --prometheus DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.seed < 0:
        print(f"error: --seed must be a whole number 0 or more, got {args.seed}", file=sys.stderr)
        return EXIT_BAD_INPUT
    proms, tests = args.prometheus or [], args.locust or args.k6 or []
    if proms and tests and len(proms) != len(tests):
        print(f"error: --prometheus given {len(proms)} time(s) and --{'locust' if args.locust else 'k6'} "
              f"{len(tests)}: with both, give one of each per recording, in the same order", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out)
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    check_scenario_file(args.scenario)
    scenario = load_scenario(args.scenario)
    calibration = calibrate(scenario, prometheus=proms, locust=args.locust, k6=args.k6, mapping=args.mapping,
                            seed=args.seed)
    try:
        written = write_calibration(calibration, out)
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, f"calibrate {scenario.name}: {calibration.windows} window(s) of {calibration.window_s:g} s from "
              f"{', '.join(calibration.sources)}")
    from memstack_capacity.calibration.overlay import describe

    for e in calibration.estimates:
        if e.group == "service":
            say(args, f"  {e.figure}: {describe(e)} ({'identifiable' if e.identifiable == 'yes' else e.identifiable if e.identifiable != 'no' else 'not identifiable'})")
    say(args, "wrote " + ", ".join(str(p) for p in written))
    return EXIT_OK
