"""Durations and Kubernetes quantities as they are written in YAML, and as numbers.

Scenario files speak Kubernetes: ``30s``, ``5m``, ``250ms``; CPU ``500m`` or ``2``;
memory ``512Mi``, ``2Gi`` or plain bytes. Inside the simulator everything is SI:
seconds, cores, bytes. These parsers are the only place that knows the spellings.

Written here rather than taken from the Kubernetes Python client
(``kubernetes.utils.parse_quantity``): that package brings an API client and its
dependencies for one function, accepts forms a scenario must not (it parses with
``Decimal``, so ``NaN`` or ``Infinity`` slip through), and returns no message naming what
is allowed. These parsers are stricter and say so in every error.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h|d)")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY = re.compile(r"^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)([A-Za-z]*)$")

DURATION_HELP = "a duration such as 250ms, 30s, 5m, 1h, 1h30m, or a number of seconds"
CPU_HELP = "a CPU quantity such as 500m or 2 (cores)"
MEMORY_HELP = "a memory quantity such as 512Mi, 2Gi, 256M or a number of bytes"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: object) -> float:
    """Seconds from ``30s``, ``5m``, ``1h30m``, ``250ms`` or a plain number of seconds."""
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-") and text[1:2].isdigit():
            # Spelled correctly but negative: let the field say "must not be negative".
            return -parse_duration(text[1:])
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(f"not {DURATION_HELP}") from None
    else:
        raise ValueError(f"not {DURATION_HELP}")
    if not math.isfinite(seconds):
        raise ValueError(f"not {DURATION_HELP}")
    return seconds


def _parse_quantity(value: object, help_text: str) -> tuple[float, str]:
    if _is_number(value):
        return float(value), ""
    if not isinstance(value, str):
        raise ValueError(f"not {help_text}")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not {help_text}")
    return float(match.group(1)), match.group(2)


def parse_cpu(value: object) -> float:
    """Cores from ``500m``, ``2``, ``1.5`` (Kubernetes CPU quantity)."""
    number, suffix = _parse_quantity(value, CPU_HELP)
    if suffix == "":
        cores = number
    elif suffix == "m":
        cores = number / 1000.0
    else:
        raise ValueError(f"not {CPU_HELP}: unknown suffix {suffix!r}")
    if not math.isfinite(cores):
        raise ValueError(f"not {CPU_HELP}")
    return cores


def parse_memory(value: object) -> int:
    """Bytes from ``512Mi``, ``2Gi``, ``256M``, ``1e9`` or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number, suffix = _parse_quantity(value, MEMORY_HELP)
    digits = str(value).strip()[: len(str(value).strip()) - len(suffix)]
    if suffix in ("",) + tuple(_BINARY) and re.fullmatch(r"[+-]?\d+", digits):
        return int(digits) * (_BINARY[suffix] if suffix else 1)
    if suffix == "":
        factor = 1.0
    elif suffix in _BINARY:
        factor = _BINARY[suffix]
    elif suffix in _DECIMAL:
        factor = _DECIMAL[suffix]
    elif suffix in ("mb", "gb", "kb"):
        # Redis spells "256mb" in lower case and means MiB (redis.conf: 1mb => 1024*1024 bytes).
        factor = {"kb": 2**10, "mb": 2**20, "gb": 2**30}[suffix]
    elif suffix.lower() in ("mb", "gb", "kb"):
        raise ValueError(
            f"not {MEMORY_HELP}: {suffix!r} is ambiguous; write M (10^6 bytes) or Mi (2^20), "
            "or lower-case mb as Redis does (2^20)"
        )
    else:
        raise ValueError(f"not {MEMORY_HELP}: unknown suffix {suffix!r}")
    result = number * factor
    if not math.isfinite(result):
        raise ValueError(f"not {MEMORY_HELP}")
    return int(round(result))


def _exact_number(value: float) -> str:
    # repr() is the shortest spelling that parses back to the same float.
    return repr(float(value))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 30s, 5m, 1h, 250ms; otherwise a number of seconds.

    The result always parses back to exactly ``seconds``, so a scenario written out
    with these spellings re-validates to the same values.
    """
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        count = seconds / size
        if abs(count - round(count)) < 1e-9 and round(count) != 0:
            text = f"{int(round(count))}{unit}"
            if parse_duration(text) == seconds:
                return text
    text = _exact_number(seconds)
    return text if "e" in text else f"{text}s"


def format_cpu(cores: float) -> str:
    """Kubernetes spelling of a CPU quantity: ``500m``, ``2``, ``2000m`` becomes ``2``.

    Finer than a millicore (which Kubernetes would not accept) falls back to a
    plain number of cores, so the spelling still parses back exactly.
    """
    milli = round(cores * 1000)
    text = str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
    return text if parse_cpu(text) == cores else _exact_number(cores)


def format_memory(n_bytes: int) -> str:
    """Kubernetes spelling of a memory quantity: the largest binary unit that divides it."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        size = _BINARY[suffix]
        if n_bytes % size == 0 and n_bytes >= size:
            return f"{n_bytes // size}{suffix}"
    return str(int(n_bytes))
