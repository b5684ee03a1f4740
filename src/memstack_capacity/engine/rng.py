"""One random stream per component, derived from the run's seed and the component's name.

``SeedSequence(seed, spawn_key=(crc32(name),))`` gives each named component its own
stream, so adding a component never shifts another's numbers, and the variants of a
sweep run with the same seed see the same random numbers (common random numbers).
"""

from __future__ import annotations

import zlib

import numpy as np


def stable_key(name: str) -> int:
    """A hash of a name that is the same in every process and Python version."""
    return zlib.crc32(name.encode("utf-8"))


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for component `name` in a run with `seed`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=int(seed), spawn_key=(stable_key(name),))))


class Streams:
    """Hands out named streams for one run; asking twice for a name is a bug."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._given: set[str] = set()

    def __call__(self, name: str) -> np.random.Generator:
        if name in self._given:
            raise ValueError(f"random stream {name!r} requested twice")
        self._given.add(name)
        return stream(self.seed, name)
