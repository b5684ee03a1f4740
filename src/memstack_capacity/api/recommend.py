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

The points are taken in increasing cost floor (:func:`passing_cost_floor`: what any run of the
point that meets the targets must pay — the datastores, the pods' requests at the fewest pods the
deployment can have, the API's CPU work the throughput target implies — or the cluster's nodes),
each through these steps until one fails it:

1. **Bound**: ruled out without a run when a datastore server cannot complete the throughput
   target at all (:func:`~.recommend_screen.bound_verdict`, results/bounds.py: the utilisation law).
2. **Screen** on the flow model (:mod:`.recommend_screen`): discarded only when a figure misses its
   target by more than a margin; a point the flow model cannot run is not screened.
3. **Confirm** on the executor of :func:`memstack_capacity.api.batch.runner` (the fastest engine
   that models the scenario), with the same seeds ``seed … seed+K−1`` for every point (common
   random numbers). A point passes when every replication of every scenario meets every target, as
   ``capacity`` judges a load (:func:`~memstack_capacity.api.capacity.judge_trial`); it stops at its
   first run that misses (scenario after scenario, seed after seed). Several runs go on at once
   (:mod:`.recommend_runs`), with the outcome of one run after another.
4. **Stop**: a point is taken only while its floor could still beat the best point so far
   (:func:`~.recommend_result.could_beat`: cheaper by more than ``REL``, or as cheap and earlier
   in the space), so no point passed over can be the answer: it is the cheapest passing point of
   an exhaustive sweep with the same seeds (ties within ``REL`` to the earlier point), unless the
   screen discarded it.
5. **Neighbours**: the points one step away along each key go through the same steps, for the
   trade-off and to say what each change from the input relieves.

What was found, ranked and explained, is :class:`~.recommend_result.Recommendation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from memstack_capacity.api.recommend_result import (REL, Candidate, Outcome, Recommendation, beats, bounds_text,
                                                    could_beat, json_ready)
from memstack_capacity.api.capacity_screen import unavailable
from memstack_capacity.api.recommend_runs import Confirmation, Run, executor_of
from memstack_capacity.api.recommend_screen import (DEFAULT_MARGIN, DEFAULT_STAND_IN_MARGIN, bound_verdict,
                                                    screen_verdict, unscreened)
from memstack_capacity.api.recommend_space import Space, model_value
from memstack_capacity.results.bounds import api_cpu_work
from memstack_capacity.results.cost import GIB, HOURS_PER_MONTH, basis, datastore_cost, prices
from memstack_capacity.scenario.models import Scenario

__all__ = ["recommend", "cost_floor", "passing_cost_floor", "DEFAULT_MARGIN", "DEFAULT_STAND_IN_MARGIN", "REL", "Recommendation"]


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
            pods = _fewest_pods(dep)
            req = dep.resources.requests
            compute += pods * ((req.cpu or 0.0) * rates["cpu_core_hour"]
                               + (req.memory or 0) / GIB * rates["memory_gib_hour"])
    return (compute + stores) * HOURS_PER_MONTH


def _fewest_pods(dep) -> int:
    """The fewest pods a deployment can hold all run long: its replicas, or the HPA's minReplicas when fewer."""
    return dep.replicas if dep.hpa is None else min(dep.replicas, dep.hpa.minReplicas or 1)


def passing_cost_floor(scenario: Scenario) -> float:
    """The least cost per month of a run of ``scenario`` that meets its targets: :func:`cost_floor`, with
    the API's CPU billed at least the work the throughput target implies in the measured window
    (:func:`memstack_capacity.results.bounds.api_cpu_work`; on the ``requests`` basis, where usage is
    billed). Only a passing point can be the answer, so the stop rule may use it."""
    floor = cost_floor(scenario)
    work = api_cpu_work(scenario)
    api = scenario.deployments.get("api")
    if work is None or api is None or basis(scenario.cost) == "nodes":
        return floor
    rates, _ = prices(scenario.cost, scenario.cluster.node)
    requested = _fewest_pods(api) * (api.resources.requests.cpu or 0.0)  # cores, as cost_floor counts them
    window = float(scenario.duration) - float(scenario.warmup)
    extra = max(0.0, work - requested * window)  # core-seconds beyond the requests, in the window
    return floor + extra / float(scenario.duration) * rates["cpu_core_hour"] * HOURS_PER_MONTH


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
        run_many: The executor: a :class:`memstack_capacity.api.batch.Runs` (from ``runner``), or a plain
            ``run_many(scenario, seeds) -> [summary, …]`` run one seed at a time. By default the runs go
            to ``workers`` local processes (``None``: one per CPU), or one after another in this process (1).
        neighbours: Also confirm the points one step from the answer along each key.
        notify: Called with a line as each point is confirmed.
        screen_progress: ``fn(done, total)`` over the configurations settled or passed over.

    Raises:
        ValueError: Without scenarios or targets, or for replications < 1 or a negative margin.
    """
    if isinstance(scenarios, Scenario):
        scenarios = [scenarios]
    _check_arguments(scenarios, replications, margin, stand_in_margin)
    if run_many is None:
        from memstack_capacity.api.batch import runner

        with runner(workers) as runs:  # the processes live as long as the search
            return recommend(scenarios, space, replications=replications, seed=seed, margin=margin,
                             stand_in_margin=stand_in_margin, run_many=runs, screen=screen, neighbours=neighbours,
                             notify=notify, screen_progress=screen_progress)
    search = _Search(list(scenarios), space, replications, seed, run_many, notify,
                     (margin, stand_in_margin) if screen else None, screen_progress)
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
    """The search's state: the candidates, their configured scenarios (built once), the seeds, and how a
    point is screened."""

    def __init__(self, scenarios: list[Scenario], space: Space, replications: int, seed: int | None, run_many,
                 notify, screen: tuple[float, float] | None, progress):
        self.scenarios, self.space, self.notify, self.progress = scenarios, space, notify, progress
        self.margins = screen  # (margin, stand-in margin), or None: no screen
        self.executor = executor_of(run_many)
        self.confirmation = Confirmation(self.executor, self.plan, lambda c: c.index)
        # Common random numbers: the same seeds for every point of a scenario.
        self.seeds = {sc.name: [(sc.seed if seed is None else int(seed)) + r for r in range(replications)]
                      for sc in scenarios}
        self.cache: dict = {}
        self.bounds: dict = {}
        self.candidates = []
        for i, point in enumerate(space.points()):
            c = Candidate(i, point, 0.0)
            c.floor = max(passing_cost_floor(self.configured(c, sc)) for sc in scenarios)
            self.candidates.append(c)
        self.settled = 0

    def configured(self, c: Candidate, sc: Scenario) -> Scenario:
        """``sc`` with the point's overrides (validated once per point and scenario)."""
        key = (c.index, sc.name)
        if key not in self.cache:
            self.cache[key] = sc.with_overrides(c.overrides) if c.overrides else sc
        return self.cache[key]

    def bound(self, c: Candidate, sc: Scenario) -> dict | None:
        """The point's discard in ``sc`` by the servers' throughput bound, if the bound rules it out."""
        key = (c.index, sc.name)
        if key not in self.bounds:
            self.bounds[key] = bound_verdict(self.configured(c, sc))
        return self.bounds[key]

    def plan(self, c: Candidate) -> list[Run]:
        """A point's runs in order: its flow-model screen in each scenario (where the flow model runs
        it), then its simulations, scenario after scenario, each with the search's seeds. None at all
        when the servers' throughput bound rules it out in some scenario (:func:`bound_verdict`)."""
        runs = []
        if self.margins is not None:
            margin, stand_in = self.margins
            if any(self.bound(c, sc) for sc in self.scenarios):
                return []  # no run of it can meet a throughput target
            for sc in self.scenarios:
                if not unavailable(self.configured(c, sc)):
                    runs.append(Run("screen", sc.name, self.configured(c, sc), self.seeds[sc.name][0], "fluid",
                                    lambda summary: screen_verdict(summary, margin, stand_in)["verdict"] != "discard"))
        runs += [Run("simulation", sc.name, self.configured(c, sc), s, None, _met)
                 for sc in self.scenarios for s in self.seeds[sc.name]]
        return runs

    def settle(self, c: Candidate, record: list) -> None:
        """Record a point's screens and runs (up to the first that fails) and say what the runs gave."""
        for sc in self.scenarios:
            o = c.outcomes.setdefault(sc.name, Outcome(sc.name))
            if self.margins is None:
                o.screen = unscreened("the screen was turned off")
            elif bound := self.bound(c, sc):
                o.screen = bound
            elif why := unavailable(self.configured(c, sc)):
                o.screen = unscreened(why)
            summaries = []
            for run, summary in record:
                if run.scenario_name != sc.name:
                    continue
                if run.kind == "screen":
                    o.screen = screen_verdict(summary, *self.margins)
                else:
                    summaries.append(summary)
            if summaries:
                o.summaries = summaries
        simulated = [summary for run, summary in record if run.kind == "simulation"]
        if self.notify is not None and simulated:
            where = ", ".join(f"{k}={v}" for k, v in c.overrides.items())
            passed = sum(bool(summary["met"]) for summary in simulated)
            self.notify(f"point {c.index} ({where}): {passed}/{len(simulated)} runs met every target → {c.status}, "
                        f"{c.cost:,.2f} per month")

    def _tick(self) -> None:
        self.settled += 1
        if self.progress is not None:
            self.progress(self.settled, len(self.candidates))

    def confirm_in_cost_order(self) -> Candidate | None:
        """1. to 3. The points in increasing cost floor, each screened then simulated, only while its floor
        could still beat the best so far (:func:`could_beat`): no point skipped can be the answer."""
        best = None

        def skip(c: Candidate) -> bool:
            return best is not None and not could_beat(c.floor, c.index, best)

        def settle(c: Candidate, record) -> None:
            nonlocal best
            self.settle(c, record)
            self._tick()
            if c.passed and beats(c, best):
                best = c

        order = sorted(self.candidates, key=lambda c: (c.floor, c.index))
        self.confirmation.in_order(order, skip, settle, lambda c: self._tick())
        return best

    def confirm_neighbours(self, best: Candidate) -> Candidate:
        """4. The points one step from ``best`` along each key, for the trade-off and the reasons."""
        by_point = {tuple(c.overrides.values()): c for c in self.candidates}
        pos = self.space.index(best.overrides)
        order = []
        for k, d in enumerate(self.space.dimensions):
            for j in (pos[k] - 1, pos[k] + 1):
                if 0 <= j < len(d.values):
                    point = list(best.overrides.values())
                    point[k] = d.values[j]
                    other = by_point[tuple(point)]
                    if not other.screened_out and not other.confirmed and other not in order:
                        order.append(other)

        def settle(other: Candidate, record) -> None:
            nonlocal best
            self.settle(other, record)
            if not other.confirmed:
                return  # the screen discarded it: shown with its flow-model figures
            other.neighbour = True
            if other.passed and beats(other, best):
                best = other  # only where a floor was not a lower bound (docs/recommend.md, Limits)

        self.confirmation.in_order(order, lambda c: False, settle)
        return best


def _met(summary: dict) -> bool:
    """A simulated run met every target."""
    return bool(summary["met"])


def _input_values(scenario: Scenario, space: Space) -> dict:
    """The input scenario's value of each key of the space (None where it has none, e.g. no HPA)."""
    values = {}
    for d in space.dimensions:
        try:
            values[d.key] = model_value(scenario, d.key)
        except (KeyError, AttributeError, StopIteration, IndexError, TypeError):
            values[d.key] = None
    return values
