"""Figures and verdicts in human names and units for the console: ``p99 latency 10.2 s``,
``error rate 0.0015 %``, ``throughput 392 req/s`` — never ``latency_p99``, ``1.025e+04 ms``
or ``1.475e-05``. Machine-readable output (summary.json, ``--format json``, JUnit case names)
keeps the summary's own keys.
"""

from __future__ import annotations

#: Human names of the targets' and the baseline's figures, by their key in summary.json.
NAMES = {
    "throughput_rps": "throughput",
    "error_rate": "error rate",
    "latency_mean": "mean latency",
    "latency_p50": "p50 latency",
    "latency_p95": "p95 latency",
    "latency_p99": "p99 latency",
    "job_latency_p99": "p99 job latency",
    "requests.throughput_rps": "throughput",
    "requests.error_rate": "error rate",
    "requests.latency_s.mean": "mean latency",
    "requests.latency_s.p50": "p50 latency",
    "requests.latency_s.p95": "p95 latency",
    "requests.latency_s.p99": "p99 latency",
    "jobs.latency_s.mean": "mean job latency",
    "jobs.latency_s.p99": "p99 job latency",
}


def figure_name(key: str) -> str:
    """``latency_p99`` → ``p99 latency``; an unknown key is shown as it is."""
    return NAMES.get(key, key)


def _number(value: float) -> str:
    """Three significant digits without an exponent, thousands separated: 0.0148, 10.2, 392, 1,200."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    text = f"{value:.3g}"
    if "e" in text:
        text = f"{value:.{max(0, 2 - int(f'{abs(value):e}'.split('e')[1]))}f}"
    return text


def seconds(value: float) -> str:
    """``0.0552`` → ``55.2 ms``; ``10.25`` → ``10.2 s``; ``1.0`` → ``1 s``; ``7200`` → ``2 h``."""
    if abs(value) < 1:
        return f"{_number(value * 1000)} ms"
    if abs(value) < 120:
        return f"{_number(value)} s"
    if abs(value) < 7200:
        return f"{_number(value / 60)} min"
    return f"{_number(value / 3600)} h"


def figure_value(key: str, value) -> str:
    """A figure in its unit: latencies in ms, s or min, the error rate in %, throughput in req/s."""
    if value is None:
        return "n/a"
    if "latency" in key:
        return seconds(value)
    if "error_rate" in key:
        return f"{_number(value * 100)} %"
    if "throughput" in key:
        return f"{_number(value)} req/s"
    return _number(value)


def limit_text(check: dict) -> str:
    """``≤ 1 s``, ``≥ 900 req/s``."""
    sign = "≥" if check["kind"] == "min" else "≤"
    return f"{sign} {figure_value(check['name'], check['limit'])}"


def value_text(check: dict) -> str:
    """The value, with its 95 % interval when there is one: ``10.2 s (95 % CI 9.8 s – 10.6 s)``."""
    text = figure_value(check["name"], check["value"])
    ci = check.get("value_ci95")
    if ci is not None and check["value"] is not None:
        text += f" (95 % CI {figure_value(check['name'], ci[0])} – {figure_value(check['name'], ci[1])})"
    return text


def mark(check: dict) -> str:
    """``met``, ``MISS`` or ``INCONCLUSIVE`` (the interval straddles the limit)."""
    verdict = check.get("verdict") or ("met" if check["met"] else "missed")
    return {"met": "met", "inconclusive": "INCONCLUSIVE"}.get(verdict, "MISS")


def verdict_line(check: dict) -> str:
    """``MISS  p99 latency  10.2 s  (target ≤ 1 s)``."""
    note = f"; {check['note']}" if check.get("note") else ""
    return (f"{mark(check):<4}  {figure_name(check['name'])}  {value_text(check)}  "
            f"(target {limit_text(check)}{note})")
