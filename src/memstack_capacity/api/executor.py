"""Where a batch's runs go: this process, a pool of local processes, or a Dask cluster.

:func:`run_task` is the one task every executor runs (data in, a summary out, importable by a
spawned worker or a Dask worker); :func:`_execute` runs a list of them for ``replicate`` and
``sweep`` (api/batch.py); :class:`Runs` (from :func:`runner`) keeps one executor for a whole
search, for a few seeds at a time (``capacity``) or one run at a time as futures (``recommend``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from memstack_capacity.api.progress import ProgressFn
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.models import Scenario


def run_task(task: tuple[str, int, str]) -> dict:
    """Simulate one ``(scenario JSON, seed, engine)`` and return its summary dict.

    Module-level and data-in/data-out so that process pools (``spawn``) and Dask
    workers can import and call it.
    """
    from memstack_capacity.api.simulation import simulate
    from memstack_capacity.scenario.load import parse_scenario

    scenario_json, seed, engine = task
    scenario = parse_scenario(json.loads(scenario_json))
    return simulate(scenario, seed=seed, engine=engine).summary


class _Tally:
    """Counts finished runs for ``progress(done, total)``; safe to tick from the executor's threads."""

    def __init__(self, progress: ProgressFn | None, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self.lock = threading.Lock()

    def tick(self, *_) -> None:
        with self.lock:
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)

    def ping(self, sim_s: float = 0.0, duration_s: float = 0.0) -> None:
        """A run here has reached ``sim_s`` of ``duration_s``: report the runs done plus that share
        of one, so a heartbeat goes on (and estimates the time left) during a long run."""
        share = sim_s / duration_s if duration_s > 0 else 0.0
        if self.progress is not None and 0 < share < 1:  # a whole run is reported by tick
            with self.lock:
                self.progress(self.done + share, self.total)


def _run_here(task: tuple[str, int, str], tally: _Tally) -> Result:
    """One task in this process, keeping its full record (its frames are the outputs)."""
    from memstack_capacity.api.simulation import simulate
    from memstack_capacity.scenario.load import parse_scenario

    scenario_json, seed, engine = task
    return simulate(parse_scenario(json.loads(scenario_json)), seed=seed, engine=engine, progress=tally.ping)


def _process_pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


def _execute(tasks: list[tuple[str, int, str]], workers: int | None, client, progress: ProgressFn | None,
             first_here: bool = False, pool: ProcessPoolExecutor | None = None) -> list:
    """Run every task; the summaries in task order.

    With ``first_here`` the first task runs in this process while the others run on the
    pool (or the Dask cluster), and comes back as a full :class:`Result` instead of a
    summary: a caller that needs one run's frames then simulates K runs, not K + 1.
    ``pool`` is a process pool kept by the caller across calls (:func:`runner`); without
    one, a pool lives for this call. A single task runs in this process.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tally = _Tally(progress, len(tasks))
    n = min(workers or os.cpu_count() or 1, len(tasks))
    if client is None and n <= 1:
        out = []
        for i, task in enumerate(tasks):
            result = _run_here(task, tally)
            out.append(result if first_here and i == 0 else result.summary)
            tally.tick()
        return out
    remote = tasks[1:] if first_here else tasks
    with contextlib.ExitStack() as stack:
        if client is not None:
            futures = client.map(run_task, remote, pure=False)
        else:
            if pool is None:
                # This process is one of the n workers when it runs the first task itself.
                pool = stack.enter_context(_process_pool(max(n - first_here, 1)))
            futures = [pool.submit(run_task, task) for task in remote]
        for future in futures:
            future.add_done_callback(tally.tick)
        first = [_run_here(tasks[0], tally)] if first_here else []
        if first:
            tally.tick()
        summaries = client.gather(futures) if client is not None else [f.result() for f in futures]
    return first + list(summaries)


class Runs:
    """One executor kept for a whole search: ``runs(scenario, seeds)`` for a few seeds at once, and
    ``runs.submit(scenario, seed)`` for one run whose summary comes back as a future.

    ``width`` runs go on at once (the local processes, or the Dask cluster's threads); with one
    worker and no cluster a run happens in this process, at ``submit`` (its future is done when
    returned). ``progress(done, total)`` follows each call's runs, and the submitted runs as they
    finish (the total growing as runs are submitted).
    """

    def __init__(self, workers: int | None, client, engine: str, progress: ProgressFn | None,
                 stack: contextlib.ExitStack):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers, self.client, self.engine, self.progress, self._stack = workers, client, engine, progress, stack
        self._pool: ProcessPoolExecutor | None = None
        self._tally = _Tally(progress, 0)
        self._width: int | None = None

    @property
    def width(self) -> int:
        """How many runs go on at once: the local workers, or the Dask cluster's threads."""
        if self._width is None:
            threads = sum(self.client.nthreads().values()) if self.client is not None else 0
            self._width = max(threads, 1) if self.client is not None else (self.workers or os.cpu_count() or 1)
        return self._width

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._stack.enter_context(_process_pool(self.width))
        return self._pool

    def __call__(self, scenario: Scenario, seeds: Sequence[int], engine: str | None = None) -> list[dict]:
        tasks = [(scenario.model_dump_json(), int(s), engine or self.engine) for s in seeds]
        n = min(self.width, len(tasks))
        pool = self.pool() if self.client is None and n > 1 else None
        return _execute(tasks, n, self.client, self.progress, pool=pool)

    def submit(self, scenario: Scenario, seed: int, engine: str | None = None, counted: bool = True) -> Future:
        """One run's summary, as a :class:`concurrent.futures.Future` whatever the executor; ``counted``
        runs are followed by ``progress`` (a search's screen keeps its own count)."""
        task = (scenario.model_dump_json(), int(seed), engine or self.engine)
        if counted:
            with self._tally.lock:
                self._tally.total += 1
        if self.client is None and self.width == 1:
            future: Future = Future()
            try:
                future.set_result(run_task(task))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future (Ctrl-C is not)
                future.set_exception(exc)
        elif self.client is not None:
            future = _concurrent(self.client.submit(run_task, task, pure=False))
        else:
            future = self.pool().submit(run_task, task)
        if counted:
            future.add_done_callback(self._tally.tick)
        return future


def _concurrent(remote) -> Future:
    """A Dask future as a :class:`concurrent.futures.Future`, so that one ``wait`` serves both executors."""
    local: Future = Future()

    def settle(done) -> None:
        try:
            local.set_result(done.result())
        except Exception as exc:  # noqa: BLE001 - the run's error, handed on
            local.set_exception(exc)

    remote.add_done_callback(settle)
    return local


@contextlib.contextmanager
def runner(workers: int | None = None, client=None, engine: str = "auto", progress: ProgressFn | None = None):
    """A :class:`Runs` on one executor kept for the whole block.

    For a search that runs a few seeds of one scenario at a time (the capacity search) or single
    runs as it goes (recommend): ``workers`` local processes (one per CPU by default; 1 runs them
    here), started once on first need, or a Dask ``client``. The runs are on ``engine``, or on the
    ``engine`` a call names (the fluid screens). ``progress(done, total)`` follows the runs.
    """
    with contextlib.ExitStack() as stack:
        yield Runs(workers, client, engine, progress, stack)
