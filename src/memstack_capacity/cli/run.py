"""``run SCENARIO``: simulate and write every output."""

from __future__ import annotations

from pathlib import Path

from memstack_capacity.cli.common import Progress, add_scenario_arguments, load_from_args
from memstack_capacity.outputs.files import write_run


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="simulate a scenario and write its outputs")
    add_scenario_arguments(parser)
    parser.add_argument("--out", default=None, help="output directory (default: out/<scenario name>/)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from memstack_capacity.api import simulate

    scenario = load_from_args(args)
    out = Path(args.out) if args.out else Path("out") / scenario.name
    progress = Progress(f"run {scenario.name}")
    try:
        result = simulate(scenario, seed=args.seed, progress=progress)
        summary = result.summary
    finally:
        progress.close()
    write_run(result, out)
    print(format_summary(summary))
    print(f"outputs: {out}/")
    return 0


def format_summary(summary: dict) -> str:
    req = summary["requests"]
    lat = req["latency_s"]

    def ms(v):
        return "n/a" if v is None else f"{v * 1000:.0f} ms"

    lines = [
        f"scenario {summary['scenario']} (seed {summary['seed']}, {summary['duration_s']:.0f} s, warm-up {summary['warmup_s']:.0f} s)",
        f"  requests: {req['completed']:,} ok, {req['failed']:,} failed ({req['error_rate']:.2%}), "
        f"{req['throughput_rps']:.1f} req/s",
        f"  latency: mean {ms(lat['mean'])}, p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}, p99 {ms(lat['p99'])}",
    ]
    for name, dep in summary["deployments"].items():
        rep = dep["replicas"]
        cpu = dep["cpu_utilization"]["mean"]
        lines.append(
            f"  {name}: replicas {rep['min']}–{rep['max']} (mean {rep['mean']:.1f}), "
            f"cpu {'n/a' if cpu is None else f'{cpu:.0%}'} of requests, restarts {dep['restarts']}, OOMKills {dep['oom_kills']}"
        )
    for verdict in summary.get("targets", []):
        mark = "met " if verdict["met"] else "MISS"
        lines.append(f"  [{mark}] {verdict['name']} {verdict['kind']} {verdict['limit']:g}: {verdict['value']}")
    return "\n".join(lines)
