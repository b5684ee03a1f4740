"""The base every scenario model shares, and the annotated field types for quantities.

Models are frozen and forbid unknown keys, so a misspelled key is an error rather
than a silent default. Quantity fields accept the YAML spellings and hold SI numbers.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic_core import PydanticCustomError

from memstack_capacity.errors import Problem
from memstack_capacity.scenario import quantities as q


class SpecModel(BaseModel):
    """Frozen, strict base for every block of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, validate_default=True)


def raise_problems(problems: list[Problem], kind: str = "problems") -> NoReturn:
    """Raise every problem a model validator found at once.

    Each problem's ``field`` is relative to the model being validated; the loader
    joins it to the model's own location, so messages name the exact field.
    """
    text = "\n".join(p.render(None) for p in problems)
    raise PydanticCustomError(kind, text.replace("{", "{{").replace("}", "}}"), {"problems": list(problems)})


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _wrap(parser, help_text: str):
    def parse(value: object):
        try:
            return parser(value)
        except ValueError as exc:
            raise ValueError(str(exc) if str(exc) else f"not {help_text}") from None

    return parse


#: Seconds; YAML ``30s``, ``5m``, ``250ms`` or a number. Never negative.
Duration = Annotated[
    float,
    BeforeValidator(_wrap(q.parse_duration, q.DURATION_HELP)),
    AfterValidator(_non_negative),
    PlainSerializer(q.format_duration, return_type=str, when_used="json"),
]
#: Seconds, strictly positive.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
#: Cores; YAML ``500m`` or ``2``.
Cpu = Annotated[
    float,
    BeforeValidator(_wrap(q.parse_cpu, q.CPU_HELP)),
    AfterValidator(_positive),
    PlainSerializer(q.format_cpu, return_type=str, when_used="json"),
]
#: Bytes; YAML ``512Mi``, ``2Gi`` or a number.
Memory = Annotated[
    int,
    BeforeValidator(_wrap(q.parse_memory, q.MEMORY_HELP)),
    AfterValidator(_non_negative),
    PlainSerializer(q.format_memory, return_type=str, when_used="json"),
]
