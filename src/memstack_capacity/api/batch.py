"""Many runs at once: replications, parameter sweeps, and side-by-side comparisons.

>>> from memstack_capacity import load_scenario, replicate, sweep, compare
>>> base = load_scenario("scenarios/peak.yaml")
>>> runs = sweep(base, {"deployments.api.hpa.maxReplicas": [10, 20, 30]}, replications=5)
>>> runs.groupby("deployments.api.hpa.maxReplicas")["requests.latency_s.p99"].mean()

A sweep returns one long DataFrame, a row per run: ``run_id``, ``variant``,
``replication``, ``seed``, one column per overridden input (named by its dotted key)
and the run's summary flattened into dotted columns (``requests.throughput_rps``,
``requests.latency_s.p99``, ``deployments.api.replicas.max``, …, ``met``).

**Seeds and common random numbers.** Replication ``r`` runs with seed ``seed + r``
(``seed`` defaults to the scenario's own), and replication ``r`` of *every* variant
uses that same seed, so the variants see the same arrivals and service times and
their differences are not noise. Each component draws from its own named stream,
so a variant that adds or changes one component does not shift the others.

**Executors.** Runs go to a local pool of processes by default (``workers=None``:
one per CPU); ``workers=1`` runs them one after another in this process; a Dask
``client`` (``distributed.Client``) sends them to its cluster. All three run the same
task, :func:`run_task`, on the same inputs, so they give identical figures. A task
receives the scenario as JSON and a seed, rebuilds the scenario, simulates it and
sends back only the summary dict: a run's full record (every request) can be large.

**Jupyter, scripts and process pools.** The pool starts its workers with ``spawn``
(the only start method on Windows and macOS, and safe with threads everywhere). A
spawned worker imports the function it runs by module and name, so a function
defined in a notebook cell cannot run there, and a *script* that starts a pool at
its top level must guard that code, or every worker re-runs the script::

    if __name__ == "__main__":
        frame = sweep(base, grid)

This API keeps the notebook case working without a guard: the task function lives
in this importable module and only data (JSON text and a seed) crosses to the
workers. Scripts still need the guard above; the command line does not.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import pandas as pd

from memstack_capacity.api.progress import ProgressFn, auto_progress
from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.results.replications import SummaryResult, combine_summaries, mean_ci95
from memstack_capacity.results.result import Result
from memstack_capacity.scenario.models import Scenario


#: Summary keys left out of a sweep's columns: the row has them already.
_ROW_KEYS = {"seed", "replications"}


# --------------------------------------------------------------------------- grid


def expand_grid(grid: Mapping[str, object]) -> list[dict]:
    """Every combination of a grid's values, as override mappings, in a stable order.

    ``{"a": [1, 2], "b": ["x", "y"]}`` → ``[{a:1,b:x}, {a:1,b:y}, {a:2,b:x}, {a:2,b:y}]``
    (keys in the given order, the last varying fastest). A value that is a string or
    not iterable stands for itself (one value). An empty list of values is an error
    naming the key. An empty grid gives one variant with no overrides.
    """
    keys, choices = [], []
    for key, values in grid.items():
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            values = [values]
        values = list(values)
        if not values:
            raise ValueError(f"grid key {key!r} has no values; give at least one")
        keys.append(str(key))
        choices.append(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def check_grid_keys(scenario: Scenario, keys: Iterable[str]) -> None:
    """Raise one :class:`ScenarioError` listing every grid key that names nothing in the scenario."""
    from memstack_capacity.scenario.overrides import set_path

    data = scenario.model_dump(mode="json")
    problems = []
    for key in keys:
        try:
            set_path(copy.deepcopy(data), key, None)
        except ValueError as exc:
            problems.append(Problem(f"grid key {key}", str(exc)))
    if problems:
        raise ScenarioError(problems, scenario.name)


# --------------------------------------------------------------------------- the task


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


# --------------------------------------------------------------------------- public API


def _seed0(scenario: Scenario, seed: int | None) -> int:
    return scenario.seed if seed is None else int(seed)


def replicate(
    scenario: Scenario, k: int, seed: int | None = None, workers: int | None = None, client=None, progress=None,
    engine: str = "auto",
) -> list[Result]:
    """Simulate ``scenario`` ``k`` times with seeds ``seed, seed+1, …, seed+k-1`` on ``engine``.

    ``seed`` defaults to the scenario's own. With ``workers=1`` (or ``k == 1``) the runs
    happen in this process and each :class:`Result` holds its full record. Otherwise the
    first runs here, with its full record, while the others run on the pool (or the Dask
    ``client``'s cluster): only their summaries come back, and their frames are rebuilt
    on first use (same seed, same run). So writing the first run's outputs beside the
    combined summary simulates K runs, not K + 1. Combine the summaries with
    :func:`memstack_capacity.results.replications.combine_summaries`.
    """
    if k < 1:
        raise ValueError(f"the number of replications must be at least 1, got {k}")
    seeds = [_seed0(scenario, seed) + r for r in range(k)]
    if client is None and (workers == 1 or k == 1):
        from memstack_capacity.api.simulation import simulate

        bar = auto_progress(f"replicate {scenario.name}", progress)
        out = []
        for i, s in enumerate(seeds):
            out.append(simulate(scenario, seed=s, engine=engine))
            if bar is not None:
                bar(i + 1, k)
        return out
    text = scenario.model_dump_json()
    first, *summaries = _execute([(text, s, engine) for s in seeds], workers, client,
                                 auto_progress(f"replicate {scenario.name}", progress), first_here=True)
    return [first] + [SummaryResult(scenario, s, summary, engine) for s, summary in zip(seeds[1:], summaries)]


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


def flatten(summary: Mapping, prefix: str = "") -> dict:
    """A summary as ``{"requests.latency_s.p99": 0.4, …}``.

    Target verdicts become ``targets.<name>.<kind>`` (met, a bool); ``alerts`` becomes
    ``alerts.count``; other lists are left out.
    """
    out: dict = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif key == "targets" and not prefix and isinstance(value, list):
            for v in value:
                out[f"targets.{v['name']}.{v['kind']}"] = bool(v["met"])
        elif key == "alerts" and not prefix and isinstance(value, list):
            out["alerts.count"] = len(value)
        elif not isinstance(value, list):
            out[name] = value
    return out


def sweep(
    scenario: Scenario,
    grid: Mapping[str, Sequence],
    replications: int = 1,
    seed: int | None = None,
    workers: int | None = None,
    client=None,
    progress=None,
    engine: str = "auto",
) -> pd.DataFrame:
    """Simulate every combination of ``grid`` (``{dotted key: [values]}``), ``replications`` times each, on ``engine``.

    Returns a long DataFrame, one row per run (see the module docstring). Keys are
    checked before anything runs: a key that names nothing raises
    :class:`~memstack_capacity.errors.ScenarioError` listing the nearest keys, as does
    a value the scenario does not accept. ``client`` is a ``distributed.Client``;
    ``progress`` a ``fn(done, total)``, ``False`` for none, ``None`` for a line on the
    terminal or in the notebook.
    """
    if replications < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    variants = expand_grid(grid)
    check_grid_keys(scenario, grid.keys())
    scenarios = [scenario.with_overrides(v) if v else scenario for v in variants]
    tasks, rows = [], []
    for v, (overrides, sc) in enumerate(zip(variants, scenarios)):
        text = sc.model_dump_json()
        # The seed comes from the base unless the grid varies the seed itself.
        base = _seed0(sc if "seed" in overrides else scenario, seed)
        for r in range(replications):
            tasks.append((text, base + r, engine))
            rows.append({"variant": v, "replication": r, "seed": base + r, **copy.deepcopy(overrides)})
    summaries = _execute(tasks, workers, client, auto_progress(f"sweep {scenario.name}", progress))
    records = []
    for run_id, (row, summary) in enumerate(zip(rows, summaries)):
        figures = {k: v for k, v in flatten(summary).items() if k not in _ROW_KEYS and k not in row}
        records.append({"run_id": run_id, **row, **figures})
    return pd.DataFrame.from_records(records)


#: The headline figures :func:`compare` shows, as (label, path in the summary).
HEADLINE = (
    ("throughput_rps", ("requests", "throughput_rps")),
    ("error_rate", ("requests", "error_rate")),
    ("latency_mean_s", ("requests", "latency_s", "mean")),
    ("latency_p50_s", ("requests", "latency_s", "p50")),
    ("latency_p95_s", ("requests", "latency_s", "p95")),
    ("latency_p99_s", ("requests", "latency_s", "p99")),
    ("job_latency_p99_s", ("jobs", "latency_s", "p99")),
)


def _headline_paths(summaries: Iterable[Mapping]) -> list[tuple[str, tuple]]:
    paths = list(HEADLINE)
    for s in summaries:
        for name in s.get("deployments", {}):
            for label, path in (
                (f"{name}.replicas_max", ("deployments", name, "replicas", "max")),
                (f"{name}.replicas_mean", ("deployments", name, "replicas", "mean")),
                (f"{name}.cpu_utilization_mean", ("deployments", name, "cpu_utilization", "mean")),
            ):
                if (label, path) not in paths:
                    paths.append((label, path))
    return paths


def _get(summary: Mapping, path: tuple):
    node = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def compare(results: Mapping[str, Result | Sequence[Result]]) -> pd.DataFrame:
    """Headline figures side by side: a row per figure, per label the value and its 95 % interval.

    ``results`` maps a label to one :class:`Result` or to its replications (a list).
    Columns are a MultiIndex ``(label, "value" | "ci95_lo" | "ci95_hi")``; the interval is
    NaN for a single run. The last row, ``met_fraction``, is the share of runs that met
    every target.
    """
    per_label = {}
    for label, value in results.items():
        runs = [value] if isinstance(value, Result) else list(value)
        if not runs:
            raise ValueError(f"{label!r} has no results")
        per_label[label] = [r.summary for r in runs]
    paths = _headline_paths(s for summaries in per_label.values() for s in summaries)
    nan = float("nan")
    columns, data = [], []
    for label, summaries in per_label.items():
        values, lows, highs = [], [], []
        for _, path in paths:
            figures = [_get(s, path) for s in summaries]
            mean, ci = mean_ci95(figures) if all(f is not None for f in figures) else (None, None)
            values.append(nan if mean is None else mean)
            lows.append(nan if ci is None else ci[0])
            highs.append(nan if ci is None else ci[1])
        met = [bool(s.get("met", False)) for s in summaries]
        values.append(sum(met) / len(met))
        lows.append(nan)
        highs.append(nan)
        for stat, col in (("value", values), ("ci95_lo", lows), ("ci95_hi", highs)):
            columns.append((label, stat))
            data.append(col)
    index = pd.Index([label for label, _ in paths] + ["met_fraction"], name="figure")
    frame = pd.DataFrame(dict(zip(columns, data)), index=index)
    frame.columns = pd.MultiIndex.from_tuples(columns)
    return frame.dropna(how="all")


__all__ = [
    "replicate",
    "sweep",
    "compare",
    "combine_summaries",
    "expand_grid",
    "check_grid_keys",
    "flatten",
    "run_task",
    "runner",
    "Runs",
]
