"""Wait-time statistics that stay cheap when almost every wait is zero.

Most checkouts find a connection at once; storing a zero per checkout would cost memory
for nothing. :class:`WaitStats` keeps a count of zero waits and an array of the positive
ones, and computes percentiles as numpy's default (linear interpolation) would over the
whole list.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from memstack_capacity.components.sketch import QuantileSketch

#: Positive waits kept exactly; beyond, percentiles come from a sketch (0.5 % relative error).
EXACT_WAITS_LIMIT = 1_000_000


def percentile_with_zeros(positive: list | array, zeros: int, q: float) -> float:
    """The q-th percentile (0–100) of `zeros` zeros plus the values in `positive`."""
    n = zeros + len(positive)
    if n == 0:
        return 0.0
    values = sorted(positive)
    pos = q / 100.0 * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)

    def at(i: int) -> float:
        return 0.0 if i < zeros else values[i - zeros]

    return at(lo) + (at(hi) - at(lo)) * (pos - lo)


class WaitStats:
    """Waits of one interval and of the run after the warm-up."""

    __slots__ = ("zeros", "positive", "sketch", "w_zeros", "w_positive", "measuring", "total", "count")

    def __init__(self):
        self.zeros = 0
        self.positive = array("d")
        self.sketch = QuantileSketch()
        self.w_zeros = 0
        self.w_positive: list = []
        self.measuring = False  # after the warm-up
        self.total = 0.0
        self.count = 0

    def add(self, wait: float) -> None:
        if wait > 0.0:
            self.w_positive.append(wait)
            if self.measuring:
                if len(self.positive) < EXACT_WAITS_LIMIT:
                    self.positive.append(wait)
                self.sketch.add(wait)
                self.total += wait
                self.count += 1
        else:
            self.w_zeros += 1
            if self.measuring:
                self.zeros += 1
                self.count += 1

    def add_many(self, zeros: int, positive) -> None:
        """`zeros` zero waits and the positive waits of the array `positive`, in order: as many
        :meth:`add` calls."""
        self.w_zeros += zeros
        self.w_positive.extend(positive.tolist())
        if not self.measuring:
            return
        self.zeros += zeros
        self.count += zeros + len(positive)
        if len(positive):
            room = EXACT_WAITS_LIMIT - len(self.positive)
            if room > 0:
                self.positive.extend(positive[:room].tolist())
            self.sketch.add_many(positive)
            self.total = float(np.cumsum(np.concatenate([[self.total], positive]))[-1])

    def interval_p99(self) -> float:
        p = percentile_with_zeros(self.w_positive, self.w_zeros, 99.0)
        self.w_positive = []
        self.w_zeros = 0
        return p

    def run_percentile(self, q: float) -> float:
        """Exact while every positive wait was kept; from the sketch (with the zeros) after."""
        if self.sketch.count <= len(self.positive):
            return percentile_with_zeros(self.positive, self.zeros, q)
        rank = q / 100.0 * (self.zeros + self.sketch.count - 1)
        if rank < self.zeros:
            return 0.0
        return self.sketch.quantile((rank - self.zeros) / max(self.sketch.count - 1, 1))

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0
