"""Reading scenario files: YAML → dict → :class:`Scenario`, with errors that name
the file, the dotted field, the value and what is allowed, all at once
(:mod:`~memstack_capacity.scenario.problems` finds them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario import safe_yaml
from memstack_capacity.scenario.event_checks import config_change_problems
from memstack_capacity.scenario.models import Scenario
from memstack_capacity.scenario.problems import parse_as, problems_in


def scenario_problems(data: Any) -> list[Problem]:
    """Every problem in already-parsed scenario data (empty if it is valid)."""
    return problems_in(Scenario, data)


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Validate already-parsed YAML data into a Scenario; a ScenarioError lists every problem."""
    return _with_events_checked(parse_as(Scenario, data, source), source)


def _with_events_checked(scenario: Scenario, source: str | None) -> Scenario:
    """The scenario, once every config_change in it is known to apply (a ScenarioError otherwise)."""
    problems = config_change_problems(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return scenario


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a file; a missing file, bad YAML or a file beyond the loader's
    limits (:mod:`~memstack_capacity.scenario.safe_yaml`) is a ScenarioError."""
    path = Path(path)
    text = _read_text(path)
    try:
        return safe_yaml.load_text(text)
    except safe_yaml.YamlLimitError as exc:
        raise ScenarioError([Problem("", f"not accepted: {exc}")], str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start and mark and start.line != mark.line:
            context += f" that starts at line {start.line + 1}, column {start.column + 1}"
        detail = f"{problem} ({context})" if context else problem
        raise ScenarioError([Problem("", f"not valid YAML: {where}{detail}")], str(path)) from None


def _read_text(path: Path) -> str:
    """The file as text, reading at most one byte beyond :data:`safe_yaml.MAX_BYTES` (so an
    endless file such as /dev/zero is refused rather than read)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(safe_yaml.MAX_BYTES + 1)
        if len(raw) > safe_yaml.MAX_BYTES:
            raise ScenarioError([Problem("", f"not accepted: larger than {safe_yaml.MAX_BYTES:,} bytes "
                                             "(the limit MAX_BYTES)")], str(path))
        return raw.decode("utf-8").replace("\r\n", "\n")
    except FileNotFoundError:
        raise ScenarioError([Problem("", "no such file")], str(path)) from None
    except IsADirectoryError:
        raise ScenarioError([Problem("", "is a directory, not a scenario file")], str(path)) from None
    except PermissionError:
        raise ScenarioError([Problem("", "cannot read the file: permission denied")], str(path)) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem("", f"not UTF-8 text (byte {exc.start})")], str(path)) from None
    except OSError as exc:
        raise ScenarioError([Problem("", f"cannot read the file: {exc.strerror or exc}")], str(path)) from None


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None, label=None) -> Scenario:
    """Load and validate a scenario file, then apply ``{"dotted.key": value}`` overrides.

    The file is checked on its own first (its problems name its own fields); the
    overrides then address the resolved scenario, so a default such as
    ``cluster.nodes`` can be overridden even when the file leaves it out. ``label(path)`` is the
    field a bad override is reported at (default ``--set path``).
    """
    scenario = parse_scenario(read_yaml(path), str(path))
    if overrides:
        scenario = _with_events_checked(scenario.with_overrides(overrides, source=str(path), label=label),
                                        f"{path} (with overrides)")
    return scenario


def find_scenario(name: str, start: str | Path | None = None) -> Path:
    """The path of ``scenarios/<name>`` in ``start`` (default: the current directory) or the
    nearest of its parents that has it: a notebook in ``notebooks/`` finds the bundled ones."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.resolve().parents):
        if (folder / "scenarios" / name).is_file():
            return folder / "scenarios" / name
    raise FileNotFoundError(f"scenarios/{name} not found in {here} or above it")
