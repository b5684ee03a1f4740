"""Run one scenario with one seed on one engine: the only door to the engines.

``run(scenario, seed, engine="auto")`` asks the capability table
(:mod:`memstack_capacity.engine.capabilities`) which engine may run the scenario and hands
back that engine's :class:`~memstack_capacity.engine.record.RunRecord`. Every engine is a
package with ``NAME`` and ``run(scenario, seed, progress) -> RunRecord``.
"""

from __future__ import annotations

import sys

from memstack_capacity.components.nodecpu import CoresNotShared
from memstack_capacity.engine import capabilities
from memstack_capacity.engine.des import run as des
from memstack_capacity.engine.fast import engine as fast
from memstack_capacity.engine.fluid import engine as fluid
from memstack_capacity.engine.hybrid import engine as hybrid
from memstack_capacity.engine.kernel import engine as kernel
from memstack_capacity.engine.record import RunRecord
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.models import Scenario

#: Each engine's ``run``, by name.
RUNNERS = {"des": des.run, "fast": fast.run, "hybrid": hybrid.run, "kernel": kernel.run, "fluid": fluid.run}


def run(scenario: Scenario, seed: int | None = None, progress=None, *, engine: str = "auto") -> RunRecord:
    """Simulate `scenario` with `seed` (the scenario's own when None) on `engine`.

    `progress`, if given, is called as ``progress(sim_time_s, duration_s)`` as the run advances.
    `engine` is ``"auto"`` (the fastest engine that models everything the scenario uses: the
    per-pod kernel, else the batched data plane, else the compiled data plane, else the general
    engine), or one of
    :data:`capabilities.ENGINES` (ValueError saying what it does not model when it cannot).
    """
    seed = scenario.seed if seed is None else int(seed)
    choice = capabilities.choose(scenario, engine)
    try:
        return RUNNERS[choice.engine](scenario, seed, progress)
    except CoresNotShared as exc:
        # The capability table bounds how many pods a node can hold; events can still crowd one
        # (pods terminating beside their replacements). Only the general engine shares its cores.
        what = f"{capabilities.TITLES[choice.engine]} cannot share a node's cores between pods: {exc}"
        if engine != "auto":
            raise ScenarioError([Problem("engine", what, engine, True)], scenario.name) from None
        print(f"note: {what}; rerunning on the general engine", file=sys.stderr)
        return RUNNERS["des"](scenario, seed, progress)
