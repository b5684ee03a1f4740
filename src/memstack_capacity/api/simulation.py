"""The Python API for notebooks and scripts: load a scenario, simulate it, look at the result."""

from __future__ import annotations

from memstack_capacity.engine.run import run
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.models import Scenario


def simulate(scenario: Scenario, seed: int | None = None, progress=None, mode: str = "des") -> Result:
    """Simulate `scenario` once; the scenario's own seed when `seed` is None.

    `mode` "des" runs the discrete-event engine; "fluid" solves the fast flow model
    (docs/fluid.md), whose request figures and caveats are in ``record.extras``.
    """
    if mode == "fluid":
        from memstack_capacity.engine.fluid.engine import run_fluid

        return Result(run_fluid(scenario, seed=seed, progress=progress))
    if mode != "des":
        raise ValueError(f"mode must be 'des' or 'fluid' (got {mode!r})")
    return Result(run(scenario, seed=seed, progress=progress))
