"""Draw durations fast: numbers come from numpy in blocks and are handed out one by one.

Block drawing is deterministic (the same stream gives the same sequence whatever the
block size is not — so the block size is fixed), and it keeps numpy's per-call
overhead off the per-request hot path.
"""

from __future__ import annotations

import numpy as np

from memstack_capacity.scenario.distributions import Dist

BLOCK = 2048


class Sampler:
    """Callable returning one draw of a :class:`Dist` per call (seconds)."""

    __slots__ = ("_fill", "_buf", "_i", "_n", "constant", "mean")

    def __init__(self, dist: Dist, rng: np.random.Generator):
        self.mean = dist.expected()
        self.constant = self.mean if dist.dist == "constant" else None
        self._fill = _block_drawer(dist, rng)
        self._buf: list[float] = []
        self._i = 0
        self._n = 0

    def __call__(self) -> float:
        if self.constant is not None:
            return self.constant
        i = self._i
        if i == self._n:
            self._buf = self._fill().tolist()
            self._n = len(self._buf)
            i = 0
        self._i = i + 1
        return self._buf[i]


class _Blocks:
    """Draws from ``fill(rng, BLOCK)`` handed out one by one."""

    __slots__ = ("_rng", "_fill", "_buf", "_i", "_n")

    def __init__(self, rng: np.random.Generator, fill):
        self._rng = rng
        self._fill = fill
        self._buf: list[float] = []
        self._i = self._n = 0

    def __call__(self) -> float:
        i = self._i
        if i == self._n:
            self._buf = self._fill(self._rng, BLOCK).tolist()
            self._n = BLOCK
            i = 0
        self._i = i + 1
        return self._buf[i]

    def take(self, n: int) -> np.ndarray:
        """The next `n` draws at once: the numbers `n` calls would return, in the same order."""
        out = np.empty(n)
        got = 0
        while got < n:
            if self._i == self._n:
                self._buf = self._fill(self._rng, BLOCK).tolist()
                self._n = BLOCK
                self._i = 0
            m = min(n - got, self._n - self._i)
            out[got : got + m] = self._buf[self._i : self._i + m]
            self._i += m
            got += m
        return out


def UnitExponential(rng: np.random.Generator) -> _Blocks:  # noqa: N802 - reads like the class it was
    """Exponential draws with mean 1 (arrivals, think times scaled by the caller)."""
    return _Blocks(rng, np.random.Generator.standard_exponential)


def Uniforms(rng: np.random.Generator) -> _Blocks:  # noqa: N802
    """Uniform [0, 1) draws (routing, weighted choices)."""
    return _Blocks(rng, np.random.Generator.random)


def draws(dist: Dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of ``dist`` in seconds, in one numpy call (a block, or a whole sample at once)."""
    kind = dist.dist
    if kind == "constant":
        return np.full(n, dist.expected())
    if kind == "exponential":
        return rng.exponential(float(dist.mean), n)
    if kind == "lognormal":
        mu, sigma = dist.lognormal_parameters()
        return rng.lognormal(mu, sigma, n)
    if kind == "gamma":
        shape = 1.0 / float(dist.cv) ** 2
        return rng.gamma(shape, float(dist.mean) / shape, n)
    if kind == "uniform":
        return rng.uniform(float(dist.low), float(dist.high), n)
    values = np.asarray(dist.samples, dtype=float)
    return values[rng.integers(0, len(values), n)]


def _block_drawer(dist: Dist, rng: np.random.Generator):
    return lambda: draws(dist, rng, BLOCK)


def unit_renewal_drawer(cv: float, rng: np.random.Generator):
    """Inter-arrival times of a mean-1 renewal process with the given cv (1 = Poisson)."""
    if cv == 1.0:
        return UnitExponential(rng)
    shape = 1.0 / (cv * cv)
    return Sampler(Dist(dist="gamma", mean=1.0, cv=cv), rng) if shape > 0 else UnitExponential(rng)
