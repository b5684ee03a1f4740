"""The Python API for notebooks and scripts: load a scenario, simulate it, look at the result."""

from __future__ import annotations

from memstack_capacity.engine.run import run
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.models import Scenario


def simulate(scenario: Scenario, seed: int | None = None, progress=None, engine: str = "auto", *,
             mode: str | None = None) -> Result:
    """Simulate `scenario` once; the scenario's own seed when `seed` is None.

    `engine`: ``"auto"`` (the fastest engine that models everything the scenario uses),
    ``"des"`` (the general engine, the reference), ``"fast"`` (the compiled data plane),
    ``"hybrid"``, ``"kernel"``, or
    ``"fluid"`` (the flow model, docs/fluid.md: its request figures and caveats are in
    ``record.flow``). See docs/performance.md for which engine models what. `mode` is the
    older spelling: ``mode="fluid"`` is ``engine="fluid"``, ``mode="des"`` is ``engine="auto"``.
    """
    if mode is not None:
        if mode not in ("des", "fluid"):
            raise ValueError(f"mode must be 'des' or 'fluid' (got {mode!r})")
        engine = "fluid" if mode == "fluid" else engine
    return Result(run(scenario, seed=seed, progress=progress, engine=engine))
