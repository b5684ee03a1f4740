"""``check SCENARIO``: simulate, judge the targets (and a baseline), exit 0 / 1 / 2 — the CI gate.

Verdicts:

- One run: a target is met or missed by its value.
- ``--replications K`` (K > 1): each figure is the mean over K seeds with a 95 %
  Student-t interval. A target is **met** when the whole interval satisfies it,
  **missed** when none of it does, and **inconclusive** when the interval straddles
  the limit. Inconclusive *fails the gate* (exit 1): the gate only passes what it
  can show; the remedy is more replications or a model that clears the limit.
- ``--baseline summary.json --tolerance 5%``: throughput, error rate, the latency
  percentiles and job latency are compared with a stored summary; only a change in
  the worse direction beyond the tolerance fails (throughput below ``base × (1 − tol)``;
  latency above ``base × (1 + tol)``; the error rate above the larger of
  ``base × (1 + tol)`` and ``base + 0.001``, so that a zero baseline does not turn
  one failed request into a regression). With replications the same interval rule
  applies. A figure the baseline does not have (or has as null) is skipped.

``--out DIR`` writes the run's outputs as ``run --out`` does, whether the checks pass or
not; ``--format json`` prints the verdicts on stdout (the table goes to stderr).

Exit codes: 0 every check passed, 1 any missed, inconclusive or regressed (or a
simulation error), 2 bad input (scenario, overrides, baseline file, arguments), 3 the
Dask scheduler (``--scheduler``) cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, add_anchor_argument,
                                          add_executor_arguments, add_format_argument, add_scenario_arguments,
                                          anchor_problem, human_stream, load_from_args, output_dir_problem,
                                          plan_line, say)
from memstack_capacity.cli.verdicts import figure_name, figure_value, limit_text, value_text
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.results.replications import interval_verdict

#: Absolute slack on the error rate for baseline comparisons (a fraction of requests).
ERROR_RATE_SLACK = 0.001

#: The figures compared with a baseline: (path in summary.json, which way is worse).
BASELINE_FIGURES = (
    (("requests", "throughput_rps"), "min"),
    (("requests", "error_rate"), "max"),
    (("requests", "latency_s", "mean"), "max"),
    (("requests", "latency_s", "p50"), "max"),
    (("requests", "latency_s", "p95"), "max"),
    (("requests", "latency_s", "p99"), "max"),
    (("jobs", "latency_s", "mean"), "max"),
    (("jobs", "latency_s", "p99"), "max"),
)


class BaselineError(ValueError):
    """Raised when the baseline summary file is missing or malformed."""


def parse_tolerance(text: str) -> float:
    """``"5%"`` → 0.05, ``"0.05"`` → 0.05; argparse reports anything else (exit 2)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 5% or a fraction like 0.05, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"the tolerance must be zero or more, got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="simulate and judge the targets; exit 0 all met, 1 any missed, 2 bad input",
        description=__doc__.split("\n\n", 1)[1].split("Exit codes")[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 all met, 1 any missed/inconclusive/regressed, 2 bad input, 3 scheduler unreachable",
    )
    add_scenario_arguments(parser)
    parser.add_argument("--junit", metavar="FILE", default=None, help="write the verdicts as JUnit XML")
    parser.add_argument("--baseline", metavar="SUMMARY_JSON", default=None, help="a stored summary.json to compare with")
    parser.add_argument("--tolerance", type=parse_tolerance, default=0.05, metavar="PCT",
                        help="allowed worsening against the baseline (default 5%%)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="also write the run's outputs here, as `run --out` does (summary, frames, report), "
                             "whether the check passes or not")
    add_anchor_argument(parser)
    add_executor_arguments(parser)
    add_format_argument(parser, "the verdicts")
    parser.set_defaults(handler=handle)


# --------------------------------------------------------------------------- baseline


def load_baseline(path: str | Path) -> dict:
    """A stored summary.json, checked for the figures the comparison reads."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline {path}: cannot read the file ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("requests"), dict):
        raise BaselineError(f"baseline {path}: not a summary.json (expected an object with a `requests` block)")
    wrong, found = [], 0
    for figure, _ in BASELINE_FIGURES:
        value = _get(data, figure)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            wrong.append(f"{'.'.join(figure)} is {value!r}, not a number")
        else:
            found += 1
    if wrong:
        raise BaselineError(f"baseline {path}: " + "; ".join(wrong))
    if not found:
        raise BaselineError(f"baseline {path}: has none of the figures to compare ({_figure_names()})")
    return data


def _figure_names() -> str:
    return ", ".join(".".join(f) for f, _ in BASELINE_FIGURES)


def _get(summary, path: tuple):
    node = summary
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _interval(summary, path: tuple):
    parent = _get(summary, path[:-1])
    ci = parent.get(f"{path[-1]}_ci95") if isinstance(parent, dict) else None
    return list(ci) if ci is not None else None


def baseline_checks(summary: dict, baseline: dict, tolerance: float) -> list[dict]:
    """One check per figure the baseline has: name, kind, limit, value, value_ci95, baseline, verdict, met."""
    checks = []
    for path, kind in BASELINE_FIGURES:
        base = _get(baseline, path)
        if base is None:
            continue
        name = ".".join(path)
        if kind == "min":
            limit = base * (1 - tolerance)
        elif path[-1] == "error_rate":
            limit = max(base * (1 + tolerance), base + ERROR_RATE_SLACK)
        else:
            limit = base * (1 + tolerance)
        value = _get(summary, path)
        interval = _interval(summary, path) if value is not None else None
        verdict = interval_verdict(value, interval, kind, limit)
        checks.append({"name": name, "kind": kind, "limit": float(limit), "value": value, "value_ci95": interval,
                       "baseline": float(base), "verdict": verdict, "met": verdict == "met"})
    return checks


# --------------------------------------------------------------------------- formatting


def verdict_text(check: dict) -> str:
    """``met``, ``MISSED …``, ``INCONCLUSIVE: CI [lo, hi] straddles the limit``."""
    verdict = check["verdict"]
    if verdict == "met":
        return "met" if "baseline" not in check else "ok"
    if verdict == "inconclusive":
        lo, hi = check["value_ci95"]
        return (f"INCONCLUSIVE: CI [{figure_value(check['name'], lo)}, {figure_value(check['name'], hi)}] "
                "straddles the limit")
    if check["value"] is None:
        return "MISSED: no value"
    return "REGRESSED" if "baseline" in check else "MISSED"


def failure_message(check: dict) -> str:
    """The one-line JUnit failure message, with the value and the limit."""
    name, value = check["name"], value_text(check)
    bound = "min" if check["kind"] == "min" else "max"
    limit = figure_value(name, check["limit"])
    extra = f" (baseline {figure_value(name, check['baseline'])})" if "baseline" in check else ""
    if check["verdict"] == "inconclusive":
        return f"{name} = {value}: the 95% interval straddles the {bound} {limit}{extra}; inconclusive counts as a failure"
    if check["value"] is None:
        return f"{name} has no value; {bound} {limit}{extra}"
    relation = "is below" if check["kind"] == "min" else "exceeds"
    return f"{name} = {value} {relation} the {bound} {limit}{extra}"


def format_table(targets: list[dict], baseline: list[dict]) -> str:
    """The verdicts as a table (rich: column widths, alignment and rules without hand padding)."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="", highlight=False)
    for column in ("check", "figure", "target", "value", "verdict"):
        table.add_column(column, no_wrap=True)
    rows = [("target", t, _case_name(t, targets, human=True)) for t in targets]
    rows += [("baseline", b, figure_name(b["name"])) for b in baseline]
    for kind, check, name in rows:
        table.add_row(kind, name, limit_text(check), value_text(check), verdict_text(check))
    text = io.StringIO()
    Console(file=text, width=240, color_system=None, markup=False, emoji=False, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in text.getvalue().splitlines() if line.strip())


def _case_name(check: dict, siblings: list[dict], human: bool = False) -> str:
    name = figure_name(check["name"]) if human else check["name"]
    twice = sum(1 for s in siblings if s["name"] == check["name"]) > 1
    return f"{name} ({check['kind']})" if twice else name


# --------------------------------------------------------------------------- the command


def _single_verdicts(verdicts: list[dict]) -> list[dict]:
    return [{**v, "value_ci95": None, "verdict": "met" if v["met"] else "missed"} for v in verdicts]


def handle(args) -> int:
    from memstack_capacity.cli.run import simulate_for, write_outputs

    if args.replications < 1:
        print(f"error: --replications must be at least 1, got {args.replications}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        baseline = load_baseline(args.baseline) if args.baseline else None
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = anchor_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    scenario = load_from_args(args)
    out = Path(args.out) if args.out else None
    problem = output_dir_problem(out) if out is not None else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    say(args, plan_line("check", scenario, args, args.replications, _plan(scenario, baseline, out)))
    started = time.perf_counter()
    result, summary, runs = simulate_for(f"check {scenario.name}", scenario, args)
    targets = summary["targets"] if runs else _single_verdicts(summary["targets"])
    elapsed = time.perf_counter() - started
    compared = baseline_checks(summary, baseline, args.tolerance) if baseline is not None else []
    checks = targets + compared
    failed = [c for c in checks if not c["met"]]
    seeds = summary.get("seeds") or [summary.get("seed")]
    _print_verdicts(args, scenario.name, seeds, targets, compared)
    code = EXIT_FAILED if failed else EXIT_OK
    if args.junit and not _write_junit(args, scenario.name, seeds, targets, compared, baseline, elapsed):
        code = EXIT_BAD_INPUT
    if out is not None:
        if write_outputs(result, out, summary, runs, args.anchor):
            say(args, f"outputs: {out}/")
        else:
            code = EXIT_BAD_INPUT
    if args.format == "json":
        print(summary_json(verdicts_document(scenario.name, seeds, targets, compared, out)), end="", flush=True)
    return code


def _plan(scenario, baseline, out) -> str:
    """``judging 3 targets and 8 baseline figures, writing the outputs to out/x/``."""
    targets = sum(v is not None for limits in scenario.targets.model_dump().values() if limits
                  for v in limits.values())
    what = f"judging {targets} target{'s' if targets != 1 else ''}"
    if baseline is not None:
        what += " and the baseline's figures"
    return what + (f", writing the outputs to {out}/" if out is not None else "")


def _print_verdicts(args, name: str, seeds: list, targets: list[dict], compared: list[dict]) -> None:
    """The heading, the table and the one-line outcome, on the human stream."""
    checks = targets + compared
    failed = [c for c in checks if not c["met"]]
    say(args, f"check {name}: seed {seeds[0]}" + (
        f"..{seeds[-1]} ({len(seeds)} replications, 95% intervals)" if len(seeds) > 1 else ""))
    say(args, format_table(targets, compared) if checks else
        "no targets in the scenario and no baseline: nothing to judge")
    inconclusive = sum(1 for c in failed if c["verdict"] == "inconclusive")
    if failed:
        note = f" ({inconclusive} inconclusive, counted as failures)" if inconclusive else ""
        say(args, f"FAILED: {len(failed)} of {len(checks)} checks{note}")
    elif checks:
        say(args, f"passed: all {len(checks)} checks")
    human_stream(args).flush()


def verdicts_document(name: str, seeds: list, targets: list[dict], compared: list[dict], out) -> dict:
    """What ``--format json`` prints: every verdict with the summary's own keys and numbers."""
    checks = targets + compared
    return {
        "scenario": name,
        "seeds": seeds,
        "replications": len(seeds),
        "passed": all(c["met"] for c in checks),
        "targets": targets,
        "baseline": compared,
        "failed": [_case_name(c, targets) for c in checks if not c["met"]],
        "outputs": None if out is None else str(out),
    }


def _write_junit(args, name: str, seeds: list, targets, compared, baseline, elapsed: float) -> bool:
    """The verdicts as JUnit XML in ``--junit``; False, with a message, when it cannot be written."""
    from memstack_capacity.outputs.junit import Case, junit_xml

    classname = f"memstack_capacity.check.{name}"
    cases = [_case(Case, f"{classname}.targets", _case_name(t, targets), t, "TargetMissed") for t in targets]
    cases += [_case(Case, f"{classname}.baseline", b["name"], b, "Regression") for b in compared]
    properties = {"scenario": name, "seed": seeds[0], "replications": len(seeds)}
    if baseline is not None:
        properties.update(baseline=args.baseline, tolerance=args.tolerance)
    xml = junit_xml(f"capacity check {name}", cases, properties, time_s=elapsed)
    try:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(xml, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write the JUnit file {args.junit}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _case(Case, classname: str, name: str, check: dict, kind: str):
    if check["met"]:
        return Case(classname, name)
    failure_type = "Inconclusive" if check["verdict"] == "inconclusive" else kind
    return Case(classname, name, failure=failure_message(check), failure_type=failure_type)
