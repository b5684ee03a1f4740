"""Reading scenario files: YAML → dict → :class:`Scenario`, with errors that name
the file, the dotted field, the value and what is allowed, all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.models import Scenario


def _dotted(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def problems_from_validation(error: ValidationError) -> list[Problem]:
    """One :class:`Problem` per pydantic error, located by dotted path."""
    problems = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        has_value = err["type"] not in ("missing",) and not isinstance(err.get("input"), (dict, list))
        for line in msg.split("\n"):
            problems.append(Problem(_dotted(loc), line, err.get("input"), has_value and "\n" not in msg))
    return problems


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Validate already-parsed YAML data into a Scenario."""
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else type(data).__name__
        raise ScenarioError([Problem("", f"a scenario must be a YAML mapping of keys (the file is {kind})")], source)
    try:
        return Scenario.model_validate(dict(data))
    except ValidationError as exc:
        raise ScenarioError(problems_from_validation(exc), source) from None


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a file; a missing file or bad YAML is a ScenarioError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem("", "no such file")], str(path)) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem("", f"cannot read the file: {exc.__class__.__name__}")], str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([Problem("", f"not valid YAML: {where}{problem}")], str(path)) from None


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load and validate a scenario file, applying ``dotted.key: value`` overrides first."""
    data = read_yaml(path)
    if overrides:
        from memstack_capacity.scenario.overrides import apply_overrides

        data = apply_overrides(data, overrides, source=str(path))
    return parse_scenario(data, str(path))
