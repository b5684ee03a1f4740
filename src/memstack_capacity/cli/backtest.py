"""``backtest SCENARIO``: replay a recorded test through the (calibrated) scenario and compare.

``backtest SCENARIO --calibration cal.yaml (--locust PREFIX | --prometheus DIR [--mapping M])
--out DIR [--seed N] [--replications K] [--max-replica-error X] [--max-latency-error Y]``
writes ``backtest.json``, ``backtest.md`` and ``plots/backtest-*.png`` (docs/calibration.md,
Backtest). Exit 0 when every limit given is met (or none is given), 1 when one is missed (each
miss named with its value and limit), 2 on bad input — checked before anything is simulated
or written, so bad input leaves no output directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Progress, add_scenario_arguments,
                                          calibration_record, check_scale, load_from_args, output_dir_problem,
                                          plan_line, say)


def register(subparsers) -> None:
    parser = subparsers.add_parser("backtest", help="replay a recorded load test through the (calibrated) scenario "
                                                    "and compare replicas, scale events, latency and throughput")
    add_scenario_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--locust", metavar="PREFIX", help="the prefix given to locust --csv (the history gives the "
                                                          "users over time, the throughput and latency)")
    source.add_argument("--prometheus", metavar="DIR", help="a directory of /api/v1/query_range answers "
                                                            "(requests.json, users.json, replicas.json, latency*.json)")
    parser.add_argument("--mapping", metavar="M", help="the calibration mapping file (names → classes, window, "
                                                       "Prometheus' files and labels)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write backtest.json, backtest.md, plots/")
    parser.add_argument("--max-replica-error", type=float, default=None, metavar="PODS",
                        help="fail (exit 1) when a deployment's mean absolute replica error passes PODS")
    parser.add_argument("--max-latency-error", default=None, metavar="FRACTION",
                        help="fail (exit 1) when the MAPE of the mean latency per window passes FRACTION "
                             "(0.15 is 15 %%; or write 15%%)")
    parser.set_defaults(handler=handle)


def parse_fraction(text: str | None) -> float | None:
    """``0.15`` or ``15%`` → 0.15; ValueError naming what is allowed otherwise."""
    if text is None:
        return None
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"--max-latency-error {text!r}: expected a fraction such as 0.15 or a percentage such as "
                         "15%") from None
    if not raw.endswith("%") and value > 1:
        raise ValueError(f"--max-latency-error {text!r}: a fraction (0.15 is 15 %) above 1; write {raw}% for "
                         "a percentage")
    if not value >= 0:
        raise ValueError(f"--max-latency-error {text!r}: must be 0 or more")
    return value


def handle(args) -> int:
    from memstack_capacity.api.backtest import replay_and_compare, replay_scenario
    from memstack_capacity.calibration import measurements, recording
    from memstack_capacity.outputs.backtest_files import write_backtest

    try:
        max_latency = parse_fraction(args.max_latency_error)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.max_replica_error is not None and not args.max_replica_error >= 0:
        print(f"error: --max-replica-error must be a number of pods 0 or more, got {args.max_replica_error}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out)
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    mapping = measurements.load_mapping(args.mapping)
    rec = recording.read(scenario, locust=args.locust, prometheus=args.prometheus, mapping=mapping)
    if args.max_replica_error is not None and not rec.replicas:
        print(f"error: --max-replica-error: replicas are not recorded in {rec.source} "
              f"({'Locust has no pod count' if rec.kind == 'locust' else 'no replicas.json'}); leave the limit out "
              "or give --prometheus with replicas.json", file=sys.stderr)
        return EXIT_BAD_INPUT
    if max_latency is not None and rec.latency_mean is None:
        print(f"error: --max-latency-error: latency is not recorded in {rec.source} (no latency.json); leave the "
              "limit out or record it", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.engine_chosen == "fluid":
        print("error: --engine fluid: a backtest compares each window's requests, and the flow model keeps no "
              "request log; use auto or des", file=sys.stderr)
        return EXIT_BAD_INPUT
    replayed, _ = replay_scenario(scenario, rec)
    check_scale(args, replayed, args.engine_chosen)
    args.workers = 1  # the runs go one after the other here: each run's request log is compared
    say(args, plan_line("backtest", replayed, args, args.replications,
                        f"comparing with {rec.source} ({len(rec.end)} windows of {rec.window_s:g} s)"))
    progress = Progress(f"backtest {scenario.name}")
    try:
        bt = replay_and_compare(scenario, rec, seed=args.seed, replications=args.replications, engine=args.engine,
                                max_replica_error=args.max_replica_error, max_latency_error=max_latency,
                                progress=progress)
    finally:
        progress.close()
    try:
        write_backtest(bt, out, calibration_record(args))
    except OSError as exc:
        print(f"error: cannot write the outputs to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in summary_lines(bt):
        say(args, line)
    say(args, f"outputs: {out}/")
    return EXIT_OK if bt.passed else EXIT_FAILED


def summary_lines(bt) -> list[str]:
    """The figures in a few lines, then each limit's verdict."""
    f = bt.figures

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    lines = [f"backtest {bt.scenario} against {bt.recording.source}:"]
    if isinstance(f["replicas"], str):
        lines.append(f"  replicas: {f['replicas']}")
    else:
        for name, figs in f["replicas"].items():
            ev = figs["scale_events"]
            mae = "n/a" if figs["mae_pods"] is None else f"{figs['mae_pods']:.2f} pods"
            lines.append(f"  replicas of {name}: mean absolute error {mae}, within ±1 pod {pct(figs['within_1_pod'])}; "
                         f"scale-ups {ev['up']['recorded']:g} recorded / {ev['up']['simulated']:g} simulated, "
                         f"scale-downs {ev['down']['recorded']:g} / {ev['down']['simulated']:g}")
    lat = ", ".join(f"{k} {figs if isinstance(figs, str) else pct(figs['mape'])}" for k, figs in f["latency"].items())
    lines.append(f"  latency MAPE: {lat}")
    lines.append(f"  throughput MAPE: {pct(f['throughput']['mape'])}")
    for g in bt.gates:
        pods = "pods" in g["metric"]
        value = "not known" if g["value"] is None else (f"{g['value']:.3g}" if pods else f"{g['value']:.1%}")
        limit = f"{g['limit']:.3g}" if pods else f"{g['limit']:.1%}"
        lines.append(f"  {'met' if g['met'] else 'MISSED'}: {g['metric']} {value}, limit {limit}")
    return lines
