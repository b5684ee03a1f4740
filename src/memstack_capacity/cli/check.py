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

Exit codes: 0 every check passed, 1 any missed, inconclusive or regressed (or a
simulation error), 2 bad input (scenario, overrides, baseline file, arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Progress, add_scenario_arguments,
                                          load_from_args)
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
        epilog="exit codes: 0 all met, 1 any missed/inconclusive/regressed, 2 bad input",
    )
    add_scenario_arguments(parser)
    parser.add_argument("--junit", metavar="FILE", default=None, help="write the verdicts as JUnit XML")
    parser.add_argument("--baseline", metavar="SUMMARY_JSON", default=None, help="a stored summary.json to compare with")
    parser.add_argument("--tolerance", type=parse_tolerance, default=0.05, metavar="PCT",
                        help="allowed worsening against the baseline (default 5%%)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes for the replications (default: one per CPU; 1 runs them here)")
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


def _fmt(name: str, value) -> str:
    if value is None:
        return "n/a"
    if "latency" in name:
        return f"{value * 1000:.4g} ms"
    if "error_rate" in name:
        return f"{value:.3%}"
    if "throughput" in name:
        return f"{value:.4g} req/s"
    return f"{value:.4g}"


def _value_text(check: dict) -> str:
    text = _fmt(check["name"], check["value"])
    ci = check.get("value_ci95")
    if ci is not None:
        text += f" (CI {_fmt(check['name'], ci[0])} – {_fmt(check['name'], ci[1])})"
    return text


def _limit_text(check: dict) -> str:
    sign = "≥" if check["kind"] == "min" else "≤"
    return f"{sign} {_fmt(check['name'], check['limit'])}"


def verdict_text(check: dict) -> str:
    """``met``, ``MISSED …``, ``INCONCLUSIVE: CI [lo, hi] straddles the limit``."""
    verdict = check["verdict"]
    if verdict == "met":
        return "met" if "baseline" not in check else "ok"
    if verdict == "inconclusive":
        lo, hi = check["value_ci95"]
        return f"INCONCLUSIVE: CI [{_fmt(check['name'], lo)}, {_fmt(check['name'], hi)}] straddles the limit"
    if check["value"] is None:
        return "MISSED: no value"
    return "REGRESSED" if "baseline" in check else "MISSED"


def failure_message(check: dict) -> str:
    """The one-line JUnit failure message, with the value and the limit."""
    name, value = check["name"], _value_text(check)
    bound = "min" if check["kind"] == "min" else "max"
    limit = _fmt(name, check["limit"])
    extra = f" (baseline {_fmt(name, check['baseline'])})" if "baseline" in check else ""
    if check["verdict"] == "inconclusive":
        return f"{name} = {value}: the 95% interval straddles the {bound} {limit}{extra}; inconclusive counts as a failure"
    if check["value"] is None:
        return f"{name} has no value; {bound} {limit}{extra}"
    relation = "is below" if check["kind"] == "min" else "exceeds"
    return f"{name} = {value} {relation} the {bound} {limit}{extra}"


def format_table(targets: list[dict], baseline: list[dict]) -> str:
    rows = [("check", "figure", "limit", "value", "verdict")]
    rows += [("target", _case_name(t, targets), _limit_text(t), _value_text(t), verdict_text(t)) for t in targets]
    rows += [("baseline", b["name"], _limit_text(b), _value_text(b), verdict_text(b)) for b in baseline]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


def _case_name(check: dict, siblings: list[dict]) -> str:
    twice = sum(1 for s in siblings if s["name"] == check["name"]) > 1
    return f"{check['name']} ({check['kind']})" if twice else check["name"]


# --------------------------------------------------------------------------- the command


def _single_verdicts(verdicts: list[dict]) -> list[dict]:
    return [{**v, "value_ci95": None, "verdict": "met" if v["met"] else "missed"} for v in verdicts]


def handle(args) -> int:
    from memstack_capacity.outputs.junit import Case, junit_xml

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
    scenario = load_from_args(args)
    started = time.perf_counter()
    if args.replications == 1:
        from memstack_capacity.api.simulation import simulate

        progress = Progress(f"check {scenario.name}")
        try:
            summary = simulate(scenario, seed=args.seed, progress=progress, engine=args.engine).summary
        finally:
            progress.close()
        targets = _single_verdicts(summary["targets"])
    else:
        from memstack_capacity.api.batch import replicate
        from memstack_capacity.results.replications import combine_summaries

        progress = Progress(f"check {scenario.name}", unit="runs")
        try:
            runs = replicate(scenario, args.replications, seed=args.seed, workers=args.workers, engine=args.engine,
                             progress=progress)
        finally:
            progress.close()
        summary = combine_summaries([r.summary for r in runs], scenario.targets)
        targets = summary["targets"]
    elapsed = time.perf_counter() - started
    compared = baseline_checks(summary, baseline, args.tolerance) if baseline is not None else []

    seeds = summary.get("seeds") or [summary.get("seed")]
    head = f"check {scenario.name}: seed {seeds[0]}" + (
        f"..{seeds[-1]} ({len(seeds)} replications, 95% intervals)" if len(seeds) > 1 else "")
    print(head)
    checks = targets + compared
    if checks:
        print(format_table(targets, compared))
    else:
        print("no targets in the scenario and no baseline: nothing to judge")
    failed = [c for c in checks if not c["met"]]
    inconclusive = sum(1 for c in failed if c["verdict"] == "inconclusive")
    if failed:
        note = f" ({inconclusive} inconclusive, counted as failures)" if inconclusive else ""
        print(f"FAILED: {len(failed)} of {len(checks)} checks{note}")
    elif checks:
        print(f"passed: all {len(checks)} checks")

    if args.junit:
        classname = f"memstack_capacity.check.{scenario.name}"
        cases = [_case(Case, f"{classname}.targets", _case_name(t, targets), t, "TargetMissed") for t in targets]
        cases += [_case(Case, f"{classname}.baseline", b["name"], b, "Regression") for b in compared]
        properties = {"scenario": scenario.name, "seed": seeds[0], "replications": len(seeds)}
        if baseline is not None:
            properties.update(baseline=args.baseline, tolerance=args.tolerance)
        xml = junit_xml(f"capacity check {scenario.name}", cases, properties, time_s=elapsed)
        try:
            path = Path(args.junit)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(xml, encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write the JUnit file {args.junit}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_FAILED if failed else EXIT_OK


def _case(Case, classname: str, name: str, check: dict, kind: str):
    if check["met"]:
        return Case(classname, name)
    failure_type = "Inconclusive" if check["verdict"] == "inconclusive" else kind
    return Case(classname, name, failure=failure_message(check), failure_type=failure_type)
