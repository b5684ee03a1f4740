"""The exceptions memstack-capacity raises, one base class for all of them.

The CLI maps them to exit codes: a :class:`ScenarioError` is bad input (exit 2),
a :class:`SimulationError` a failure while simulating (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass


class MemstackCapacityError(Exception):
    """Base class of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, what was found and what is allowed."""

    field: str
    message: str
    value: object = None
    has_value: bool = False

    def render(self, source: str | None) -> str:
        where = f"{source}: " if source else ""
        field = self.field or "(top level)"
        shown = f" (got {self.value!r})" if self.has_value else ""
        return f"{where}{field}: {self.message}{shown}"


class ScenarioError(MemstackCapacityError):
    """Raised when a scenario file or override is invalid; lists every problem at once."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        lines = [p.render(self.source) for p in self.problems]
        head = f"{len(lines)} problem{'s' if len(lines) != 1 else ''} in scenario"
        if self.source:
            head += f" {self.source}"
        return head + ":\n  " + "\n  ".join(lines)


class SimulationError(MemstackCapacityError):
    """Raised when a valid scenario cannot be simulated (an internal inconsistency)."""


class MeasurementError(ScenarioError):
    """A measurement file (a load test's or Prometheus' output, a calibration mapping or overlay)
    that cannot be read as its format says: bad input, exit 2, like a bad scenario. Each problem's
    field names the line, column or series, and its message what was expected there."""

    def render(self) -> str:
        lines = [p.render(self.source) for p in self.problems]
        head = f"{len(lines)} problem{'s' if len(lines) != 1 else ''} in measurements"
        if self.source:
            head += f" {self.source}"
        return head + ":\n  " + "\n  ".join(lines)
