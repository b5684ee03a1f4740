"""Closed-form queueing and caching results the simulator is checked against.

Every function here is pure numpy/python and exact for its model (up to float
rounding), so a test can compare a simulation run with a number that does not
depend on any random stream (model.md §11):

* :func:`erlang_b` — a pool with no waiting room (blocked requests are lost);
* :func:`erlang_c`, :func:`mmc` — ``c`` single-request processes on ``c`` cores;
* :func:`limited_processor_sharing` — a pod whose processes each share one core
  among up to ``k`` requests, under a CPU limit, with a FIFO accept backlog;
* :func:`che_hit_ratio` and :func:`lru_simulate` — Redis ``allkeys-lru`` hit
  ratio under Zipf key popularity (:func:`zipf_popularity`).

Closed networks (users with think time) are in :mod:`memstack_capacity.theory.closed`.
Rates are per second and times in seconds throughout, but any consistent unit works.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LRUSimulation", "LimitedPSResult", "MMcResult", "che_characteristic_time", "che_hit_ratio",
    "erlang_b", "erlang_c", "limited_processor_sharing", "lru_simulate", "mmc", "zipf_popularity",
]  # fmt: skip


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number (got {value!r})")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of an M/G/c/c loss system (Erlang B).

    Uses the recursion ``B(0) = 1``, ``B(n) = a·B(n-1) / (n + a·B(n-1))``, which
    never forms ``a**c`` or ``c!`` and so stays accurate for thousands of servers.
    Erlang B is insensitive to the holding-time distribution beyond its mean.

    Args:
        servers: Number of servers ``c`` (e.g. connections in a pool), ``>= 1``.
        offered_load: Offered traffic ``a = λ/μ`` in Erlangs, ``>= 0``.

    Returns:
        The probability that an arriving request finds all ``c`` servers busy.
    """
    _check_count("servers", servers)
    if offered_load < 0 or not math.isfinite(offered_load):
        raise ValueError(f"offered_load must be finite and >= 0 (got {offered_load!r})")
    b = 1.0
    for n in range(1, int(servers) + 1):
        b = offered_load * b / (n + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability of waiting in an M/M/c queue (Erlang C).

    Computed from Erlang B as ``C = c·B / (c - a·(1 - B))``, which inherits the
    recursion's stability.

    Args:
        servers: Number of servers ``c``, ``>= 1``.
        offered_load: Offered traffic ``a = λ/μ`` in Erlangs, ``>= 0``.

    Returns:
        The probability that an arrival has to queue; ``1.0`` when ``a >= c``
        (the queue is unstable and eventually everybody waits).
    """
    b = erlang_b(servers, offered_load)
    if offered_load >= servers:
        return 1.0
    return servers * b / (servers - offered_load * (1.0 - b))


@dataclass(frozen=True)
class MMcResult:
    """Stationary measures of an M/M/c queue (FIFO, infinite waiting room).

    Attributes:
        arrival_rate: ``λ``, arrivals per second.
        service_rate: ``μ``, completions per second of one busy server.
        servers: ``c``, the number of servers.
        utilisation: ``ρ = λ / (c·μ)``, the fraction of time a server is busy.
        p_wait: Erlang C, the probability an arrival waits.
        wq_s: Mean wait in queue ``Wq = C / (c·μ - λ)``.
        w_s: Mean response time ``W = Wq + 1/μ``.
        lq: Mean queue length ``Lq = λ·Wq``.
        l: Mean number in system ``L = λ·W``.
    """

    arrival_rate: float
    service_rate: float
    servers: int
    utilisation: float
    p_wait: float
    wq_s: float
    w_s: float
    lq: float
    l: float  # noqa: E741 - the textbook symbol for mean number in system

    def wait_tail(self, t_s: float | np.ndarray) -> float | np.ndarray:
        """Return ``P(Wq > t_s) = C·exp(-(c·μ - λ)·t_s)`` for times ``t_s >= 0`` (FIFO)."""
        decay = self.servers * self.service_rate - self.arrival_rate
        return self.p_wait * np.exp(-decay * np.asarray(t_s, dtype=float))


def mmc(arrival_rate: float, service_rate: float, servers: int = 1) -> MMcResult:
    """Solve the M/M/c queue (Kleinrock Vol. 1 §3.5; Gross & Harris §2.3).

    Args:
        arrival_rate: Poisson arrival rate ``λ`` per second.
        service_rate: Exponential service rate ``μ`` per second of one server.
        servers: Number of servers ``c``.

    Returns:
        The stationary measures (see :class:`MMcResult`).

    Raises:
        ValueError: If a rate is not positive or the queue is unstable (``λ >= c·μ``).
    """
    _check_positive("arrival_rate", arrival_rate)
    _check_positive("service_rate", service_rate)
    _check_count("servers", servers)
    load = arrival_rate / service_rate
    if load >= servers:
        raise ValueError(f"unstable M/M/c: arrival_rate/service_rate = {load!r} >= servers = {servers!r}")
    c_wait = erlang_c(servers, load)
    wq = c_wait / (servers * service_rate - arrival_rate)
    w = wq + 1.0 / service_rate
    return MMcResult(arrival_rate, service_rate, int(servers), load / servers, c_wait,
                     wq, w, arrival_rate * wq, arrival_rate * w)  # fmt: skip


@dataclass(frozen=True)
class LimitedPSResult:
    """Stationary measures of the pod birth–death chain of :func:`limited_processor_sharing`.

    Attributes:
        probabilities: ``P(n requests in the pod)`` for ``n = 0, 1, …``; for an
            unbounded pod the tail beyond ``k·p`` is cut where its mass is below 1e-15.
        mean_in_system: ``L = Σ n·P(n)`` (in service plus backlog).
        mean_in_service: Mean number admitted to a process, ``Σ min(n, k·p)·P(n)``.
        mean_backlog: Mean number waiting in the accept backlog.
        throughput_rps: Accepted arrivals per second, ``λ·(1 - blocking)``.
        blocking_probability: ``P(N_max)`` when the pod holds at most ``N_max``
            requests (an arrival then gets a 503, PASTA), else ``0``.
        mean_response_s: ``L / throughput`` (Little's law), accepted requests only.
        mean_backlog_wait_s: ``mean_backlog / throughput`` (Little's law).
        cpu_utilisation: Mean cores in use divided by ``min(processes, servers)``.
    """

    probabilities: np.ndarray
    mean_in_system: float
    mean_in_service: float
    mean_backlog: float
    throughput_rps: float
    blocking_probability: float
    mean_response_s: float
    mean_backlog_wait_s: float
    cpu_utilisation: float


def _pod_service_rates(n: np.ndarray, processes: int, servers: float, mu: float) -> np.ndarray:
    # Least-loaded dispatch puts a request on an idle process first, so min(n, p)
    # processes are busy; each uses at most one core (the GIL) and the CFS quota
    # caps their sum at `servers` cores, slowing all of them in proportion.
    busy = np.minimum(n, processes)
    return np.minimum(busy, servers) * mu


def limited_processor_sharing(
    arrival_rate: float,
    mean_service: float,
    max_in_service: int,
    max_in_system: int | None = None,
    servers: float = 1.0,
    processes: int = 1,
) -> LimitedPSResult:
    """Solve a pod of processor-sharing processes as a birth–death chain in ``n``.

    The pod (model.md §3) has ``p = processes`` processes. Each admits at most
    ``k = max_in_service`` requests, which share that process's single core by
    processor sharing; further requests wait FIFO in the pod's accept backlog.
    The processes together are held to ``L = servers`` cores (the CPU limit).
    A request needs an exponential amount of CPU with mean ``mean_service``
    core-seconds. With ``n`` requests in the pod and dispatch to the least-loaded
    process, ``min(n, p)`` processes are busy, so the total service rate is::

        r(n) = min(min(n, p), L) · μ,     μ = 1 / mean_service,

    and the chain has birth rate ``λ`` (for ``n < N_max``) and death rate ``r(n)``.
    Exponential demand makes the total completion rate all that matters, so the
    stationary law is ``P(n) ∝ Π_{i<=n} λ / r(i)``.

    Notable limits:

    * ``p = 1``: ``r(n) = min(1, L)·μ`` for all ``n >= 1`` — a limited PS server
      on one core has the **same number-in-system distribution as M/M/1**
      (M/M/1/N with a finite backlog), whatever ``k >= 1``; ``k`` only decides how
      many of those requests are in service rather than in the backlog.
    * ``k = 1`` and ``L >= p``: M/M/c with ``c = p`` (M/M/c/N if finite).

    Exactness: the chain is exact when ``p = 1`` or ``k = 1``. With ``p > 1`` and
    ``k > 1`` a process can drain while another still holds several requests
    (requests never migrate), so fewer than ``min(n, p)`` processes may be busy;
    the chain then assumes perfect balance and gives a lower bound on ``n``.

    Args:
        arrival_rate: Poisson arrival rate ``λ`` per second.
        mean_service: Mean CPU demand of a request, core-seconds.
        max_in_service: Concurrency ``k`` of one process, ``>= 1``.
        max_in_system: Most requests the pod holds, ``k·p`` in service plus the
            backlog size; arrivals beyond it are refused. ``None`` for no bound.
        servers: CPU limit ``L`` in cores (may be fractional, e.g. 0.5).
        processes: Number of processes ``p``.

    Returns:
        The stationary distribution and its measures, see :class:`LimitedPSResult`.

    Raises:
        ValueError: If an argument is out of range, or the pod is unstable.
    """
    _check_positive("arrival_rate", arrival_rate)
    _check_positive("mean_service", mean_service)
    _check_positive("servers", servers)
    _check_count("max_in_service", max_in_service)
    _check_count("processes", processes)
    mu = 1.0 / mean_service
    peak = min(processes, servers) * mu
    if max_in_system is None:
        rho = arrival_rate / peak
        if rho >= 1.0:
            msg = f"unstable pod: arrival_rate = {arrival_rate!r} >= min(processes, servers)/mean_service"
            raise ValueError(f"{msg} = {peak!r} with no bound on the backlog")
        # Beyond n = p the chain is geometric (ratio rho); cut where the tail mass beyond
        # the last in-service state is < 1e-15, so the backlog measures are exact too.
        tail = math.ceil(math.log(1e-15 * (1.0 - rho)) / math.log(rho)) if rho > 0 else 1
        n_max = max(processes, max_in_service * processes) + max(tail, 1)
    else:
        _check_count("max_in_system", max_in_system)
        n_max = int(max_in_system)
    n = np.arange(n_max + 1)
    rates = _pod_service_rates(n[1:], processes, servers, mu)
    log_p = np.concatenate(([0.0], np.cumsum(np.log(arrival_rate / rates))))
    prob = np.exp(log_p - log_p.max())  # log space: λ^n / Π r(i) overflows for large n
    prob /= prob.sum()
    in_service = np.minimum(n, max_in_service * processes)
    blocking = float(prob[-1]) if max_in_system is not None else 0.0
    throughput, mean_n = arrival_rate * (1.0 - blocking), float(n @ prob)
    backlog, cores = float((n - in_service) @ prob), float(np.concatenate(([0.0], rates / mu)) @ prob)
    return LimitedPSResult(prob, mean_n, float(in_service @ prob), backlog, throughput, blocking,
                           mean_n / throughput, backlog / throughput,
                           cores / min(processes, servers))  # fmt: skip


def zipf_popularity(n_keys: int, alpha: float) -> np.ndarray:
    """Return Zipf request probabilities ``p_i ∝ i**-alpha`` for ranks ``i = 1..n_keys``.

    Args:
        n_keys: Number of distinct keys, ``>= 1``.
        alpha: Zipf exponent, ``>= 0`` (0 is uniform; web caches see about 0.6–1).

    Returns:
        Probabilities summing to one, most popular first.
    """
    _check_count("n_keys", n_keys)
    if alpha < 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite and >= 0 (got {alpha!r})")
    weights = np.arange(1, int(n_keys) + 1, dtype=float) ** -float(alpha)
    return weights / weights.sum()


def _normalised(popularities: np.ndarray | list[float]) -> np.ndarray:
    p = np.asarray(popularities, dtype=float)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.all(np.isfinite(p)) or p.sum() <= 0:
        raise ValueError("popularities must be a non-empty 1-D array of finite values >= 0 with a positive sum")
    return p / p.sum()


def che_characteristic_time(popularities: np.ndarray | list[float], cache_size: float) -> float:
    """Solve Che's equation ``Σ_i (1 - exp(-p_i·T)) = C`` for the characteristic time ``T``.

    ``T`` is in requests (popularities are per-request probabilities). The left
    side grows strictly from 0 to the number of keys with positive popularity, so
    bisection on a bracket found by doubling converges unconditionally.

    Args:
        popularities: Request probability (or any positive weight) of each key.
        cache_size: Cache capacity ``C`` in keys; ``0 < C < number of keys``.

    Returns:
        ``T_C``; ``inf`` when the cache holds every requested key.
    """
    p = _normalised(popularities)
    p = p[p > 0]
    if cache_size <= 0:
        raise ValueError(f"cache_size must be > 0 (got {cache_size!r})")
    if cache_size >= p.size:
        return math.inf

    def occupancy(t: float) -> float:
        return float(np.sum(-np.expm1(-p * t)))
    lo, hi = 0.0, cache_size / p.max()
    while occupancy(hi) < cache_size:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if occupancy(mid) < cache_size else (lo, mid)
    return 0.5 * (lo + hi)


def che_hit_ratio(popularities: np.ndarray | list[float], cache_size: float) -> float:
    """LRU hit ratio by Che's approximation: ``Σ_i p_i·(1 - exp(-p_i·T_C))``.

    Under the independent reference model a key stays cached for the time ``T_C``
    after its last request, so it hits if requested again within ``T_C``. The
    approximation is accurate for Zipf popularity well beyond a few hundred keys
    (Che, Tung & Wang 2002; Fricker, Robert & Roberts 2012).

    Args:
        popularities: Request probability (or positive weight) of each key.
        cache_size: Cache capacity in keys.

    Returns:
        The long-run fraction of requests that hit (``1.0`` if every key fits).
    """
    p = _normalised(popularities)
    t_c = che_characteristic_time(p, cache_size)
    return 1.0 if math.isinf(t_c) else float(p @ -np.expm1(-p * t_c))


@dataclass(frozen=True)
class LRUSimulation:
    """Outcome of :func:`lru_simulate`.

    Attributes:
        hit_ratio: Hits divided by measured requests.
        std_error: Standard error of ``hit_ratio`` by batch means (20 batches),
            which accounts for the correlation between successive requests.
        n_requests: Requests measured (after the warm-up).
    """

    hit_ratio: float
    std_error: float
    n_requests: int


def lru_simulate(
    popularities: np.ndarray | list[float],
    cache_size: int,
    n_requests: int,
    rng: np.random.Generator,
    warmup_requests: int = 0,
) -> LRUSimulation:
    """Simulate an LRU cache under independent requests drawn from ``popularities``.

    The cache is first filled with the ``cache_size`` most popular keys (most
    popular as most recent), close to its steady state, then ``warmup_requests``
    unmeasured requests are served before ``n_requests`` measured ones.

    Args:
        popularities: Request probability (or positive weight) of each key.
        cache_size: Capacity in keys, ``>= 1``.
        n_requests: Number of measured requests, ``>= 20``.
        rng: The random generator to draw keys from.
        warmup_requests: Unmeasured requests served first.

    Returns:
        The measured hit ratio and its batch-means standard error.
    """
    p = _normalised(popularities)
    _check_count("cache_size", cache_size)
    if n_requests < 20 or warmup_requests < 0:
        raise ValueError(f"need n_requests >= 20 and warmup_requests >= 0 (got {n_requests!r}, {warmup_requests!r})")
    order = np.argsort(-p, kind="stable")[: int(cache_size)]
    cache: OrderedDict[int, None] = OrderedDict((int(k), None) for k in order[::-1])
    keys = rng.choice(p.size, size=int(warmup_requests + n_requests), p=p).tolist()
    hits = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key in cache:
            cache.move_to_end(key)
            hits[i] = True
        else:
            cache[key] = None
            if len(cache) > cache_size:
                cache.popitem(last=False)
    measured = hits[warmup_requests:]
    batches = measured[: len(measured) // 20 * 20].reshape(20, -1).mean(axis=1)
    return LRUSimulation(float(measured.mean()), float(batches.std(ddof=1) / math.sqrt(20)), int(n_requests))
