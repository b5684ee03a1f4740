"""The throughput no run of a scenario can reach: the utilisation law on each datastore server.

A server of ``c`` cores does at most ``c`` seconds of query work per second (the utilisation
law U = X·D ≤ c; Denning and Buzen, "The Operational Analysis of Queueing Network Models",
Computing Surveys 10(3), 1978; the asymptotic bound X ≤ c / D of Lazowska et al., *Quantitative
System Performance*, 1984, §5.2). A request that completes has run every query of its program
(a failed query fails the request), so over the measured window ``W`` the completed requests'
query work on the server is at most ``c·W``.

The completed requests are not a random sample of the demand: when a share ``e`` of the answered
requests fails, the failures may be the heaviest ones. At worst they are the heaviest ``e``,
so the completed requests' work is at least ``A × E[D · 1{D ≤ q(1 − e)}]`` for ``A`` answered
requests (the demand with its top ``e`` cut off), and the throughput at most
``c / E[D · 1{D ≤ q(1 − e)}]``. ``e`` is the scenario's error-rate target: a run that fails more
misses that target anyway. Without an error-rate target the cut is everything and there is no
bound. The cut mean is taken over ``DRAWS`` draws of a request's demand (classes by weight,
every repeated and parallel query its own draw; a Redis miss path is left out, so the demand is
if anything under-counted and the bound loose).

Everything else is conservative too: jobs' queries on the same server, the work of failed
requests and of requests still in flight at the end, retries, slow-downs (a ``datastore_slowdown``
with a factor below 1, a server made faster, voids the bound for that server). The throughput
counts requests that arrived after the warm-up, whose work is all inside the window. Margins keep
sampling from crossing the bound: four standard errors of the run's mean demand over the fewest
answered requests the throughput target implies (``limit × W``) and of the draws' own mean, plus
1 % to spare. :func:`throughput_bound` gives the lowest such bound over the servers.

The same argument bounds the API's CPU from below: a run that meets both targets completes at
least ``limit × W`` requests, each of which ran its CPU steps, so its pods ran at least that
many requests' cut CPU work in the window (:func:`api_cpu_work`, less the margins). OpenCost bills
at least the usage the samples saw, so that is a floor on the cost of any passing run: the
search's stop rule uses it (api/recommend.py). The samples miss the last interval of a pod deleted
between two of them (its counters go with it, as cAdvisor's do): 2 % covers that for the HPA's own
scale-downs (at most one sample interval of a pod's CPU per pod removed: hundreds of removals
before it matters); events that delete pods (pod kills, drains, node failures, rollouts, config
changes) void the floor's CPU term, as they are not bounded in number.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from memstack_capacity.components.sampling import draws
from memstack_capacity.scenario.kinds import kind_of
from memstack_capacity.scenario.workload import CallStep, CpuStep, ParallelStep, RepeatStep

#: Draws of a request's demand per server.
DRAWS = 200_000
#: Standard errors of the mean demand kept as margin, and the share for the window's edges.
K_SE = 4.0
EDGE = 0.01
#: The usage a run's cost counts can fall short of the work done: a pod deleted between two samples
#: takes its last interval's work with it (results/cost.py, components/monitor.py).
USAGE_EDGE = 0.02
#: Events that delete pods, each taking its last sample interval of usage out of the bill.
POD_EVENTS = frozenset({"pod_kill", "drain", "node_failure", "rolling_update", "config_change"})


@dataclass(frozen=True)
class Bound:
    """At most ``rps`` requests per second complete, set by ``store``'s ``cores``."""

    rps: float
    store: str
    how: str


def _add_demand(steps, key: tuple, rng, out: np.ndarray, times: int = 1) -> None:
    """Add to ``out`` (one row per request) the work of ``steps`` run ``times`` times: on the API's CPU for
    ``key`` ``("cpu",)``, on a server for ``("call", store)``."""
    for step in steps:
        k = times * step.repeat
        if key == ("cpu",) and isinstance(step, CpuStep):
            for _ in range(k):
                out += draws(step.cpu, rng, len(out))
        elif isinstance(step, CallStep) and key == ("call", step.call) and step.time is not None:
            for _ in range(k):
                out += draws(step.time, rng, len(out))
        elif isinstance(step, ParallelStep):
            _add_demand(step.parallel, key, rng, out, k)
        elif isinstance(step, RepeatStep):
            _add_demand(step.steps, key, rng, out, k)


@functools.lru_cache(maxsize=64)
def _cut_demand(workload_json: str, key: tuple, error_rate: float) -> tuple[float, float]:
    """(mean work per request on ``key`` with the heaviest ``error_rate`` share cut to zero, its standard
    deviation) for the workload given as JSON (the cache key: a search varies no workload)."""
    from memstack_capacity.scenario.models import Workload

    workload = Workload.model_validate_json(workload_json)
    rng = np.random.default_rng(20260705)
    weights = np.array([c.weight for c in workload.requests], dtype=float)
    classes = rng.choice(len(weights), DRAWS, p=weights / weights.sum())
    demand = np.zeros(DRAWS)
    for i, c in enumerate(workload.requests):
        rows = np.flatnonzero(classes == i)
        part = np.zeros(len(rows))
        _add_demand(c.steps, key, rng, part)
        demand[rows] = part
    cut = np.sort(demand)
    keep = DRAWS - int(math.ceil(error_rate * DRAWS))
    cut[keep:] = 0.0
    return float(cut.mean()), float(demand.std())


def _targets(scenario) -> tuple[float, float, float] | None:
    """(error-rate limit, throughput limit, measured window in s) when both targets bound a run; else None."""
    targets = scenario.targets
    error = targets.error_rate.max if targets.error_rate is not None else None
    throughput = targets.throughput_rps.min if targets.throughput_rps is not None else None
    window = float(scenario.duration) - float(scenario.warmup)
    if error is None or error >= 1 or not throughput or window <= 0:
        return None
    return float(error), float(throughput), window


def _margin(mean: float, sd: float, fewest: float) -> float:
    return K_SE * sd / mean * (1 / math.sqrt(fewest) + 1 / math.sqrt(DRAWS)) + EDGE


def api_cpu_work(scenario) -> float | None:
    """The fewest core-seconds the API's pods must run in the measured window in any run that meets the
    throughput and error-rate targets: the completed requests' CPU steps (the heaviest ``e`` cut off, less
    the margins); None without both targets, or with events that delete pods (see the module docstring). A cost floor for passing runs (api/recommend.py): the
    OpenCost rule bills at least the usage."""
    given = _targets(scenario)
    if given is None or any(e.kind in POD_EVENTS for e in scenario.events):
        return None
    error, throughput, window = given
    fewest = throughput * window
    mean, sd = _cut_demand(scenario.workload.model_dump_json(), ("cpu",), error)
    if mean <= 0:
        return None
    return fewest * mean * max(0.0, 1 - _margin(mean, sd, fewest) - USAGE_EDGE)


def throughput_bound(scenario) -> Bound | None:
    """The highest throughput any run of ``scenario`` can complete (the lowest bound over its datastore
    servers); None
    without an error-rate target below 1, a throughput target to size the margin, or a server."""
    given = _targets(scenario)
    if given is None:
        return None
    error, throughput, window = given
    fewest = throughput * window
    workload_json = scenario.workload.model_dump_json()
    sped_up = {e.payload.datastore for e in scenario.events
               if e.kind == "datastore_slowdown" and float(e.payload.factor) < 1}
    best = None
    for name, spec in (scenario.datastores or {}).items():
        cores = getattr(spec, "cores", None)
        if not cores or not kind_of(spec).pooled or name in sped_up:
            continue
        mean, sd = _cut_demand(workload_json, ("call", name), error)
        if mean <= 0:
            continue
        margin = _margin(mean, sd, fewest)
        rps = cores / mean * (1 + margin)
        if best is None or rps < best.rps:
            best = Bound(rps, name, f"{cores:g} cores / {mean * 1000:.2f} ms of `{name}` queries per completed request "
                                    f"(the heaviest {error:.1%} left out), + {margin:.1%}")
    return best
