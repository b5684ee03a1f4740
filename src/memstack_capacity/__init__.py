"""memstack-capacity: how many users MemStack can serve on Kubernetes, before it is deployed.

>>> from memstack_capacity import load_scenario, simulate
>>> result = simulate(load_scenario("scenarios/peak.yaml"))
>>> result.summary["requests"]["throughput_rps"]

The cheapest configuration of a search space that meets the targets (docs/recommend.md):

>>> base = load_scenario("scenarios/small.yaml")
>>> found = recommend(base, load_space({"deployments.api.replicas": [1, 2, 3]}, base))
>>> found.best.overrides, found.to_dict()["recommended"]["binding"]

A scenario calibrated from a recorded test, and the test replayed through it (docs/calibration.md):

>>> cal = calibrate(base, prometheus="prom/", mapping="prom/mapping.yaml")
>>> cal.table(), backtest(base, calibration=cal, prometheus="prom/", mapping="prom/mapping.yaml").table()

Figures for notebooks: :mod:`memstack_capacity.plotting`; reports and manifests:
:mod:`memstack_capacity.reporting`.

This module owns only the public names, re-exported from the modules that define them;
it imports those and nothing else, and no module of the package imports it.
"""

from memstack_capacity.api.simulation import simulate
from memstack_capacity.api.backtest import Backtest, backtest
from memstack_capacity.api.batch import compare, replicate, sweep
from memstack_capacity.api.calibrate import Calibration, calibrate
from memstack_capacity.api.recommend import Recommendation, recommend
from memstack_capacity.api.recommend_space import load_space
from memstack_capacity.errors import MemstackCapacityError, ScenarioError, SimulationError
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.load import find_scenario, load_scenario
from memstack_capacity.scenario.models import Scenario
from memstack_capacity.scenario.scale_model import scale_model

__all__ = [
    "load_scenario",
    "find_scenario",
    "scale_model",
    "simulate",
    "replicate",
    "sweep",
    "compare",
    "recommend",
    "load_space",
    "Recommendation",
    "calibrate",
    "Calibration",
    "backtest",
    "Backtest",
    "Scenario",
    "Result",
    "MemstackCapacityError",
    "ScenarioError",
    "SimulationError",
]
__version__ = "0.1.0"
