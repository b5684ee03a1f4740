"""The search space of ``recommend``: a YAML file of dotted scenario keys and their values, checked.

A space file holds one block, ``space:``, mapping each dotted key (the keys of ``--set`` and
``sweep --grid``, :mod:`memstack_capacity.scenario.overrides`) to the values to try::

    description: API replicas and PostgreSQL cores for small.yaml   # optional
    space:
      deployments.api.replicas: [1, 2, 3, 4]                        # a list of values
      datastores.postgres.cores: {min: 1, max: 4, step: 1}          # a linear range
      deployments.api.resources.requests.cpu: {min: 250m, max: 1, factor: 2}   # a log range

A list gives its values as written (``500m``, ``2Gi``: whatever the key takes). A range gives
``min, min + step, …`` or ``min, min × factor, …`` up to ``max`` (included when it falls on the
grid); its bounds may be Kubernetes quantities or durations where the key takes them
(``250m``, ``512Mi``, ``30s``), and its values are then written back in that spelling (whole
millicores, whole MiB from 1 MiB up, milliseconds). A range of whole numbers gives whole numbers.

A space varies what is deployed: keys under ``deployments``, ``datastores`` and ``cluster``
(:data:`CONFIGURATION_SECTIONS`). The workload, events, targets, costs, seed, duration and
warm-up state the question; a space over them is refused.

Every problem is reported before anything runs, naming the file, the key (``space.<key>`` or
``space.<key>.step``) and what is allowed: a key that names nothing in a scenario (with the
nearest keys), a key outside the configuration's sections, an empty list, two values the
scenario reads alike, a range with a bad or missing bound, both or neither of ``step`` and
``factor``, a value the scenario does not accept (each value is applied to every scenario and
validated), and a range, a list or a space of more than :data:`MAX_POINTS` configurations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memstack_capacity.api.batch import check_grid_keys, expand_grid
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.load import read_yaml
from memstack_capacity.scenario.overrides import split_path
from memstack_capacity.scenario.quantities import (format_cpu, format_duration, format_memory, parse_cpu,
                                                   parse_duration, parse_memory)

#: The most configurations a space may hold: each is screened with the flow model (about 0.1 s
#: for small.yaml, a few seconds for peak.yaml), so 256 points stay within minutes.
MAX_POINTS = 256
#: The keys a space file may have at its top level.
TOP_KEYS = ("description", "space")
RANGE_KEYS = ("min", "max", "step", "factor")
#: The scenario sections a space may vary: what is deployed. The others state the question — the
#: traffic (workload, events), what passes (targets), the prices (cost), the seed, the duration
#: and warm-up — and a search over them would find the point that asks the easiest question (the
#: lightest traffic, the loosest target, the cheapest price); the seed is moreover set by the
#: search itself (the same seeds for every point), so a space over it would hold identical points.
CONFIGURATION_SECTIONS = ("deployments", "datastores", "cluster")
_MIB = 2**20


class SpaceError(ScenarioError):
    """A space file that cannot be searched; one line per problem, naming file and field (exit 2)."""

    def render(self) -> str:
        return "; ".join(p.render(self.source) for p in self.problems)


@dataclass(frozen=True)
class Dimension:
    """One key of the space and its values in search order (as given, or the range's, ascending)."""

    key: str
    values: tuple
    spec: object  # what the file gave: the list, or the range mapping
    unit: str = ""  # "cpu", "memory", "duration" or "" (plain numbers or other values)
    parsed: tuple = ()  # each value as the scenario reads it (cores, bytes, seconds, …), for comparisons


@dataclass(frozen=True)
class Space:
    """The dimensions of a space file and where it came from."""

    source: str
    dimensions: tuple[Dimension, ...]
    description: str = ""

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    @property
    def size(self) -> int:
        return math.prod(len(d.values) for d in self.dimensions)

    def points(self) -> list[dict]:
        """Every configuration as an override mapping, the last key varying fastest (``expand_grid``)."""
        return expand_grid({d.key: list(d.values) for d in self.dimensions})

    def index(self, point: Mapping) -> tuple[int, ...]:
        """A point's position along each dimension."""
        return tuple(d.values.index(point[d.key]) for d in self.dimensions)

    def to_dict(self) -> dict:
        return {"source": self.source, "description": self.description, "size": self.size,
                "dimensions": [{"key": d.key, "values": list(d.values), "given": d.spec} for d in self.dimensions]}


def model_value(scenario, key: str):
    """The parsed value at a dotted key of a scenario model (cores, bytes, seconds, …)."""
    node = scenario
    for part in split_path(key):
        if isinstance(node, Mapping):
            node = node[part]
        elif isinstance(node, (list, tuple)):
            node = node[part] if isinstance(part, int) else next(x for x in node if getattr(x, "name", None) == part)
        else:
            node = getattr(node, str(part))
    return node


_UNITS = (("cpu", parse_cpu), ("memory", parse_memory), ("duration", parse_duration))


def _same_reading(spec: list, parsed: list) -> tuple | None:
    """Two listed values the scenario reads alike (``500m`` and ``"0.5"``), which would make two
    identical configurations; None when every value reads differently."""
    seen: dict = {}
    for given, value in zip(spec, parsed):
        key = repr(value)
        if key in seen:
            return seen[key], given
        seen[key] = given
    return None


def _unit_of(bound: str, parsed: float) -> str:
    """Which spelling a string bound was written in: the first parser that reads it as the model did."""
    for unit, parse in _UNITS:
        try:
            if math.isclose(float(parse(bound)), float(parsed), rel_tol=1e-12, abs_tol=1e-12):
                return unit
        except (ValueError, TypeError):
            continue
    return ""


def _spell(unit: str, x: float):
    """A generated range value in the unit's Kubernetes spelling (rounded to what the spelling can say)."""
    if unit == "cpu":
        return format_cpu(max(round(x * 1000), 1) / 1000)
    if unit == "memory":
        return format_memory(int(round(x / _MIB)) * _MIB if x >= _MIB else int(round(x)))
    if unit == "duration":
        return format_duration(round(x * 1000) / 1000)
    return x


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _linear_count(a: float, b: float, step: float) -> float:
    """How many values ``a, a + step, …`` fall within ``b``; ``inf`` when the count overflows a float
    (bounds of ±1e308, a step of 1e-320), so that the size check refuses it instead of crashing."""
    ratio = (b - a) / step
    return math.floor(ratio * (1 + 1e-12)) + 1 if math.isfinite(ratio) else math.inf


def _log_count(a: float, b: float, factor: float) -> float:
    """How many values ``a, a × factor, …`` fall within ``b`` (logarithms taken apart: ``b / a``
    overflows for 1e-300 and 1e300); ``inf`` when the count overflows."""
    ratio = (math.log(b) - math.log(a)) / math.log(factor)
    return math.floor(ratio + 1e-9) + 1 if math.isfinite(ratio) else math.inf


def _count_text(count: float) -> str:
    return f"{count:,}" if math.isfinite(count) else "more than can be counted"


class _Reader:
    """Reads one space file, collecting every problem."""

    def __init__(self, source: str, scenarios: Sequence):
        self.source, self.scenarios = source, list(scenarios)
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str, value=None, has_value: bool = False) -> None:
        self.problems.append(Problem(field, message, value, has_value))

    def bound(self, key: str, name: str, raw):
        """A range bound as a number in the key's unit, and that unit; None after a problem."""
        field = f"space.{key}.{name}"
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            self.problem(field, "must be a number or a quantity such as 250m, 512Mi or 30s", raw, True)
            return None
        if not isinstance(raw, str):
            if not math.isfinite(raw):
                self.problem(field, "must be a finite number", raw, True)
                return None
            return raw, ""
        parsed = self.accepted(key, raw, field)
        if parsed is None:
            return None
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            self.problem(field, "a range needs numeric bounds; give a list of values for this key", raw, True)
            return None
        return parsed, _unit_of(raw, parsed)

    def accepted(self, key: str, value, field: str):
        """The value as the first scenario parses it, after checking every scenario accepts it; None if not."""
        parsed = None
        for i, sc in enumerate(self.scenarios):
            try:
                new = sc.with_overrides({key: value})
            except ScenarioError as exc:
                why = "; ".join(p.message for p in exc.problems)
                self.problem(field, f"not accepted by scenario {sc.name}: {why}", value, True)
                return None
            if i == 0:
                parsed = model_value(new, key)
        return parsed

    def dimension(self, key: str, spec) -> Dimension | None:
        field = f"space.{key}"
        if isinstance(spec, list):
            if not spec:
                self.problem(field, "the list of values is empty; give at least one value")
                return None
            if any(isinstance(v, (list, Mapping)) or v is None for v in spec):
                self.problem(field, "list values must be single values (numbers, strings such as 500m), not "
                                    "lists, blocks or null", spec, True)
                return None
            if len(spec) > MAX_POINTS:
                self.problem(field, f"lists {len(spec):,} values, more than the {MAX_POINTS} a space may hold",
                             has_value=False)
                return None
            if len({repr(v) for v in spec}) != len(spec):
                self.problem(field, "a value is listed twice; list each value once", spec, True)
                return None
            parsed = [self.accepted(key, v, field) for v in spec]
            if any(x is None for x in parsed):
                return None
            same = _same_reading(spec, parsed)
            if same:
                self.problem(field, f"{same[0]!r} and {same[1]!r} are the same value for the scenario; list it once",
                             spec, True)
                return None
            pairs = list(zip(parsed, spec))
            units = {_unit_of(v, x) for x, v in pairs if isinstance(v, str) and isinstance(x, (int, float))}
            unit = units.pop() if len(units) == 1 else ""
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in parsed):
                # Ascending by what the scenario reads (250m before 1): neighbours are one step apart.
                pairs.sort(key=lambda pair: pair[0])
            return Dimension(key, tuple(v for _, v in pairs), list(spec), unit, tuple(x for x, _ in pairs))
        if isinstance(spec, Mapping):
            return self.range(key, spec)
        self.problem(field, "must be a list of values, or a range {min, max, step} or {min, max, factor}", spec,
                     not isinstance(spec, (list, Mapping)))
        return None

    def range(self, key: str, spec: Mapping) -> Dimension | None:
        field = f"space.{key}"
        unknown = [k for k in spec if k not in RANGE_KEYS]
        if unknown:
            self.problem(f"{field}.{unknown[0]}", f"unknown range key; allowed: {', '.join(RANGE_KEYS)}")
            return None
        missing = [k for k in ("min", "max") if k not in spec]
        if missing:
            self.problem(field, f"a range needs `min` and `max` (missing: {', '.join(missing)})")
            return None
        if ("step" in spec) == ("factor" in spec):
            self.problem(field, "a range needs exactly one of `step` (linear) and `factor` (log scale)")
            return None
        lo, hi = self.bound(key, "min", spec["min"]), self.bound(key, "max", spec["max"])
        if lo is None or hi is None:
            return None
        (a, unit_a), (b, unit_b) = lo, hi
        unit = unit_a or unit_b
        if a > b:
            self.problem(f"{field}.min", f"is above max ({spec['max']!r}); give min <= max", spec["min"], True)
            return None
        values: list
        if "step" in spec:
            step = spec["step"]
            if isinstance(step, str) and unit:
                parsed = self.bound(key, "step", step)
                step = parsed[0] if parsed else None
                if step is None:
                    return None
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0 or not math.isfinite(step):
                self.problem(f"{field}.step", "must be a number above 0", step, True)
                return None
            count = _linear_count(a, b, step)
            if count > MAX_POINTS:
                self.problem(f"{field}.step", f"gives {_count_text(count)} values, more than the {MAX_POINTS} a space may "
                                              "hold; give a larger step", step, True)
                return None
            ints = not unit and all(_is_int(x) for x in (spec["min"], spec["max"], step))
            values = [a + i * step for i in range(count)]
        else:
            factor = spec["factor"]
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1 \
                    or not math.isfinite(factor):
                self.problem(f"{field}.factor", "must be a number above 1", factor, True)
                return None
            if a <= 0:
                self.problem(f"{field}.min", "a log-scale range (factor) needs min > 0", spec["min"], True)
                return None
            count = _log_count(a, b, factor)
            if count > MAX_POINTS:
                self.problem(f"{field}.factor", f"gives {_count_text(count)} values, more than the {MAX_POINTS} a "
                                                "space may hold; give a larger factor", factor, True)
                return None
            ints = not unit and all(_is_int(x) for x in (spec["min"], spec["max"]))
            values = [a * factor**i for i in range(count)]
        spelled: list = []
        for x in values:
            v = int(round(x)) if ints else (_spell(unit, x) if unit else float(round(x, 12)))
            if v not in spelled:
                spelled.append(v)
        parsed = [self.accepted(key, v, field) for v in spelled]
        if any(x is None for x in parsed):
            return None
        return Dimension(key, tuple(spelled), dict(spec), unit, tuple(parsed))


def parse_space(data, source: str, scenarios: Sequence) -> Space:
    """A :class:`Space` from parsed YAML, checked against every scenario; :class:`SpaceError` otherwise."""
    reader = _Reader(source, scenarios)
    if not isinstance(data, Mapping):
        raise SpaceError([Problem("", "a space file is a block with a `space:` mapping of dotted keys to values "
                                      "(docs/recommend.md)")], source)
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise SpaceError([Problem(str(unknown[0]), f"unknown key; allowed: {', '.join(TOP_KEYS)}")], source)
    space = data.get("space")
    if not isinstance(space, Mapping) or not space:
        raise SpaceError([Problem("space", "must map at least one dotted scenario key (e.g. "
                                           "deployments.api.replicas) to its values")], source)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise SpaceError([Problem("description", "must be text", description, True)], source)
    keys = [str(k) for k in space]
    for sc in scenarios:
        try:
            check_grid_keys(sc, keys)
        except ScenarioError as exc:
            for p in exc.problems:
                key = p.field.removeprefix("grid key ")
                reader.problem(f"space.{key}", f"{p.message} (in scenario {sc.name})")
    if reader.problems:
        raise SpaceError(reader.problems, source)
    for key in keys:
        section = split_path(key)[0]
        if section not in CONFIGURATION_SECTIONS:
            reader.problem(f"space.{key}", f"`{section}` states the question, not the configuration: a space varies "
                                           f"only {', '.join(CONFIGURATION_SECTIONS)} (set the rest in the "
                                           "scenario or with --set)")
    if reader.problems:
        raise SpaceError(reader.problems, source)
    dims = [reader.dimension(str(k), v) for k, v in space.items()]
    if reader.problems:
        raise SpaceError(reader.problems, source)
    result = Space(source, tuple(d for d in dims if d is not None), description)
    if result.size > MAX_POINTS:
        sizes = " × ".join(f"{len(d.values)} ({d.key})" for d in result.dimensions)
        raise SpaceError([Problem("space", f"holds {result.size:,} configurations ({sizes}), more than the "
                                           f"{MAX_POINTS} allowed; drop values or widen a range's step")], source)
    return result


def load_space(path: str | Path | Mapping, scenarios: Sequence) -> Space:
    """Read and check a space file against the scenarios (each must accept every value).

    ``path`` may also be the ``space:`` block itself, a mapping of dotted keys to a list or a
    range (from a notebook or a script); its problems name ``<python>`` as the file. A single
    scenario may be given alone.
    """
    if not isinstance(scenarios, (list, tuple)):
        scenarios = [scenarios]
    if isinstance(path, Mapping):
        return parse_space({"space": dict(path)}, "<python>", scenarios)
    try:
        data = read_yaml(path)
    except ScenarioError as exc:
        raise SpaceError(exc.problems, str(path)) from None
    return parse_space(data, str(path), scenarios)
