"""The cheapest configuration that meets every target in every scenario: screen, confirm, rank.

>>> from memstack_capacity import load_scenario
>>> from memstack_capacity.api.recommend import recommend
>>> from memstack_capacity.api.recommend_space import load_space
>>> base = load_scenario("scenarios/small.yaml")
>>> result = recommend([base], load_space("scenarios/spaces/small.yaml", [base]), replications=3)
>>> result.best.overrides  # small.yaml's 60 users need less than it has
{'deployments.api.replicas': 1, 'deployments.api.resources.requests.cpu': '250m', 'datastores.postgres.cores': 1}

A configuration is one point of the space (:mod:`.recommend_space`): overrides applied to every
scenario. Its cost is the summary's ``cost.per_month`` (OpenCost's rule, results/cost.py): the
mean over the replications of each scenario, the largest over the scenarios (the configuration
is paid for whatever the traffic is, so the costliest scenario is the budget).

1. **Screen** every point with the flow model (:mod:`.recommend_screen`): a point is discarded
   only when a figure misses its target by more than a margin; a point the flow model cannot run
   is kept unscreened.
2. **Confirm** the kept points in increasing estimated cost (the flow model's cost, or the
   static floor below) with ``run_many(scenario, seeds)`` — the discrete-event engine through
   :func:`memstack_capacity.api.batch.runner` — with the same seeds ``seed … seed+K−1`` for every
   point (common random numbers). A point passes when every replication of every scenario meets
   every target, as ``capacity`` judges a load (:func:`~memstack_capacity.api.capacity.judge_trial`);
   a point that misses in one scenario is not run in the next.
3. **Stop**: a kept point is confirmed only while its cost floor could still beat the best point
   so far (:func:`~.recommend_result.could_beat`: cheaper by more than ``REL``, or as cheap and
   earlier in the space). The floor (:func:`cost_floor`) is what the run must pay whatever
   happens — the datastores, and the pods' requests at the fewest pods the deployment can have (or
   the cluster's nodes) — so no skipped point can be the answer. The answer is therefore the
   cheapest passing point of an exhaustive sweep with the same seeds (ties within ``REL`` to the
   earlier point), unless the screen discarded it.
4. **Neighbours**: the points one step away along each key are confirmed too (or shown with
   their screen), for the trade-off and to say what each change from the input relieves.

What was found, ranked and explained, is :class:`~.recommend_result.Recommendation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from memstack_capacity.api.recommend_result import (REL, Candidate, Outcome, Recommendation, beats, bounds_text,
                                                    could_beat, json_ready)
from memstack_capacity.api.recommend_screen import (DEFAULT_MARGIN, DEFAULT_STAND_IN_MARGIN, fluid_screen,
                                                    unscreened)
from memstack_capacity.api.recommend_space import Space, model_value
from memstack_capacity.results.cost import GIB, HOURS_PER_MONTH, basis, datastore_cost, prices
from memstack_capacity.scenario.models import Scenario

__all__ = ["recommend", "cost_floor", "DEFAULT_MARGIN", "DEFAULT_STAND_IN_MARGIN", "REL", "Recommendation"]


def cost_floor(scenario: Scenario) -> float:
    """The least cost per month any run of ``scenario`` can have (results/cost.py's rule, bounded below).

    The datastores' servers are paid in full; on the ``nodes`` basis the cluster's starting
    nodes for the whole run (the node autoscaler only adds); on the ``requests`` basis each
    deployment's requests at the fewest pods it can hold all run long: its starting replicas,
    or the HPA's ``minReplicas`` when lower (usage above the requests only adds).
    """
    rates, _ = prices(scenario.cost, scenario.cluster.node)
    duration = float(scenario.duration)
    stores = math.fsum(entry["hourly"] for name, store in scenario.datastores.items()
                       if (entry := datastore_cost(store, scenario.cost.datastores.get(name), duration, rates)))
    if basis(scenario.cost) == "nodes":
        compute = scenario.cluster.nodes * rates["node_hour"]
    else:
        compute = 0.0
        for dep in scenario.deployments.values():
            pods = dep.replicas if dep.hpa is None else min(dep.replicas, dep.hpa.minReplicas or 1)
            req = dep.resources.requests
            compute += pods * ((req.cpu or 0.0) * rates["cpu_core_hour"]
                               + (req.memory or 0) / GIB * rates["memory_gib_hour"])
    return (compute + stores) * HOURS_PER_MONTH


def recommend(scenarios: Sequence[Scenario] | Scenario, space: Space, replications: int = 3,
              seed: int | None = None, margin: float = DEFAULT_MARGIN,
              stand_in_margin: float = DEFAULT_STAND_IN_MARGIN, run_many=None, screen: bool = True,
              neighbours: bool = True, notify: Callable[[str], None] | None = None,
              screen_progress: Callable[[float, int], None] | None = None,
              workers: int | None = 1) -> Recommendation:
    """Search ``space`` for the cheapest point that meets every target of every scenario in every run.

    Args:
        scenarios: Each must set ``targets:``; the point's overrides are applied to each. One scenario
            may be given alone.
        space: The points (:func:`memstack_capacity.api.recommend_space.load_space`).
        replications: Runs per point and scenario, seeds ``seed … seed+K−1`` (each scenario's own seed when None).
        margin, stand_in_margin: The screen's relative margins, on the flow model's own figures and on the
            percentiles stood in for (:mod:`.recommend_screen`); ``screen=False`` screens nothing.
        run_many: ``run_many(scenario, seeds) -> [summary, …]`` on the discrete-event engine
            (:func:`memstack_capacity.api.batch.runner`); by default the runs of a point go to ``workers``
            local processes (``None``: one per CPU), or run one after another in this process (1).
        neighbours: Also confirm the points one step from the answer along each key.
        notify: Called with a line as each point is confirmed.
        screen_progress: ``fn(done, total)`` over the screen.

    Raises:
        ValueError: Without scenarios or targets, or for replications < 1 or a negative margin.
    """
    if isinstance(scenarios, Scenario):
        scenarios = [scenarios]
    _check_arguments(scenarios, replications, margin, stand_in_margin)
    if run_many is None and workers != 1:
        from memstack_capacity.api.batch import runner

        with runner(workers) as pool:  # the processes live as long as the search
            return recommend(scenarios, space, replications=replications, seed=seed, margin=margin,
                             stand_in_margin=stand_in_margin, run_many=pool, screen=screen, neighbours=neighbours,
                             notify=notify, screen_progress=screen_progress)
    if run_many is None:
        from memstack_capacity.api.simulation import simulate

        def run_many(sc, seeds):
            return [simulate(sc, seed=s).summary for s in seeds]
    search = _Search(list(scenarios), space, replications, seed, run_many, notify)
    if screen:
        search.screen(margin, stand_in_margin, screen_progress)
    else:
        search.skip_screen()
    best = search.confirm_in_cost_order()
    if best is not None and neighbours:
        best = search.confirm_neighbours(best)
    result = Recommendation(space, [sc.name for sc in scenarios], search.seeds, replications, margin,
                            stand_in_margin, search.candidates, best, json_ready(_input_values(scenarios[0], space)))
    if best is None:
        result.bounds = bounds_text(search.candidates, search.configured, list(scenarios))
    return result


def _check_arguments(scenarios, replications: int, margin: float, stand_in_margin: float) -> None:
    if not scenarios:
        raise ValueError("give at least one scenario")
    if replications < 1:
        raise ValueError(f"replications must be at least 1 (got {replications})")
    if not (margin >= 0 and stand_in_margin >= 0):
        raise ValueError(f"the screen's margins must be 0 or more (got {margin}, {stand_in_margin})")
    for sc in scenarios:
        if not any(v is not None for v in sc.targets.model_dump().values()):
            raise ValueError(f"scenario {sc.name} sets no targets, so every configuration 'meets' them; add `targets:`")
    if len({sc.name for sc in scenarios}) != len(scenarios):
        raise ValueError("two scenarios have the same name; give each scenario once (names identify them)")


class _Search:
    """The search's state: the candidates, their configured scenarios (built once) and the seeds."""

    def __init__(self, scenarios: list[Scenario], space: Space, replications: int, seed: int | None, run_many,
                 notify):
        self.scenarios, self.space, self.run_many, self.notify = scenarios, space, run_many, notify
        # Common random numbers: the same seeds for every point of a scenario.
        self.seeds = {sc.name: [(sc.seed if seed is None else int(seed)) + r for r in range(replications)]
                      for sc in scenarios}
        self.cache: dict = {}
        self.candidates = []
        for i, point in enumerate(space.points()):
            c = Candidate(i, point, 0.0)
            c.floor = max(cost_floor(self.configured(c, sc)) for sc in scenarios)
            self.candidates.append(c)

    def configured(self, c: Candidate, sc: Scenario) -> Scenario:
        """``sc`` with the point's overrides (validated once per point and scenario)."""
        key = (c.index, sc.name)
        if key not in self.cache:
            self.cache[key] = sc.with_overrides(c.overrides) if c.overrides else sc
        return self.cache[key]

    def screen(self, margin: float, stand_in_margin: float, progress) -> None:
        """1. Every point on the flow model, scenario after scenario until one discards it."""
        for n, c in enumerate(self.candidates):
            for sc in self.scenarios:
                verdict = fluid_screen(self.configured(c, sc), self.seeds[sc.name][0], margin, stand_in_margin)
                c.outcomes[sc.name] = Outcome(sc.name, verdict)
                if verdict["verdict"] == "discard":
                    break  # one scenario's miss is enough
            if progress is not None:
                progress(n + 1, len(self.candidates))

    def skip_screen(self) -> None:
        for c in self.candidates:
            for sc in self.scenarios:
                c.outcomes[sc.name] = Outcome(sc.name, unscreened("the screen was turned off"))

    def confirm(self, c: Candidate) -> None:
        """Simulate ``c`` in each scenario with the seeds, stopping at the first scenario it fails."""
        for sc in self.scenarios:
            o = c.outcomes.setdefault(sc.name, Outcome(sc.name))
            if not o.confirmed:
                o.summaries = self.run_many(self.configured(c, sc), self.seeds[sc.name])
            if not o.passed:
                break
        if self.notify is not None:
            where = ", ".join(f"{k}={v}" for k, v in c.overrides.items())
            runs = sum(len(o.summaries) for o in c.outcomes.values() if o.summaries)
            passed = sum(o.passed_runs for o in c.outcomes.values() if o.summaries)
            self.notify(f"point {c.index} ({where}): {passed}/{runs} runs met every target → {c.status}, "
                        f"{c.cost:,.2f} per month")

    def confirm_in_cost_order(self) -> Candidate | None:
        """2. and 3. The kept points in increasing estimated cost, each only while its cost floor could
        still beat the best so far (:func:`could_beat`): no point skipped can be the answer."""
        best = None
        kept = sorted((c for c in self.candidates if not c.screened_out), key=lambda c: (c.estimate, c.index))
        for c in kept:
            if best is not None and not could_beat(c.floor, c.index, best):
                continue
            self.confirm(c)
            if c.passed and beats(c, best):
                best = c
        return best

    def confirm_neighbours(self, best: Candidate) -> Candidate:
        """4. The points one step from ``best`` along each key, for the trade-off and the reasons."""
        by_point = {tuple(c.overrides.values()): c for c in self.candidates}
        pos = self.space.index(best.overrides)
        for k, d in enumerate(self.space.dimensions):
            for j in (pos[k] - 1, pos[k] + 1):
                if not 0 <= j < len(d.values):
                    continue
                point = list(best.overrides.values())
                point[k] = d.values[j]
                other = by_point[tuple(point)]
                if not other.screened_out and not other.confirmed:
                    other.neighbour = True
                    self.confirm(other)
                    if other.passed and beats(other, best):
                        best = other  # only where a floor was not a lower bound (docs/recommend.md, Limits)
        return best


def _input_values(scenario: Scenario, space: Space) -> dict:
    """The input scenario's value of each key of the space (None where it has none, e.g. no HPA)."""
    values = {}
    for d in space.dimensions:
        try:
            values[d.key] = model_value(scenario, d.key)
        except (KeyError, AttributeError, StopIteration, IndexError, TypeError):
            values[d.key] = None
    return values
