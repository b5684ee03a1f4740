"""``calibrate``: estimate a scenario's service times from measurements and write them as an overlay.

``calibrate --scenario S (--locust PREFIX | --k6 FILE | --prometheus DIR …) --out DIR`` writes
``calibration.yaml`` (for ``--calibration``), ``replay.yaml`` (the measured load),
``calibration.md`` and ``calibration-fit.png``. ``--prometheus`` may be given with one of
``--locust``/``--k6``: Prometheus gives the CPU and memory, the load test the users and response
times. A file that cannot be read as its format says is bad input (exit 2), named with the line
or series and what was expected.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import EXIT_BAD_INPUT, EXIT_OK, check_scenario_file, say
from memstack_capacity.scenario.load import load_scenario


def register(subparsers) -> None:
    parser = subparsers.add_parser("calibrate", help="estimate service times from load-test and Prometheus "
                                                     "measurements; write an overlay for --calibration")
    parser.add_argument("--scenario", required=True, metavar="SCENARIO", help="the scenario the estimates are for")
    parser.add_argument("--locust", metavar="PREFIX", help="the prefix given to locust --csv (reads "
                                                          "PREFIX_stats.csv and PREFIX_stats_history.csv)")
    parser.add_argument("--k6", metavar="FILE", help="k6's --out csv=FILE (or .gz) or its --summary-export JSON")
    parser.add_argument("--prometheus", metavar="DIR", help="a directory of /api/v1/query_range answers: cpu.json, "
                                                            "requests.json, memory.json, replicas.json, … "
                                                            "(calibration/prometheus.py)")
    parser.add_argument("--mapping", metavar="M", help="a YAML file: measured names → classes, the deployment, the "
                                                       "window, Prometheus' file and label names")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.calibration import estimates, measurements
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
    check_scenario_file(args.scenario)
    scenario = load_scenario(args.scenario)
    mapping = measurements.load_mapping(args.mapping)
    raws = []
    if args.prometheus:
        from memstack_capacity.calibration import prometheus

        raws.append(prometheus.read(args.prometheus, mapping, requests_needed=not (args.locust or args.k6)))
    if args.locust:
        from memstack_capacity.calibration import locust

        raws.append(locust.read(args.locust, mapping.window_s))
    if args.k6:
        from memstack_capacity.calibration import k6

        raws.append(k6.read(args.k6, mapping.window_s))
    windows = measurements.to_windows(raws, mapping, scenario)
    calibration = estimates.calibrate(windows, scenario, mapping.deployment, seed=args.seed)
    out = Path(args.out)
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
