"""The Python API for notebooks and scripts: load a scenario, simulate it, look at the result."""

from __future__ import annotations

from memstack_capacity.engine.run import run
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.models import Scenario


def simulate(scenario: Scenario, seed: int | None = None, progress=None) -> Result:
    """Simulate `scenario` once; the scenario's own seed when `seed` is None."""
    return Result(run(scenario, seed=seed, progress=progress))
