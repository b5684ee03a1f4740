"""``recommend``'s runs: several at once, with the answer and the record of one run after another.

The search is defined one run at a time (:mod:`.recommend`): points in order, each run scenario
after scenario and seed after seed, a point stopping at its first run that misses a target (it
cannot pass, so its other runs would be wasted), and a point skipped when the stop rule says no
result of it could be the answer. That order is what makes the answer an exhaustive sweep's.

With ``width`` runs going on at once, :class:`Confirmation` keeps that order's outcome exactly
while it runs ahead: the next runs of the next few points are started speculatively, the
fewest-started point first (an early point usually fails at its first run, so the next point's
first run is the likeliest to be needed), and a point is *settled* — its runs recorded, the
caller told — only when the cursor of the one-at-a-time order reaches it. A point's record is
cut after its first failing run in order, and a point the stop rule skips when the cursor
reaches it is recorded as not run, whatever was started for it. So the record, the answer and
the notifications are the same for one worker or many (the runs are the same: same scenario,
same seed); only the time differs. A run started for a point is kept by its key (point,
scenario, seed) and reused if a later phase (the neighbours) needs it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from memstack_capacity.scenario.models import Scenario


@dataclass(frozen=True)
class Run:
    """One planned run of a point: on ``engine`` (None: the executor's), judged by ``judge(summary)``
    (True: the point goes on to its next run)."""

    kind: str  # "screen" or "simulation"
    scenario_name: str
    scenario: Scenario
    seed: int
    engine: str | None
    judge: Callable[[dict], bool]

    @property
    def key(self) -> tuple:
        return self.kind, self.scenario_name, self.seed


class Serial:
    """A ``run_many(scenario, seeds)`` function as a one-run-at-a-time executor (``width`` 1); a run on
    another engine (the flow-model screen) is simulated here."""

    width = 1

    def __init__(self, run_many: Callable[[Scenario, Sequence[int]], list[dict]]):
        self.run_many = run_many

    def submit(self, scenario: Scenario, seed: int, engine: str | None = None, counted: bool = True) -> Future:
        future: Future = Future()
        if engine is None:
            future.set_result(self.run_many(scenario, [seed])[0])
        else:
            from memstack_capacity.api.simulation import simulate

            future.set_result(simulate(scenario, seed=seed, engine=engine).summary)
        return future


def executor_of(run_many):
    """The executor behind ``run_many``: a :class:`memstack_capacity.api.batch.Runs` as it is, a plain
    function through :class:`Serial`."""
    return run_many if hasattr(run_many, "submit") and hasattr(run_many, "width") else Serial(run_many)


class Confirmation:
    """Points confirmed in the one-at-a-time order's outcome, ``executor.width`` runs at a time.

    ``plan(point)`` lists the point's runs in order; ``key(point)`` names it. :meth:`in_order`
    settles the points of an order one by one, skipping those ``skip`` names when their turn
    comes.
    """

    def __init__(self, executor, plan: Callable[[object], list[Run]], key: Callable[[object], object]):
        self.executor, self.plan, self.key = executor, plan, key
        self.futures: dict[tuple, Future] = {}   # (point key, scenario name, seed) -> the run's summary
        self.plans: dict = {}

    def runs(self, point) -> list[Run]:
        k = self.key(point)
        if k not in self.plans:
            self.plans[k] = self.plan(point)
        return self.plans[k]

    def _future(self, point, run: Run) -> Future | None:
        return self.futures.get((self.key(point), *run.key))

    def started(self, point) -> int:
        """How many of the point's runs, from its first, have been started."""
        n = 0
        for run in self.runs(point):
            if self._future(point, run) is None:
                break
            n += 1
        return n

    def outcome(self, point) -> list[tuple[Run, dict]] | None:
        """The point's record once it is known — its runs in order up to and including the first its
        judge fails, or all of them — as (run, summary); None while runs it needs are out."""
        record = []
        for run in self.runs(point):
            future = self._future(point, run)
            if future is None or not future.done():
                return None
            summary = future.result()
            record.append((run, summary))
            if not run.judge(summary):
                break
        return record

    def _needs_more(self, point) -> bool:
        """Whether a run of the point is still to be started: not all started, and none done has missed."""
        runs = self.runs(point)
        n = self.started(point)
        if n == len(runs):
            return False
        for run in runs[:n]:
            future = self._future(point, run)
            if future.done() and (future.exception() is not None or not run.judge(future.result())):
                return False  # it cannot pass; an error is raised when the order reaches it
        return True

    def _start(self, point) -> None:
        run = self.runs(point)[self.started(point)]
        self.futures[(self.key(point), *run.key)] = self.executor.submit(
            run.scenario, run.seed, run.engine, counted=run.kind != "screen")

    def _in_flight(self) -> list[Future]:
        return [f for f in self.futures.values() if not f.done()]

    def _fill(self, ahead: list) -> None:
        """Start runs of the points ``ahead`` (the next ``width`` not yet settled) until ``width`` go
        on: the point with the fewest started first, the earlier on a tie."""
        while len(self._in_flight()) < self.executor.width:
            open_ = [p for p in ahead if self._needs_more(p)]
            if not open_:
                return
            self._start(min(open_, key=lambda p: (self.started(p), ahead.index(p))))

    def in_order(self, order: Sequence, skip: Callable[[object], bool],
                 settle: Callable[[object, list[tuple[Run, dict]]], None],
                 passed_over: Callable[[object], None] | None = None) -> None:
        """Settle each point of ``order`` in turn: ``skip(point)`` (asked when its turn comes, after
        every earlier point is settled; also asked of later points to choose what to run ahead, so
        it must have no side effect) leaves it unrun and calls ``passed_over(point)``; otherwise
        ``settle(point, record)``."""
        pos = 0
        while pos < len(order):
            point = order[pos]
            if skip(point):
                if passed_over is not None:
                    passed_over(point)
                pos += 1
                continue
            record = self.outcome(point)
            if record is not None:
                settle(point, record)
                pos += 1
                continue
            # Run ahead only on points the stop rule lets through now (the best only gets cheaper, so
            # a point it skips now it will almost surely skip at its turn) with a run still to start.
            later = (p for p in order[pos + 1:] if not skip(p) and self._needs_more(p))
            self._fill([point] + list(itertools.islice(later, self.executor.width - 1)))
            in_flight = self._in_flight()
            if not in_flight and self.outcome(point) is None:
                raise RuntimeError("recommend: a point's runs could not be started")  # a bug, not bad input
            if in_flight:
                # A run's error is raised by outcome() when the order needs that run, not here: a run
                # started ahead and never needed must not stop the search (whatever the worker count).
                wait(in_flight, return_when=FIRST_COMPLETED)
        self.cancel_ahead()

    def cancel_ahead(self) -> None:
        """Runs started ahead and not yet begun are dropped, and forgotten so that a later order that
        needs them starts them again; those already running finish and are kept."""
        for key, future in list(self.futures.items()):
            if not future.done() and future.cancel():
                del self.futures[key]
