"""``run SCENARIO``: simulate and write every output."""

from __future__ import annotations

import sys
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_OK, Progress, add_scenario_arguments, load_from_args,
                                          output_dir_problem)
from memstack_capacity.outputs.files import write_run


ENGINE_LABELS = {
    "des": "general (event by event)",
    "kernel": "per-pod kernel (no event per request)",
    "hybrid": "batched data plane (no event per request; docs/performance.md)",
    "fluid": "fluid (a flow model; docs/fluid.md)",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="simulate a scenario and write its outputs")
    add_scenario_arguments(parser)
    parser.add_argument("--out", default=None, help="output directory (default: out/<scenario name>/)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes for --replications (default: one per CPU; 1 runs them here)")
    parser.add_argument("--mode", choices=("des", "fluid"), default=None,
                        help="fluid is --engine fluid (the fast flow model, docs/fluid.md); des is --engine auto")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.api.simulation import simulate

    if args.replications < 1:
        print(f"error: --replications must be at least 1, got {args.replications}", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out) if args.out else Path("out") / scenario.name
    problem = output_dir_problem(out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.replications > 1:
        if args.engine == "fluid":
            print("error: --replications is not available with the fluid engine; run one seed at a time (--seed)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        return _run_replicated(scenario, args, out)
    progress = Progress(f"run {scenario.name}")
    try:
        result = simulate(scenario, seed=args.seed, progress=progress, engine=args.engine)
        summary = result.summary
    finally:
        progress.close()
    if not _write(result, out):
        return EXIT_BAD_INPUT
    print(format_summary(summary))
    record = result.record
    print(f"  engine: {ENGINE_LABELS[record.engine]}")
    for caveat in record.flow.details.get("caveats", []) if record.flow is not None else []:
        print(f"  caveat: {caveat}")
    print(f"outputs: {out}/")
    return EXIT_OK


def _run_replicated(scenario, args, out: Path) -> int:
    """K seeds on a process pool; summary.json holds means with 95 % intervals beside them."""
    from memstack_capacity.api.batch import replicate
    from memstack_capacity.results.replications import combine_summaries

    progress = Progress(f"replicate {scenario.name}", unit="runs")
    try:
        runs = replicate(scenario, args.replications, seed=args.seed, workers=args.workers, engine=args.engine,
                         progress=progress)
    finally:
        progress.close()
    combined = combine_summaries([r.summary for r in runs], scenario.targets)
    if not _write(runs[0], out, summary=combined, replications=runs):
        return EXIT_BAD_INPUT
    print(format_summary(combined))
    print(f"outputs: {out}/ (frames of seed {runs[0].seed}; summary and report over {len(runs)} replications)")
    return EXIT_OK


def _write(result, out: Path, **kwargs) -> bool:
    """Write the outputs (all or nothing); False, with a message, when the directory cannot be written."""
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
        return "n/a" if v is None else f"{v * 1000:.0f} ms"

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
    for verdict in summary.get("targets", []):
        mark = "met " if verdict["met"] else "MISS"
        value = verdict["value"]
        shown = "n/a" if value is None else f"{value:.4g}"
        note = f" ({verdict['note']})" if verdict.get("note") else ""
        lines.append(f"  [{mark}] {verdict['name']} {verdict['kind']} {verdict['limit']:g}: {shown}{note}")
    return "\n".join(lines)
