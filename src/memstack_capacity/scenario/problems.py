"""Every problem in scenario data at once, each naming the dotted field, the value and
what is allowed.

Pydantic's error locations and messages are translated here: union tags are
dropped from locations (``steps[1].call.call`` becomes ``steps[1].call``), and
messages are said plainly (an unknown key lists the keys allowed there and the
nearest one). Cross-reference checks run on the raw data as well, because
pydantic skips a model's ``mode="after"`` validator when any of its fields fail.
The model to validate against is an argument (the scenario model passes itself),
so this module does not import the model it checks.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.crossref import cross_reference_problems, hpa_bounds_problems

def dotted(parts: tuple | list) -> str:
    """``("workload", "requests", 0, "weight")`` → ``workload.requests[0].weight``."""
    out = ""
    for item in parts:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += ("." if out else "") + str(item)
    return out


def _join(prefix: str, field: str) -> str:
    if not field:
        return prefix
    if not prefix or field.startswith("["):
        return prefix + field
    return f"{prefix}.{field}"


# --- walking the model's types along an error location ---------------------------------


def _unwrap(tp: Any) -> tuple[Any, list]:
    """The bare type and the metadata of every ``Annotated`` layer around it."""
    meta: list = []
    while typing.get_origin(tp) is typing.Annotated:
        meta.extend(tp.__metadata__)
        tp = tp.__origin__
    return tp, meta


def _union_members(tp: Any) -> list | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        return members if len(members) > 1 else None
    return None


def _optional_inner(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def _member_for_tag(members: list, meta: list, tag: object) -> Any | None:
    """The union member pydantic labelled ``tag``: a Tag, a discriminator value or a class name."""
    key = None
    for item in meta:
        if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
            key = item.discriminator
        elif isinstance(item, Discriminator) and isinstance(item.discriminator, str):
            key = item.discriminator
    for member in members:
        bare, member_meta = _unwrap(member)
        if any(isinstance(m, Tag) and m.tag == tag for m in member_meta):
            return bare
        if getattr(bare, "__name__", None) == tag:
            return bare
        if key and isinstance(bare, type) and issubclass(bare, BaseModel) and key in bare.model_fields:
            if tag in typing.get_args(bare.model_fields[key].annotation):
                return bare
    return None


def clean_location(loc: tuple, root: type[BaseModel]) -> tuple[list, Any]:
    """The user's location (union tags dropped) and the type found there (None if unknown)."""
    tp: Any = root
    out: list = []
    for item in loc:
        bare, meta = _bare(tp)
        members = _union_members(bare) if bare is not None else None
        if members is not None:
            # pydantic labels each union member in the location; the user never wrote it.
            tp = _member_for_tag(members, meta, item)
            continue
        out.append(item)
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            field = bare.model_fields.get(item) if isinstance(item, str) else None
            tp = _field_type(field) if field is not None else None
        elif typing.get_origin(bare) in (list, tuple) and isinstance(item, int):
            args = typing.get_args(bare)
            tp = args[0] if typing.get_origin(bare) is list or args[-1] is Ellipsis else args[item]
        elif typing.get_origin(bare) is dict:
            tp = typing.get_args(bare)[1]
        else:
            tp = None
    return out, tp


def _bare(tp: Any) -> tuple[Any, list]:
    """The type with ``Annotated`` layers and ``| None`` taken off, and the metadata found."""
    if tp is None:
        return None, []
    bare, meta = _unwrap(tp)
    inner = _optional_inner(bare)
    if inner is not bare:
        bare, more = _unwrap(inner)
        meta = meta + more
    return bare, meta


def _field_type(field: FieldInfo) -> Any:
    if field.metadata:
        return typing.Annotated[(field.annotation, *field.metadata)]
    return field.annotation


def _model_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    bare, _ = _bare(clean_location(loc, root)[1])
    return bare if isinstance(bare, type) and issubclass(bare, BaseModel) else None


# --- translating pydantic's messages ----------------------------------------------------

_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
}


def _shown(value: object) -> bool:
    return not isinstance(value, (Mapping, list))


def _translate(err: dict, root: type[BaseModel]) -> list[Problem]:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    parts, _ = clean_location(loc, root)
    field, value = dotted(parts), err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], root)
        allowed = list(model.model_fields) if model else []
        message = "unknown key"
        if allowed:
            message += f"; allowed keys here: {', '.join(allowed)}"
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            if close:
                message += f"; did you mean `{close[0]}`?"
        return [Problem(field, message)]
    if kind == "missing":
        model = _model_at(loc[:-1], root)
        info = model.model_fields.get(loc[-1]) if model and isinstance(loc[-1], str) else None
        what = f" ({info.description})" if info is not None and info.description else ""
        return [Problem(field, f"required key is missing{what}")]
    if kind in ("problems", "cross_reference"):
        return [Problem(_join(field, p.field), p.message, p.value, p.has_value) for p in ctx["problems"]]
    if kind == "literal_error":
        return [Problem(field, f"must be one of {ctx['expected']}", value, _shown(value))]
    if kind == "union_tag_invalid":
        key = str(ctx.get("discriminator", "")).strip("'")
        return [Problem(_join(field, key), f"must be one of {ctx['expected_tags']}", ctx.get("tag"), True)]
    if kind == "union_tag_not_found":
        key = str(ctx.get("discriminator", "")).strip("'")
        return [Problem(_join(field, key), "required key is missing (it says which kind of block this is)")]
    bounds = {"greater_than_equal": "must be at least {ge}", "greater_than": "must be greater than {gt}",
              "less_than_equal": "must be at most {le}", "less_than": "must be less than {lt}"}
    if kind in bounds:
        limits = {k: _number(v) for k, v in ctx.items()}
        return [Problem(field, bounds[kind].format(**limits), value, True)]
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return [Problem(field, "must not be empty" if n == 1 else f"must be at least {n} characters", value, True)]
    if kind == "step_kind" and isinstance(value, Mapping):
        keys = ", ".join(map(str, value)) or "none"
        return [Problem(field, f"{err['msg']}; got keys: {keys}")]
    if kind == "too_short":
        n = ctx.get("min_length")
        return [Problem(field, f"needs at least {n} item{'s' if n != 1 else ''}", value, _shown(value))]
    if kind == "too_long":
        return [Problem(field, f"takes at most {ctx.get('max_length')} items")]
    if kind == "string_pattern_mismatch":
        return [Problem(field, f"must match the pattern {ctx.get('pattern')}", value, True)]
    if kind in _TYPE_WORDS:
        got = f"; got a {_kind_of(value)}" if not _shown(value) else ""
        return [Problem(field, _TYPE_WORDS[kind] + got, value, _shown(value))]
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    message = message.replace("Input should be", "must be")
    lines = [line for line in message.split("\n") if line.strip()] or [message]
    return [Problem(field, line, value, _shown(value) and len(lines) == 1) for line in lines]


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _kind_of(value: object) -> str:
    return "mapping" if isinstance(value, Mapping) else "list" if isinstance(value, list) else type(value).__name__


def _merge_union_alternatives(problems: list[Problem]) -> list[Problem]:
    """One line per field when every member of a plain union failed (``int | str``).

    Repeated problems are dropped by a set of keys, so thousands of problems (a file of
    unknown keys) take linear time, not quadratic.
    """
    merged: list[Problem] = []
    seen: set = set()
    for problem in problems:
        if merged and merged[-1].field == problem.field and merged[-1].value == problem.value \
                and problem.message.startswith("must be ") and merged[-1].message.startswith("must be "):
            last = merged[-1]
            alt = problem.message[len("must be "):]
            merged[-1] = Problem(last.field, f"{last.message} or {alt}", last.value, last.has_value)
            seen.add(_key(merged[-1]))
        elif _key(problem) not in seen:
            seen.add(_key(problem))
            merged.append(problem)
    return merged


def _key(problem: Problem) -> tuple:
    """A hashable identity of a problem (its value may be a list or a mapping)."""
    return problem.field, problem.message, type(problem.value).__name__, repr(problem.value), problem.has_value


def problems_from_validation(error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """One :class:`Problem` per pydantic error validating ``root``: plain words, located by dotted path."""
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        problems.extend(_translate(err, root))
    return _merge_union_alternatives(problems)


def problems_in(model: type[BaseModel], data: Any) -> list[Problem]:
    """Every problem in already-parsed scenario data for ``model`` (empty if it is valid)."""
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a YAML {_kind_of(data)}"
        return [Problem("", f"a scenario must be a YAML mapping of keys such as name, duration, workload "
                            f"(the file is {kind})")]
    try:
        model.model_validate(dict(data))
    except ValidationError as exc:
        errors = [e for e in exc.errors(include_url=False) if e["type"] != "cross_reference"]
        problems = _merge_union_alternatives([p for e in errors for p in _translate(e, model)])
        problems += cross_reference_problems(data)
    else:
        problems = []
    return problems + hpa_bounds_problems(data, problems)


def parse_as(model: type[BaseModel], data: Any, source: str | None = None) -> Any:
    """Validate already-parsed YAML data into ``model``; a ScenarioError lists every problem."""
    problems = problems_in(model, data)
    if problems:
        raise ScenarioError(problems, source)
    return model.model_validate(dict(data))
