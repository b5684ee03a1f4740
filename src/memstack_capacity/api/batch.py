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

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from memstack_capacity.api.executor import Runs, _execute, run_task, runner
from memstack_capacity.api.progress import auto_progress
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
