"""The overlay: estimates as dotted scenario keys (the keys of ``--set``), written and read.

Written (:func:`render`): a comment block giving each estimate's value, interval, fit and
whether the data identify it, then one ``"dotted.key": value`` line per setting, durations in
seconds and memory in bytes (values a scenario accepts as they are). Read (:func:`load`): a
flat YAML mapping of dotted keys to values, and the file's SHA-256 so a run can say which
calibration it used. ``run``, ``check``, ``sweep`` and ``capacity`` merge it like ``--set``
(``--set`` wins); a key that names nothing is reported at ``--calibration FILE: key``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from memstack_capacity.errors import MeasurementError, Problem


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.4g} ms" if abs(value) < 1 else f"{value:.4g} s"
    if unit == "bytes":
        return f"{value / 2**20:.4g} MiB"
    if unit == "fraction":
        return f"{value:.2%}"
    return f"{value:.4g} {unit}".strip()


def describe(estimate) -> str:
    """``5.02 ms [4.91 ms, 5.13 ms]`` — the estimate and its interval, in the figure's unit."""
    interval = "" if estimate.low is None else f" [{_fmt(estimate.low, estimate.unit)}, {_fmt(estimate.high, estimate.unit)}]"
    return _fmt(estimate.estimate, estimate.unit) + interval


def _value(value: Any) -> str:
    """A value as one line of YAML (JSON's flow style is YAML)."""
    return json.dumps(value, ensure_ascii=False)


def render(calibration, group: str = "service") -> str:
    """The overlay file's text for the estimates of ``group`` (``service`` or ``load``)."""
    what = {"service": "service times, memory, think time and mix",
            "load": "the measured load profile (replays the test)"}[group]
    lines = [f"# Calibration of scenario {calibration.scenario}: {what}.",
             f"# From {', '.join(calibration.sources)}: {calibration.windows} window(s) of {calibration.window_s:g} s;",
             f"# deployment {calibration.deployment}; seed {calibration.seed}; intervals are 95 % percentile intervals",
             "# of a pairs bootstrap over windows (drawn within each recording, in blocks where the fit's",
             "# residuals are correlated). Use: run SCENARIO --calibration THIS_FILE (--set wins).",
             ""]
    body = []
    for e in calibration.estimates:
        if e.group != group:
            continue
        head = f"# {e.figure}: {describe(e)}; identifiable: {e.identifiable}"
        lines_e = [head] + ([f"#   fit: {e.fit}"] if e.fit else []) + ([f"#   note: {e.why}"] if e.why else [])
        if not e.settings:
            lines_e.append("#   (not written)")
        body += lines_e
        body += [f"{_value(k)}: {_value(v)}" for k, v in e.settings.items()]
        body.append("")
    if any(n for n in calibration.notes) and group == "service":
        lines += ["# Notes:"] + [f"#   - {n}" for n in calibration.notes] + [""]
    return "\n".join(lines + body).rstrip("\n") + "\n"


def load(path: str | Path) -> tuple[dict[str, Any], str]:
    """The overlay at ``path``: ({dotted key: value}, SHA-256 of the file's bytes)."""
    from memstack_capacity.scenario import safe_yaml
    from memstack_capacity.scenario.overrides import split_path

    from memstack_capacity.calibration.measurements import read_bytes

    source = str(path)
    raw = read_bytes(path, safe_yaml.MAX_BYTES, unpack=False,
                     hint="--calibration takes a calibration.yaml written by `calibrate`")
    try:
        data = safe_yaml.load_text(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise MeasurementError([Problem("", "not UTF-8 text")], source) from None
    except Exception as exc:  # noqa: BLE001 - YAML's and the size limits' errors alike are bad input
        raise MeasurementError([Problem("", f"not valid YAML: {getattr(exc, 'problem', None) or exc}")],
                               source) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise MeasurementError([Problem("", "expected a mapping of dotted scenario keys to values, e.g. "
                                            "\"deployments.api.memory_base\": 314572800")], source)
    problems = []
    for key in data:
        try:
            split_path(str(key))
        except ValueError as exc:
            problems.append(Problem(str(key), str(exc)))
    if problems:
        raise MeasurementError(problems, source)
    return {str(k): v for k, v in data.items()}, hashlib.sha256(raw).hexdigest()
