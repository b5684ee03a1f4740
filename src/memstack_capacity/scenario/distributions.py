"""Random durations written as a mean and a shape: ``{dist: lognormal, mean: 6ms, cv: 0.8}``.

Every distribution declares its analytic mean and variance, so one generic test
checks any of them against samples, and the theory checks can use the exact
moments. A bare duration (``5ms``) is shorthand for a constant.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from memstack_capacity.scenario.base import Cv, Duration, SpecModel

DistName = Literal["constant", "exponential", "lognormal", "gamma", "uniform", "empirical"]


class Dist(SpecModel):
    """A non-negative random duration (seconds)."""

    dist: DistName = Field(description="constant | exponential | lognormal | gamma | uniform | empirical")
    mean: Duration | None = Field(None, description="mean (constant, exponential, lognormal, gamma)")
    cv: Cv | None = Field(None, description="coefficient of variation (lognormal, gamma), at most 100")
    low: Duration | None = Field(None, description="lower bound (uniform)")
    high: Duration | None = Field(None, description="upper bound (uniform)")
    samples: list[Duration] | None = Field(None, description="observed values, drawn with equal weight (empirical)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"dist": "constant", "mean": data}
        return data

    @model_validator(mode="after")
    def _check_parameters(self) -> "Dist":
        needs = {
            "constant": {"mean"},
            "exponential": {"mean"},
            "lognormal": {"mean", "cv"},
            "gamma": {"mean", "cv"},
            "uniform": {"low", "high"},
            "empirical": {"samples"},
        }[self.dist]
        given = {k for k in ("mean", "cv", "low", "high", "samples") if getattr(self, k) is not None}
        missing, extra = needs - given, given - needs
        problems = []
        if missing:
            problems.append(f"{self.dist} needs {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"{self.dist} does not take {', '.join(sorted(extra))}")
        if self.dist == "uniform" and not missing and self.low > self.high:
            problems.append(f"low ({self.low}) must not exceed high ({self.high})")
        if self.dist == "empirical" and not missing and not self.samples:
            problems.append("samples must not be empty")
        if self.dist in ("lognormal", "gamma") and "mean" not in missing and self.mean == 0:
            problems.append(f"mean must be greater than zero for {self.dist} (use dist: constant for a zero time)")
        if self.dist in ("lognormal", "gamma") and not missing and self.cv == 0:
            problems.append("cv must be greater than zero (use dist: constant for no variation)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def expected(self) -> float:
        """The analytic mean in seconds."""
        if self.dist in ("constant", "exponential", "lognormal", "gamma"):
            return float(self.mean)
        if self.dist == "uniform":
            return (self.low + self.high) / 2.0
        return float(sum(self.samples) / len(self.samples))

    def variance(self) -> float:
        """The analytic variance in seconds squared."""
        if self.dist == "constant":
            return 0.0
        if self.dist == "exponential":
            return float(self.mean) ** 2
        if self.dist in ("lognormal", "gamma"):
            return (float(self.mean) * float(self.cv)) ** 2
        if self.dist == "uniform":
            return (self.high - self.low) ** 2 / 12.0
        m = self.expected()
        return float(sum((x - m) ** 2 for x in self.samples) / len(self.samples))

    def scv(self) -> float:
        """Squared coefficient of variation (0 for a zero mean)."""
        m = self.expected()
        return self.variance() / (m * m) if m > 0 else 0.0

    def lognormal_parameters(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal for the given mean and cv."""
        sigma2 = math.log1p(float(self.cv) ** 2)
        return math.log(float(self.mean)) - sigma2 / 2.0, math.sqrt(sigma2)
