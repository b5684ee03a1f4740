"""How big a run will be, estimated from the scenario alone, and the limits that keep a run
from exhausting the machine.

Every figure here is known before anything is simulated: the closed users, the pods
(each deployment at its most), the expected requests (rate × duration), the duration,
the number of runs and an estimate of the memory a run takes. The command line checks
them against :data:`LIMITS` before it simulates and refuses, naming the figure, its
value and the limit, unless it is asked to go ahead (docs/reference/limits.md). The
limits sit far above every bundled scenario (the largest, ``day.yaml``, expects 61 M
requests; ``week.yaml`` runs on the flow model, which has no per-request cost).
"""

from __future__ import annotations

from dataclasses import dataclass

from memstack_capacity.errors import Problem
from memstack_capacity.scenario.models import Scenario

#: Most rows the per-request log keeps (about 26 bytes each in memory); beyond, every N-th.
REQUEST_LOG_LIMIT = 4_000_000

DAY_S = 86_400.0
MiB = 2**20


@dataclass(frozen=True)
class Limits:
    """The largest run the command line starts without being asked to (``--allow-large``)."""

    users: int = 1_000_000
    replicas: int = 10_000
    requests: float = 1e9
    duration_s: float = 92 * DAY_S
    runs: int = 10_000
    memory_bytes: int = 16 * 2**30


LIMITS = Limits()

# The memory estimate, per item, generous: it is a guard against runs that cannot fit, not a forecast.
#: The interpreter with numpy, pandas, simpy and matplotlib loaded.
BASE_BYTES = 300 * MiB
#: A kept request row: the log in the engine and its frame and CSV text when the outputs are written.
BYTES_PER_REQUEST_ROW = 120
#: A closed user: its simpy process, its generator and its pending timeout.
BYTES_PER_USER = 4096
#: A pod: its processes, queues, pools and counters.
BYTES_PER_POD = 1 * MiB
#: One sampled value: the wide frame and the long timeseries.csv frame.
BYTES_PER_SAMPLE = 64
#: Series sampled per deployment, per datastore, and for the ingress and the job queue.
SERIES_PER_DEPLOYMENT, SERIES_PER_DATASTORE, SERIES_OTHER = 16, 8, 24


def expected_requests(scenario: Scenario) -> float:
    """An upper estimate of the requests a run will see, from its load profile."""
    wl = scenario.workload
    if wl.arrivals is not None:
        points = [(p.at, p.rps) for p in wl.arrivals.profile]
        per_s_think = 1.0
    else:
        points = [(p.at, float(p.users)) for p in wl.users.profile]
        per_s_think = 1.0 / max(wl.users.think_time.expected(), 1e-3)
    total, t_prev, v_prev = 0.0, 0.0, points[0][1]
    for t, v in points + [(scenario.duration, points[-1][1])]:
        t = min(t, scenario.duration)
        if t > t_prev:
            total += (t - t_prev) * (v_prev + v) / 2.0
            t_prev = t
        v_prev = v
    return total * per_s_think * _spike_factor(scenario)


def _spike_factor(scenario: Scenario) -> float:
    return max((e.traffic_spike.factor for e in scenario.events if getattr(e, "traffic_spike", None)), default=1.0)


@dataclass(frozen=True)
class Size:
    """A run's size, estimated before it starts."""

    users: float
    replicas: int
    requests: float
    duration_s: float
    memory_bytes: float


def estimate(scenario: Scenario, engine: str) -> Size:
    """The size of one run of ``scenario`` on ``engine`` (``"fluid"`` keeps no request and no user)."""
    wl = scenario.workload
    users = max(p.users for p in wl.users.profile) * _spike_factor(scenario) if wl.users is not None else 0.0
    replicas = sum(d.max_replicas for d in scenario.deployments.values())
    requests = expected_requests(scenario)
    per_request = engine != "fluid"
    samples = scenario.duration / scenario.sample_interval
    series = (SERIES_PER_DEPLOYMENT * len(scenario.deployments)
              + SERIES_PER_DATASTORE * len(scenario.datastores or {}) + SERIES_OTHER)
    memory = (BASE_BYTES + replicas * BYTES_PER_POD + samples * series * BYTES_PER_SAMPLE
              + (min(requests, REQUEST_LOG_LIMIT) * BYTES_PER_REQUEST_ROW + users * BYTES_PER_USER if per_request
                 else 0.0))
    return Size(users, replicas, requests, scenario.duration, memory)


def scale_problems(scenario: Scenario, engine: str, runs: int = 1, parallel: int = 1,
                   limits: Limits | None = None) -> list[Problem]:
    """Every limit the run (``runs`` of it, ``parallel`` at a time) would pass, with both numbers;
    ``limits`` defaults to :data:`LIMITS`."""
    limits = limits or LIMITS
    size = estimate(scenario, engine)
    problems = []

    def over(field: str, what: str, value: float, limit: float, hint: str = "") -> None:
        problems.append(Problem(field, f"{what} {_n(value)}, over the limit of {_n(limit)}{hint}"))

    if size.users > limits.users:
        over("workload.users.profile", "the most closed users (with any traffic spike) are", size.users, limits.users)
    if size.replicas > limits.replicas:
        over("deployments", "the pods at most (the sum of maxReplicas, else replicas) are", size.replicas,
             limits.replicas)
    if engine != "fluid" and size.requests > limits.requests:
        over("workload", "the expected requests (rate × duration) are", size.requests, limits.requests,
             " (--engine fluid runs long horizons as a flow model, docs/fluid.md)")
    if size.duration_s > limits.duration_s:
        problems.append(Problem("duration", f"{size.duration_s / DAY_S:,.1f} days, over the limit of "
                                            f"{limits.duration_s / DAY_S:,.0f} days"))
    if runs > limits.runs:
        over("--replications", "the runs are", runs, limits.runs)
    memory = size.memory_bytes * max(1, parallel)
    if memory > limits.memory_bytes:
        at_once = f" ({parallel} runs at once)" if parallel > 1 else ""
        problems.append(Problem("(memory estimate)", f"the estimated memory{at_once} is {memory / 2**30:,.1f} GiB, "
                                                     f"over the limit of {limits.memory_bytes / 2**30:,.0f} GiB"))
    return problems


def _n(value: float) -> str:
    """A count for a message: 1,200 or 6.1e+10."""
    return f"{value:,.0f}" if value < 1e12 else f"{value:.3g}"
