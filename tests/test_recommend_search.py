"""``recommend``'s stop rule and ordering against an exhaustive sweep, on synthetic runs.

Reference: the answer must be the point an exhaustive sweep with the same seeds would pick —
among the points every run of which meets every target, the lowest mean cost, a tie (costs
within ``REL`` = 1e-9 of each other) going to the earlier point of the space (docs/recommend.md,
"The search", step 3). The runs here are a fake executor whose verdicts and costs are drawn per
point and seed, with every run's cost at or above the point's cost floor (as a simulated run's
is: results/cost.py bills at least the requests); so the search's skipping can be checked on
hundreds of spaces in seconds, including the ties and near-ties that float sums make.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from memstack_capacity.api.recommend import REL, passing_cost_floor, recommend
from memstack_capacity.api.recommend_space import model_value, parse_space
from memstack_capacity.results.replications import mean_ci95
from memstack_capacity.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[1]
#: Four points whose cost floors are out of index order: (1 pod, 4 cores) is point 1 and costs more
#: than (2 pods, 1 core), point 2 (a pod of 500m and 512Mi ≈ 0.018 per hour, a core ≈ 0.032).
SPACE = {"space": {"deployments.api.replicas": [1, 2, 3], "datastores.postgres.cores": [1, 2, 4]}}


@pytest.fixture(scope="module")
def base():
    return load_scenario(str(ROOT / "scenarios" / "small.yaml"), {"targets.latency_p99.max": "1s"})


@pytest.fixture(scope="module")
def space(base):
    return parse_space(SPACE, "space.yaml", [base])


class FakeRuns:
    """``run_many(scenario, seeds)``: per point a verdict and a cost for each seed, given by ``table``
    (``{point: [(met, cost), …]}`` indexed by the seed's position), recording every call."""

    def __init__(self, space, table):
        self.space, self.table, self.calls = space, table, []

    def point(self, scenario) -> tuple:
        return tuple(model_value(scenario, d.key) for d in self.space.dimensions)

    def __call__(self, scenario, seeds):
        self.calls.append((self.point(scenario), list(seeds)))
        first = scenario.seed
        return [{"met": met, "targets": [], "cost": {"per_month": cost}}
                for met, cost in (self.table[self.point(scenario)][s - first] for s in seeds)]


def exhaustive_answer(space, table) -> int | None:
    """The index of the cheapest point whose every run passes, ties within REL to the earlier point."""
    passing = {}
    for i, point in enumerate(space.points()):
        runs = table[tuple(point.values())]
        if all(met for met, _ in runs):
            passing[i] = mean_ci95([cost for _, cost in runs])[0]
    if not passing:
        return None
    cheapest = min(passing.values())
    return min(i for i, cost in passing.items() if cost <= cheapest * (1 + REL))


def floors(base, space) -> dict:
    """The search's floor per point: the cost no passing run can go below (api/recommend.passing_cost_floor)."""
    return {tuple(p.values()): passing_cost_floor(base.with_overrides(p)) for p in space.points()}


def test_a_tie_within_rel_goes_to_the_earlier_point_whatever_the_order_of_confirmation(base, space):
    floor = floors(base, space)
    one_pod_four_cores, two_pods_one_core = (1, 4), (2, 1)
    assert floor[two_pods_one_core] < floor[one_pod_four_cores]  # so (2, 1), point 3, is confirmed first
    tie = floor[one_pod_four_cores]
    table = {p: [(False, f)] for p, f in floor.items()}
    table[one_pod_four_cores] = [(True, tie)]                       # point 2
    table[two_pods_one_core] = [(True, tie * (1 - 1e-12))]          # point 3: the same cost but for float noise
    fake = FakeRuns(space, table)
    result = recommend([base], space, replications=1, screen=False, run_many=fake, neighbours=False)
    assert exhaustive_answer(space, table) == 2
    assert result.best.index == 2, result.best.overrides


@pytest.mark.parametrize("draw", range(150))
def test_the_answer_is_the_exhaustive_sweeps_on_random_spaces(base, space, draw):
    rng = random.Random(draw)
    floor = floors(base, space)
    table = {}
    for p, f in floor.items():
        # Costs at the floor (usage below the requests), a float's noise above it, or well above;
        # verdicts passing more often on the costlier points, as more capacity does.
        table[p] = [(rng.random() < 0.2 + 0.1 * (p[0] + p[1]), f * rng.choice([1.0, 1 + 1e-12, 1.2, 1.6]))
                    for _ in range(2)]
    fake = FakeRuns(space, table)
    result = recommend([base], space, replications=2, screen=False, run_many=fake, neighbours=draw % 2 == 0)
    expected = exhaustive_answer(space, table)
    assert (result.best.index if result.best else None) == expected
    # Common random numbers: every point confirmed was run with the same seeds, in order, each run
    # once, and a point stops at its first failing run.
    runs = [(p, s) for p, seeds in fake.calls for s in seeds]
    assert {s for _, s in runs} <= {base.seed, base.seed + 1}
    assert len(set(runs)) == len(runs)
    for p, s in runs:
        if s == base.seed + 1:
            assert table[p][0][0], f"{p} ran its second seed after its first failed"
            assert (p, base.seed) in runs


def test_the_floor_rule_skips_points(base, space):
    """The equivalence above means something only if points are skipped: here every point passes at
    its floor, so after the cheapest no other point can beat it and none is run."""
    floor = floors(base, space)
    fake = FakeRuns(space, {p: [(True, f)] for p, f in floor.items()})
    result = recommend([base], space, replications=1, screen=False, run_many=fake, neighbours=False)
    assert result.best.overrides == {"deployments.api.replicas": 1, "datastores.postgres.cores": 1}
    assert len(fake.calls) == 1


class ThreadRuns:
    """An executor of ``width`` threads over a :class:`FakeRuns` table, each run taking a random few
    milliseconds, so runs finish out of the order they were started in."""

    def __init__(self, fake: FakeRuns, width: int, draw: int):
        import concurrent.futures

        self.fake, self.width, self.rng = fake, width, random.Random(draw)
        self.pool = concurrent.futures.ThreadPoolExecutor(width)
        self.started = []

    def submit(self, scenario, seed, engine=None, counted=True):
        import time

        delay = self.rng.random() * 0.003
        self.started.append((self.fake.point(scenario), seed))

        def run():
            time.sleep(delay)
            return self.fake(scenario, [seed])[0]
        return self.pool.submit(run)


@pytest.mark.parametrize("draw", range(40))
def test_many_runs_at_once_give_the_record_of_one_after_another(base, space, draw):
    """recommend_runs.Confirmation: with 2 or 3 runs at once, finishing in any order, the answer, every
    point's recorded runs and the lines said are those of one run after another; only the runs
    started ahead differ, and none of those is recorded."""
    rng = random.Random(1000 + draw)
    floor = floors(base, space)
    table = {p: [(rng.random() < 0.15 + 0.12 * (p[0] + p[1]), f * rng.choice([1.0, 1.2, 1.6])) for _ in range(3)]
             for p, f in floor.items()}

    def search(run_many):
        lines = []
        result = recommend([base], space, replications=3, screen=False, run_many=run_many,
                           neighbours=draw % 2 == 0, notify=lines.append)
        record = {c.index: [s["cost"]["per_month"] for o in c.outcomes.values() for s in (o.summaries or [])]
                  for c in result.candidates}
        return (result.best.index if result.best else None), record, lines

    serial = search(FakeRuns(space, table))
    threads = ThreadRuns(FakeRuns(space, table), 2 + draw % 2, draw)
    assert search(threads) == serial
    assert serial[0] == exhaustive_answer(space, table)
    assert len(threads.started) >= sum(len(r) for r in serial[1].values())
    assert len(set(threads.started)) == len(threads.started)  # no run twice, even when started ahead


def test_progress_counts_each_configuration_once(base, space):
    """screen_progress(done, total): one call per configuration settled or passed over, 1 … total, even
    when runs are started ahead (the stop rule is asked about later points then too)."""
    floor = floors(base, space)
    table = {p: [(True, f)] for p, f in floor.items()}
    calls = []
    recommend([base], space, replications=1, screen=False, run_many=ThreadRuns(FakeRuns(space, table), 2, 0),
              neighbours=False, screen_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, space.size) for i in range(1, space.size + 1)]


class FailingRuns(ThreadRuns):
    """ThreadRuns whose run of one (point, seed) raises."""

    def __init__(self, fake, width, draw, bad):
        super().__init__(fake, width, draw)
        self.bad = bad

    def submit(self, scenario, seed, engine=None, counted=True):
        if (self.fake.point(scenario), seed) != self.bad:
            return super().submit(scenario, seed, engine, counted)

        def run():
            raise ValueError("a model invariant broke")
        return self.pool.submit(run)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_an_error_stops_the_search_only_in_a_run_the_order_needs(base, space, width):
    """A run that raises stops the search when the one-at-a-time order needs it, whatever the number
    of workers; the same error in a run started ahead and never needed (the second seed of a point
    whose first run failed) does not."""
    floor = floors(base, space)
    first = min(floor, key=lambda p: (floor[p], list(floor).index(p)))  # the point taken first
    table = {p: [(False, f), (False, f)] for p, f in floor.items()}
    ok = recommend([base], space, replications=2, screen=False, neighbours=False,
                   run_many=FailingRuns(FakeRuns(space, table), width, 0, (first, base.seed + 1)))
    assert ok.best is None  # the raising run came after the point's first failure: never needed
    with pytest.raises(ValueError, match="invariant"):
        recommend([base], space, replications=2, screen=False, neighbours=False,
                  run_many=FailingRuns(FakeRuns(space, table), width, 0, (first, base.seed)))
