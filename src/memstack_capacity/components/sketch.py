"""A mergeable quantile sketch with bounded relative error, for runs too long to keep.

Log-spaced buckets as in DDSketch (Masson, Rim & Lee, "DDSketch: a fast and fully-mergeable
quantile sketch with relative-error guarantees", VLDB 2019): a value x > 0 goes to bucket
``ceil(log_γ x)`` with ``γ = (1 + α) / (1 − α)``, and a quantile is answered with the
bucket's representative ``2γ^i / (γ + 1)``, which is within a relative error α of the exact
(lower) order statistic. Memory grows with the logarithm of the value range, not with the
number of values: a latency range of 1 µs to 1 h at α = 0.5 % is about 2 200 buckets.
Merging two sketches adds their bucket counts, so replications and intervals combine exactly.
"""

from __future__ import annotations

import math

import numpy as np

#: Relative accuracy of every quantile the sketch answers (0.5 %).
RELATIVE_ACCURACY = 0.005


class QuantileSketch:
    """Counts of values in log-spaced buckets, plus the exact count, sum, min and max."""

    __slots__ = ("alpha", "gamma", "_inv_log_gamma", "buckets", "zeros", "count", "total", "min", "max")

    def __init__(self, alpha: float = RELATIVE_ACCURACY):
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"relative accuracy must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self.gamma = (1.0 + alpha) / (1.0 - alpha)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: float) -> None:
        self.count += 1
        self.total += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if x <= 0.0:
            self.zeros += 1
            return
        key = math.ceil(math.log(x) * self._inv_log_gamma)
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + 1

    def add_many(self, x) -> None:
        """Add every value of the array `x`, in order: the same counts, buckets and (sequential) total
        as calling :meth:`add` on each."""
        x = np.asarray(x, dtype=np.float64)
        if not len(x):
            return
        self.count += len(x)
        self.total = float(np.cumsum(np.concatenate([[self.total], x]))[-1])  # sequential, as total += x
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        pos = x[x > 0.0]
        self.zeros += len(x) - len(pos)
        keys, n = np.unique(np.ceil(np.log(pos) * self._inv_log_gamma).astype(np.int64), return_counts=True)
        buckets = self.buckets
        for key, v in zip(keys.tolist(), n.tolist()):
            buckets[key] = buckets.get(key, 0) + v

    def merge(self, other: "QuantileSketch") -> None:
        if other.alpha != self.alpha:
            raise ValueError("cannot merge sketches of different accuracy")
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1) within relative error α; None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)  # the lower order statistic, as numpy's 'lower' method
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen > rank:
                value = 2.0 * self.gamma**key / (self.gamma + 1.0)
                return min(max(value, self.min), self.max)
        return self.max

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None
