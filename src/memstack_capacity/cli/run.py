"""``run SCENARIO``: simulate and write every output."""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_OK, Progress, add_anchor_argument,
                                          add_executor_arguments, add_format_argument, add_scenario_arguments,
                                          anchor_problem, calibration_record, load_from_args, output_dir_problem,
                                          plan_line, say, scheduler_client)
from memstack_capacity.cli.verdicts import seconds, verdict_line
from memstack_capacity.outputs.units import money


ENGINE_LABELS = {
    "des": "general (event by event)",
    "fast": "compiled data plane (every event compiled; docs/performance.md)",
    "kernel": "per-pod kernel (no event per request)",
    "hybrid": "batched data plane (no event per request; docs/performance.md)",
    "fluid": "fluid (a flow model; docs/fluid.md)",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="simulate a scenario and write its outputs")
    add_scenario_arguments(parser)
    parser.add_argument("--out", default=None, help="output directory (default: out/<scenario name>/)")
    add_anchor_argument(parser)
    add_executor_arguments(parser)
    add_format_argument(parser, "summary.json")
    parser.add_argument("--mode", choices=("des", "fluid"), default=None,
                        help="fluid is --engine fluid (the fast flow model, docs/fluid.md); des is --engine auto")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    if args.replications < 1:
        print(f"error: --replications must be at least 1, got {args.replications}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = anchor_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out) if args.out else Path("out") / scenario.name
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.replications > 1 and args.engine_chosen == "fluid":
        print("error: --replications is not available with the fluid engine; run one seed at a time (--seed)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, plan_line("run", scenario, args, args.replications, f"writing the outputs to {out}/"))
    result, summary, runs = simulate_for(f"{'run' if args.replications == 1 else 'replicate'} {scenario.name}",
                                         scenario, args)
    if not write_outputs(result, out, summary, runs, args.anchor):
        return EXIT_BAD_INPUT
    say(args, format_summary(summary))
    if runs:
        say(args, f"outputs: {out}/ (frames of seed {result.seed}; summary and report over {len(runs)} replications)")
    else:
        record = result.record
        say(args, f"  engine: {ENGINE_LABELS[record.engine]}")
        for caveat in record.flow.details.get("caveats", []) if record.flow is not None else []:
            say(args, f"  caveat: {caveat}")
        say(args, f"outputs: {out}/")
    if args.format == "json":
        # The file, as written: the report adds the alerts to it.
        print((out / "summary.json").read_text(encoding="utf-8"), end="", flush=True)
    return EXIT_OK


def simulate_for(label: str, scenario, args):
    """One run, or ``--replications K`` runs on the executor (--workers, --scheduler); returns the
    Result whose frames are the outputs, the summary (combined over the replications) and the
    list of runs (None for one run). The first replication runs here, so K runs are simulated."""
    result, summary, runs = _simulate_for(label, scenario, args)
    record = calibration_record(args)
    if record:
        summary["calibration"] = record
    return result, summary, runs


def _simulate_for(label: str, scenario, args):
    if args.replications == 1:
        from memstack_capacity.api.simulation import simulate

        if getattr(args, "scheduler", None):
            print("note: --scheduler sends the runs of --replications K > 1 to the cluster; one run runs here",
                  file=sys.stderr)
        progress = Progress(label)
        try:
            result = simulate(scenario, seed=args.seed, progress=progress, engine=args.engine)
        finally:
            progress.close()
        return result, result.summary, None
    from memstack_capacity.api.batch import replicate
    from memstack_capacity.results.replications import combine_summaries

    client = scheduler_client(getattr(args, "scheduler", None))
    progress = Progress(label, unit="runs")
    try:
        runs = replicate(scenario, args.replications, seed=args.seed, workers=args.workers, client=client,
                         engine=args.engine, progress=progress)
    finally:
        progress.close()
        if client is not None:
            client.close()
    return runs[0], combine_summaries([r.summary for r in runs], scenario.targets), runs


def write_outputs(result, out: Path, summary: dict, runs, anchor=None) -> bool:
    """The run's outputs in ``out`` (all or nothing): with replications, the frames of the first and
    the combined summary; False, with a message, when the directory cannot be written."""
    if runs:
        return _write(result, out, summary=summary, replications=runs, anchor=anchor)
    return _write(result, out, anchor=anchor)


def _write(result, out: Path, **kwargs) -> bool:
    """Write the outputs (all or nothing); False, with a message, when the directory cannot be written."""
    from memstack_capacity.outputs.files import write_run  # here: matplotlib is slow to import, and the plan line waits

    try:
        write_run(result, out, **kwargs)
    except OSError as exc:
        print(f"error: cannot write the outputs to {out}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def format_summary(summary: dict) -> str:
    req = summary["requests"]
    lat = req["latency_s"]

    def n(v):
        return "n/a" if v is None else (f"{v:,.0f}" if abs(v - round(v)) < 1e-9 else f"{v:,.1f}")

    def ms(v):
        return "n/a" if v is None else seconds(v)

    seeds = summary.get("seeds")
    runs = f"seeds {seeds[0]}..{seeds[-1]}, {len(seeds)} replications, means" if seeds else f"seed {summary['seed']}"
    lines = [
        f"scenario {summary['scenario']} ({runs}, {summary['duration_s']:.0f} s, warm-up {summary['warmup_s']:.0f} s)",
        f"  requests: {n(req['completed'])} ok, {n(req['failed'])} failed ({req['error_rate']:.2%}), "
        f"{req['throughput_rps']:.1f} req/s",
        f"  latency: mean {ms(lat['mean'])}, p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}, p99 {ms(lat['p99'])}",
    ]
    for name, dep in summary["deployments"].items():
        rep = dep["replicas"]
        cpu = dep["cpu_utilization"]["mean"]
        lines.append(
            f"  {name}: replicas {n(rep['min'])}–{n(rep['max'])} (mean {rep['mean']:.1f}), "
            f"cpu {'n/a' if cpu is None else f'{cpu:.0%}'} of requests, restarts {n(dep['restarts'])}, "
            f"OOMKills {n(dep['oom_kills'])}"
        )
    if summary.get("cost"):
        lines.append(cost_line(summary["cost"]))
    for used in summary.get("calibration") or ():
        lines.append(f"  calibration: {used['file']} (sha256 {used['sha256'][:12]}…, {used['keys']} keys)")
    lines += ["  " + verdict_line(v) for v in summary.get("targets", [])]
    return "\n".join(lines)


#: Whose prices a run's cost used, by the set of its prices' sources.
_PRICES_FROM = {frozenset({"default"}): "OpenCost's default", frozenset({"scenario"}): "the scenario's"}


def cost_line(cost: dict) -> str:
    """``  cost: 0.0135 USD over the run, 118.47 USD per month (730 h), by requests at OpenCost's default prices``."""
    sources = frozenset(cost["price_sources"].values()) - {"derived"}
    where = _PRICES_FROM.get(sources, "the scenario's and OpenCost's default")
    return (f"  cost: {money(cost['total'], cost['currency'])} over the run, "
            f"{money(cost['per_month'], cost['currency'])} per month ({cost['hours_per_month']:g} h), "
            f"by {cost['basis']} at {where} prices")
