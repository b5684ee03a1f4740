"""The base every scenario model shares, and the annotated field types for numbers and quantities.

Models are frozen and forbid unknown keys, so a misspelled key is an error rather
than a silent default. Quantity fields accept the YAML spellings and hold SI numbers.
Every number is finite and bounded: counts are whole numbers (``true`` or ``2.5`` is
not a count), plain numbers reject NaN and infinity, and each kind of number has a
ceiling far above any real use (the ``MAX_*`` constants, listed in docs/scenarios.md),
so an absurd value is an error at load time rather than a hang or an overflow later.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, Strict
from pydantic_core import PydanticCustomError

from memstack_capacity.errors import Problem
from memstack_capacity.scenario import quantities as q


class SpecModel(BaseModel):
    """Frozen, strict base for every block of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, validate_default=True,
                              allow_inf_nan=False)


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


def _at_most(limit: float, spelled: str):
    def check(value: float) -> float:
        if value > limit:
            raise ValueError(f"must be at most {spelled}")
        return value

    return check


#: The largest count (replicas, users, connections, nodes, ...).
MAX_COUNT = 10**9
#: The largest magnitude of a plain number (weights, rates, bounds).
MAX_NUMBER = 1e12
#: The longest duration: 100 years, in seconds.
MAX_SECONDS = 100 * 365 * 86400
#: The most memory one quantity may name: 1 PiB.
MAX_MEMORY = 2**50
#: The most cores one quantity may name.
MAX_CPU = 1e6
#: The largest coefficient of variation of a distribution or of arrivals.
MAX_CV = 100.0
#: The largest multiplier (traffic spikes, slowdowns, retry back-off growth).
MAX_FACTOR = 1e6
#: The most times a step or a retry may repeat.
MAX_REPEAT = 10_000

def _within(limit: float):
    def check(value: float) -> float:
        if abs(value) > limit:
            shown = f"{int(limit):,}" if float(limit).is_integer() else f"{limit:g}"
            raise ValueError(f"must be at most {shown}" if value > 0 else f"must be at least -{shown}")
        return value

    return check


# The ceilings are validators, not Field(le=...), so a field's own Field(ge=..., le=...) adds to them.
#: A whole number: ``true``, ``2.5`` or ``"3"`` are not counts. At most :data:`MAX_COUNT`.
Count = Annotated[int, Strict(), AfterValidator(_within(MAX_COUNT))]
#: A whole number of seconds (Kubernetes' ``*Seconds`` fields), 0 to :data:`MAX_SECONDS`.
Seconds = Annotated[int, Strict(), AfterValidator(_non_negative), AfterValidator(_within(MAX_SECONDS))]
#: A finite number (a bare integer is fine; ``true`` or ``"0.5"`` is not), within ±:data:`MAX_NUMBER`.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(_within(MAX_NUMBER))]
#: A coefficient of variation: finite, 0 to :data:`MAX_CV`.
Cv = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(_non_negative),
               AfterValidator(_within(MAX_CV))]
#: A multiplier: finite, greater than zero, at most :data:`MAX_FACTOR`.
Factor = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(_positive),
                   AfterValidator(_within(MAX_FACTOR))]


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
    AfterValidator(_at_most(MAX_SECONDS, f"100 years ({MAX_SECONDS} s)")),
    PlainSerializer(q.format_duration, return_type=str, when_used="json"),
]
#: Seconds, strictly positive.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
#: Cores; YAML ``500m`` or ``2``.
Cpu = Annotated[
    float,
    BeforeValidator(_wrap(q.parse_cpu, q.CPU_HELP)),
    AfterValidator(_positive),
    AfterValidator(_at_most(MAX_CPU, f"{MAX_CPU:.0f} cores")),
    PlainSerializer(q.format_cpu, return_type=str, when_used="json"),
]
#: Bytes; YAML ``512Mi``, ``2Gi`` or a number.
Memory = Annotated[
    int,
    BeforeValidator(_wrap(q.parse_memory, q.MEMORY_HELP)),
    AfterValidator(_non_negative),
    AfterValidator(_at_most(MAX_MEMORY, "1Pi (2^50 bytes)")),
    PlainSerializer(q.format_memory, return_type=str, when_used="json"),
]
