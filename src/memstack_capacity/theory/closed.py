"""Closed queueing networks: users with think time, as the closed workload drives the pods.

A closed workload (model.md §2) is ``N`` users, each thinking for a mean ``Z``
seconds and then waiting for one request to pass through the service stations.
Two exact references are here (model.md §11):

* :func:`machine_repairman` — one station with ``c`` exponential servers and ``N``
  finite sources (M/M/c//N), solved from its birth–death chain;
* :func:`mva` — exact mean value analysis (Reiser & Lavenberg 1980) for a delay
  station plus any number of queueing stations, single-server (FCFS exponential
  or processor sharing, same means) or ``c``-server (load-dependent MVA).

For one station both give the same throughput and response time, which is how
the tests check the MVA recursion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MVAResult", "MachineRepairmanResult", "machine_repairman", "mva"]


def _check_users(n_users: int) -> None:
    if isinstance(n_users, bool) or int(n_users) != n_users or n_users < 1:
        raise ValueError(f"n_users must be an integer >= 1 (got {n_users!r})")


@dataclass(frozen=True)
class MVAResult:
    """Exact MVA for populations ``n = 0..N`` (index ``n`` of each array).

    Attributes:
        throughput_rps: System throughput ``X(n)``, requests per second.
        response_s: Mean response time ``R(n)`` (all stations, no think time).
        residence_s: Per-station mean residence time ``R_k(N)`` (all visits).
        queue_length: Per-station mean number present at population ``N``.
        utilisation: Per-station utilisation at ``N``: ``X(N)·D_k / c_k``.
    """

    throughput_rps: np.ndarray
    response_s: np.ndarray
    residence_s: np.ndarray
    queue_length: np.ndarray
    utilisation: np.ndarray


def mva(
    n_users: int,
    think_time_s: float,
    demands_s: Sequence[float],
    servers: Sequence[int] | None = None,
) -> MVAResult:
    """Exact mean value analysis of a closed product-form network.

    Single-server stations (FCFS exponential, or processor sharing) use the
    arrival theorem directly, ``R_k(n) = D_k·(1 + Q_k(n-1))``. A station with
    ``c > 1`` servers is load-dependent with rate ``min(j, c)/D_k`` when ``j``
    requests are present; only its marginals ``P_k(j | n)`` for ``j < c`` are
    needed (Menascé, Almeida & Dowdy, *Performance by Design*, ch. 14)::

        R_k(n)   = D_k/c · (1 + Q_k(n-1) + Σ_{j=0..c-2} (c-1-j)·P_k(j | n-1))
        X(n)     = n / (Z + Σ_k R_k(n))
        P_k(j|n) = X(n)·D_k / j · P_k(j-1 | n-1),        1 <= j < c
        P_k(0|n) = P_k(0 | n-1) · X(n) / X_{-k}(n)

    The textbook ``P_k(0|n) = 1 - Σ_{j>=1} P_k(j|n)`` cancels catastrophically
    near saturation (errors of 1 % at 1000 users, worse beyond); the last line
    (Reiser's form, ``X_{-k}`` being the throughput of the network without
    station ``k``) uses only products and ratios and stays exact to float
    rounding, at the cost of one extra MVA per multi-server station.

    Args:
        n_users: Population ``N``, ``>= 1``.
        think_time_s: Mean think time ``Z`` (the delay station), ``>= 0``.
        demands_s: Service demand ``D_k = V_k·S_k`` of each queueing station.
        servers: Servers ``c_k`` of each station; ``None`` for all single-server.

    Returns:
        Throughput and response time for every population up to ``N``, and the
        per-station measures at ``N``.
    """
    _check_users(n_users)
    if think_time_s < 0 or not math.isfinite(think_time_s):
        raise ValueError(f"think_time_s must be finite and >= 0 (got {think_time_s!r})")
    demand = np.asarray(demands_s, dtype=float)
    if demand.ndim != 1 or demand.size == 0 or np.any(demand < 0):
        raise ValueError(f"demands_s must be a non-empty list of values >= 0 (got {demands_s!r})")
    c = np.ones(demand.size, dtype=int) if servers is None else np.asarray(servers, dtype=int)
    if c.shape != demand.shape or np.any(c < 1):
        raise ValueError(f"servers must give an integer >= 1 per station (got {servers!r})")
    x, r, residence, queue = _mva_core(int(n_users), float(think_time_s), demand, c)
    return MVAResult(
        throughput_rps=x,
        response_s=r,
        residence_s=residence.copy(),
        queue_length=queue,
        utilisation=x[-1] * demand / c,
    )


def _mva_core(
    n_total: int, think: float, demand: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the MVA recursion; return ``X(n)``, ``R(n)`` and residence, queue at ``N``."""
    x = np.zeros(n_total + 1)
    r = np.zeros(n_total + 1)
    queue = np.zeros(demand.size)
    residence = np.zeros(demand.size)
    multi = [k for k in range(demand.size) if c[k] > 1]
    # P_k(j | n) for j < c_k of each multi-server station (the rest is implied),
    # and the throughput of the network without station k, for the stable P_k(0 | n).
    low = {k: np.eye(1, int(c[k]))[0] for k in multi}
    without = {k: _throughput_without(n_total, think, demand, c, k) for k in multi}
    for n in range(1, n_total + 1):
        residence = demand * (1.0 + queue)
        for k, p_low in low.items():
            idle = float(np.arange(c[k] - 1, 0, -1) @ p_low[:-1])
            residence[k] = demand[k] / c[k] * (1.0 + queue[k] + idle)
        r[n] = residence.sum()
        x[n] = n / (think + r[n])
        queue = x[n] * residence
        for k, p_low in low.items():
            nxt = np.empty_like(p_low)
            nxt[1:] = x[n] * demand[k] / np.arange(1, c[k]) * p_low[:-1]
            nxt[0] = p_low[0] * x[n] / without[k][n]
            low[k] = nxt
    return x, r, residence, queue


def _throughput_without(
    n_total: int, think: float, demand: np.ndarray, c: np.ndarray, k: int
) -> np.ndarray:
    """Throughput ``X_{-k}(n)`` of the network with station ``k`` removed."""
    keep = np.arange(demand.size) != k
    if keep.any():
        return _mva_core(n_total, think, demand[keep], c[keep])[0]
    n = np.arange(n_total + 1, dtype=float)
    if think > 0:
        return n / think
    return np.full(n_total + 1, np.inf)  # all users sit at station k: P_k(0 | n>=1) = 0


@dataclass(frozen=True)
class MachineRepairmanResult:
    """Stationary measures of the finite-source M/M/c//N queue.

    Attributes:
        probabilities: ``P(n at the station)`` for ``n = 0..N``.
        throughput_rps: ``X = Σ min(n, c)·μ·P(n)``.
        mean_at_station: ``L = Σ n·P(n)``.
        response_s: ``R = L / X`` (Little's law); equals ``N/X - Z``.
        mean_thinking: ``N - L`` (equals ``X·Z``).
    """

    probabilities: np.ndarray
    throughput_rps: float
    mean_at_station: float
    response_s: float
    mean_thinking: float


def machine_repairman(
    n_users: int, think_time_s: float, service_time_s: float, servers: int = 1
) -> MachineRepairmanResult:
    """Solve the machine-repairman model (finite-source M/M/c//N) exactly.

    ``N`` users think for exponential times of mean ``Z``, then queue FIFO for
    one of ``c`` servers with exponential service of mean ``S``. With ``n`` users
    at the station the chain moves up at rate ``(N - n)/Z`` and down at rate
    ``min(n, c)/S`` (Kleinrock Vol. 1 §3.8; Gross & Harris §2.7). The
    stationary law is insensitive to the think-time distribution.

    Args:
        n_users: Population ``N``.
        think_time_s: Mean think time ``Z``, ``> 0``.
        service_time_s: Mean service time ``S``, ``> 0``.
        servers: Number of servers ``c``.

    Returns:
        The stationary distribution and its measures.
    """
    _check_users(n_users)
    for name, value in (("think_time_s", think_time_s), ("service_time_s", service_time_s)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive finite number (got {value!r})")
    if isinstance(servers, bool) or int(servers) != servers or servers < 1:
        raise ValueError(f"servers must be an integer >= 1 (got {servers!r})")
    n = np.arange(1, int(n_users) + 1)
    up = (n_users - (n - 1)) / think_time_s
    down = np.minimum(n, servers) / service_time_s
    log_p = np.concatenate(([0.0], np.cumsum(np.log(up / down))))
    prob = np.exp(log_p - log_p.max())
    prob /= prob.sum()
    states = np.arange(int(n_users) + 1)
    throughput = float(np.minimum(states, servers) @ prob) / service_time_s
    at_station = float(states @ prob)
    return MachineRepairmanResult(
        probabilities=prob,
        throughput_rps=throughput,
        mean_at_station=at_station,
        response_s=at_station / throughput,
        mean_thinking=n_users - at_station,
    )
