"""Dotted-path overrides: ``deployments.api.hpa.maxReplicas=30`` on top of a scenario.

A path walks mappings by key and lists by index (``requests[0]`` or ``requests.0``)
or, for lists of named items such as ``workload.requests`` and ``workload.jobs``,
by name (``requests[search]``). Overrides only replace what is there: a path that
names nothing is an error that lists the nearest keys, never a new silent key.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario import safe_yaml

_TOKEN = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def split_path(path: str) -> list[str | int]:
    """``workload.requests[0].weight`` → ``["workload", "requests", 0, "weight"]``.

    Bracketed or bare all-digit segments are list indices; anything else is a key or a name.
    """
    parts: list[str | int] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        if text[pos] == "." and parts:
            pos += 1
        match = _TOKEN.match(text, pos)
        if not match or match.group(0) in ("", "[]"):
            raise ValueError(f"cannot read the path {path!r} "
                             "(expected keys joined by dots, e.g. deployments.api.replicas)")
        segment = match.group(1) if match.group(1) is not None else match.group(2)
        segment = segment.strip()
        parts.append(int(segment) if segment.isdigit() else segment)
        pos = match.end()
    if not parts:
        raise ValueError("the path is empty")
    return parts


def _shown(parts: list) -> str:
    out = ""
    for item in parts:
        out += f"[{item}]" if isinstance(item, int) else ("." if out else "") + str(item)
    return out


def _nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=3)
    listed = ", ".join(options) if options else "none"
    hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
    return f"(have: {listed}){hint}"


def _step(node: Any, segment: str | int, walked: list) -> tuple[Any, str | int]:
    """The child named by ``segment`` and the key or index that reaches it; ValueError if none."""
    where = _shown(walked) or "the scenario"
    if isinstance(node, Mapping):
        key = str(segment)
        if key not in node:
            raise ValueError(f"{where} has no key `{key}` {_nearest(key, [str(k) for k in node])}")
        return node[key], key
    if isinstance(node, list):
        if isinstance(segment, int):
            if segment >= len(node):
                raise ValueError(f"{where} has {len(node)} item{'s' if len(node) != 1 else ''}; no index {segment}")
            return node[segment], segment
        names = [item.get("name") for item in node if isinstance(item, Mapping)]
        for index, item in enumerate(node):
            if isinstance(item, Mapping) and item.get("name") == segment:
                return item, index
        named = [str(n) for n in names if n is not None]
        if not named:
            raise ValueError(f"{where} is a list; select an item by index, e.g. {where}[0]")
        raise ValueError(f"{where} has no item named `{segment}` {_nearest(str(segment), named)}")
    kind = "null" if node is None else type(node).__name__
    raise ValueError(f"{where} is {kind}, not a block of keys; set the whole of {where} instead")


def set_path(data: Any, path: str, value: Any) -> None:
    """Replace the value at a dotted ``path`` in ``data`` (in place); ValueError if it names nothing."""
    parts = split_path(path)
    node, walked = data, []
    for segment in parts[:-1]:
        node, key = _step(node, segment, walked)
        walked.append(key)
    _, last = _step(node, parts[-1], walked)
    node[last] = value


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any], source: str | None = None,
                    label=None) -> dict:
    """A deep copy of scenario ``data`` with every ``{"dotted.path": value}`` applied in order.

    Every bad path is reported at once in one :class:`ScenarioError`, at the field
    ``label(path)`` (default ``--set path``; a config_change event names its own key).
    """
    label = label or (lambda path: f"--set {path}")
    result = copy.deepcopy(dict(data))
    problems = []
    for path, value in overrides.items():
        try:
            set_path(result, path, copy.deepcopy(value))
        except ValueError as exc:
            problems.append(Problem(label(path), str(exc), value, _plain(value)))
    if problems:
        raise ScenarioError(problems, source)
    return result


def _plain(value: Any) -> bool:
    """Whether a value is short enough to show in a message (not a list or a mapping)."""
    return not isinstance(value, (Mapping, list))


def parse_set_argument(text: str) -> tuple[str, Any]:
    """``"deployments.api.hpa.maxReplicas=30"`` → ``("deployments.api.hpa.maxReplicas", 30)``.

    The value is read as YAML: ``30`` is a number, ``30m`` a string, ``[1, 2]`` a list,
    ``{cpu: 1}`` a mapping, an empty value null.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError([Problem(f"--set {text}", "expected dotted.key=value, e.g. deployments.api.replicas=4")])
    try:
        split_path(key)
        value = safe_yaml.load_text(raw) if raw.strip() else None
    except ValueError as exc:
        raise ScenarioError([Problem(f"--set {text}", str(exc))]) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise ScenarioError([Problem(f"--set {text}", f"the value is not valid YAML: {problem}")]) from None
    return key, value


def parse_set_arguments(texts: list[str] | None) -> dict[str, Any]:
    """The overrides of repeated ``--set`` options, in order (a later one for a key wins)."""
    overrides: dict[str, Any] = {}
    for text in texts or ():
        key, value = parse_set_argument(text)
        overrides.pop(key, None)
        overrides[key] = value
    return overrides
