"""Closed forms checked against published numbers, textbook identities and brute force.

References: Erlang B traffic tables (any teletraffic handbook: 10 circuits at 5 E
lose 1.84 %, 5 circuits at 2 E lose 3.67 %); Kleinrock, *Queueing Systems* Vol. 1
§3.2 (M/M/1), §3.5 (M/M/c), §3.6 (M/M/1/K), §3.8 (finite source); Gross & Harris,
*Fundamentals of Queueing Theory* §2.3 (M/M/c: for c = 2, ``C = 2ρ²/(1+ρ)``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from memstack_capacity.theory.queueing import (
    che_characteristic_time,
    che_hit_ratio,
    erlang_b,
    erlang_c,
    limited_processor_sharing,
    lru_simulate,
    mmc,
    zipf_popularity,
)
from memstack_capacity.theory.closed import machine_repairman, mva


def _log_poisson_terms(servers: int, load: float) -> np.ndarray:
    k = np.arange(servers + 1)
    return k * math.log(load) - np.array([math.lgamma(i + 1) for i in k])


def _erlang_b_direct(servers: int, load: float) -> float:
    t = _log_poisson_terms(servers, load)
    return float(np.exp(t[-1] - np.logaddexp.reduce(t)))


def _erlang_c_direct(servers: int, load: float) -> float:
    # Textbook sum: (a^c/c!)·c/(c-a) / (Σ_{k<c} a^k/k! + (a^c/c!)·c/(c-a)).
    t = _log_poisson_terms(servers, load)
    top = t[-1] + math.log(servers / (servers - load))
    return float(np.exp(top - np.logaddexp(np.logaddexp.reduce(t[:-1]), top)))


# --- Erlang B / C ---------------------------------------------------------------


def test_erlang_b_matches_traffic_tables():
    assert erlang_b(10, 5.0) == pytest.approx(0.01838457, abs=1e-8)
    assert erlang_b(5, 2.0) == pytest.approx(0.03669725, abs=1e-8)
    assert erlang_b(1, 0.7) == pytest.approx(0.7 / 1.7, rel=1e-14)
    assert erlang_b(3, 0.0) == 0.0


@pytest.mark.parametrize(("servers", "load"), [(1, 0.3), (7, 4.2), (100, 95.0), (2000, 1950.0)])
def test_erlang_b_recursion_equals_direct_sum(servers, load):
    assert erlang_b(servers, load) == pytest.approx(_erlang_b_direct(servers, load), rel=1e-10)


def test_erlang_c_textbook_cases():
    assert erlang_c(1, 0.6) == pytest.approx(0.6, rel=1e-14)  # M/M/1: P(wait) = ρ
    rho = 0.5
    assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-14)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 4.0) == 1.0


def test_erlang_c_call_centre_example():
    # The classic worked example: 360 calls per half hour, 4-minute calls, 55 agents
    # -> 48 Erlangs at 87.3 % occupancy; about one caller in four waits.
    load = 360 * 4 / 30
    assert load == 48.0
    c = erlang_c(55, load)
    assert c == pytest.approx(_erlang_c_direct(55, load), rel=1e-12)
    assert round(c, 2) == 0.24
    asa_s = c * 240 / (55 - load)  # mean wait, Wq = C / (cμ - λ)
    assert asa_s == pytest.approx(mmc(360 / 1800, 1 / 240, 55).wq_s, rel=1e-12)


@pytest.mark.parametrize(("servers", "load"), [(2, 1.5), (10, 8.0), (250, 240.0)])
def test_erlang_c_equals_direct_sum(servers, load):
    assert erlang_c(servers, load) == pytest.approx(_erlang_c_direct(servers, load), rel=1e-10)


# --- M/M/c ----------------------------------------------------------------------


def test_mm1_closed_forms():
    lam, mu = 3.0, 4.0
    r = mmc(lam, mu, 1)
    rho = lam / mu
    assert r.utilisation == pytest.approx(rho)
    assert r.l == pytest.approx(rho / (1 - rho))
    assert r.w_s == pytest.approx(1 / (mu - lam))
    assert r.wq_s == pytest.approx(rho / (mu - lam))
    assert r.lq == pytest.approx(rho**2 / (1 - rho))
    t = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(r.wait_tail(t), rho * np.exp(-(mu - lam) * t), rtol=1e-14)


def test_mmc_little_and_tail_integrate_to_mean():
    r = mmc(7.0, 1.0, 9)
    assert r.l == pytest.approx(r.lq + 7.0)  # L = Lq + a
    assert r.w_s == pytest.approx(r.wq_s + 1.0)
    # E[Wq] = ∫ P(Wq > t) dt.
    t = np.linspace(0, 60, 600_001)
    tail = r.wait_tail(t)
    assert float(np.sum((tail[1:] + tail[:-1]) / 2 * np.diff(t))) == pytest.approx(r.wq_s, rel=1e-6)


def test_mmc_rejects_unstable_and_bad_input():
    with pytest.raises(ValueError, match="unstable"):
        mmc(4.0, 1.0, 4)
    with pytest.raises(ValueError, match="servers"):
        mmc(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="arrival_rate"):
        mmc(-1.0, 1.0, 1)


# --- limited processor sharing ----------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 100])
def test_limited_ps_on_one_core_is_mm1(k):
    lam, mean_s = 0.8, 1.0
    r = limited_processor_sharing(lam, mean_s, max_in_service=k)
    rho = lam * mean_s
    n = np.arange(r.probabilities.size)
    np.testing.assert_allclose(r.probabilities[:50], (1 - rho) * rho ** n[:50], rtol=1e-9)
    assert r.mean_in_system == pytest.approx(rho / (1 - rho), rel=1e-12)
    assert r.mean_response_s == pytest.approx(mean_s / (1 - rho), rel=1e-12)
    # Only the split between service and backlog depends on k: Σ_{n>k} (n-k)·P(n).
    assert r.mean_backlog == pytest.approx(rho ** (k + 1) / (1 - rho), rel=1e-9, abs=1e-15)
    assert r.cpu_utilisation == pytest.approx(rho, rel=1e-12)
    assert r.blocking_probability == 0.0


def test_limited_ps_finite_backlog_is_mm1n():
    lam, mu, cap = 2.0, 2.5, 6
    r = limited_processor_sharing(lam, 1 / mu, max_in_service=2, max_in_system=cap)
    rho = lam / mu
    assert r.blocking_probability == pytest.approx((1 - rho) * rho**cap / (1 - rho ** (cap + 1)), rel=1e-12)
    assert r.throughput_rps == pytest.approx(lam * (1 - r.blocking_probability))
    assert r.mean_response_s == pytest.approx(r.mean_in_system / r.throughput_rps)


def test_limited_ps_single_request_processes_are_mmc():
    lam, mu, c = 5.0, 1.0, 6
    r = limited_processor_sharing(lam, 1 / mu, max_in_service=1, servers=c, processes=c)
    ref = mmc(lam, mu, c)
    assert r.mean_in_system == pytest.approx(ref.l, rel=1e-12)
    assert r.mean_response_s == pytest.approx(ref.w_s, rel=1e-12)
    assert r.mean_backlog == pytest.approx(ref.lq, rel=1e-12)
    assert r.mean_backlog_wait_s == pytest.approx(ref.wq_s, rel=1e-12)
    assert r.cpu_utilisation == pytest.approx(ref.utilisation, rel=1e-12)


def test_limited_ps_cpu_limit_caps_busy_processes():
    # Four processes under a 2-core limit complete like M/M/2 in number-in-system.
    r = limited_processor_sharing(1.5, 1.0, max_in_service=3, servers=2.0, processes=4)
    assert r.mean_in_system == pytest.approx(mmc(1.5, 1.0, 2).l, rel=1e-12)
    # A fractional limit on one process is an M/M/1 at the throttled rate.
    half = limited_processor_sharing(0.3, 1.0, max_in_service=8, servers=0.5)
    assert half.mean_response_s == pytest.approx(1 / (0.5 - 0.3), rel=1e-12)


def test_limited_ps_rejects_unstable_pod():
    with pytest.raises(ValueError, match="unstable"):
        limited_processor_sharing(2.0, 1.0, max_in_service=8, servers=2.0, processes=1)
    # ...but a bounded pod always has a stationary law.
    r = limited_processor_sharing(2.0, 1.0, max_in_service=8, max_in_system=20)
    assert 0.45 < r.blocking_probability < 0.55


# --- closed networks --------------------------------------------------------------


def test_machine_repairman_single_server_closed_form():
    # Kleinrock §3.8: P0 = [Σ_k N!/(N-k)! (S/Z)^k]^-1.
    n_users, z, s = 8, 4.0, 1.0
    terms = [math.perm(n_users, k) * (s / z) ** k for k in range(n_users + 1)]
    r = machine_repairman(n_users, z, s)
    np.testing.assert_allclose(r.probabilities, np.array(terms) / sum(terms), rtol=1e-12)
    assert r.throughput_rps == pytest.approx((1 - r.probabilities[0]) / s)
    assert r.response_s == pytest.approx(n_users / r.throughput_rps - z, rel=1e-12)


@pytest.mark.parametrize(
    ("n_users", "z", "s", "c"),
    [(10, 5.0, 1.0, 1), (30, 10.0, 1.0, 3), (200, 10.0, 0.2, 4), (1000, 10.0, 0.05, 8), (2000, 1.0, 0.01, 16)],
)
def test_mva_equals_machine_repairman(n_users, z, s, c):
    exact = machine_repairman(n_users, z, s, c)
    res = mva(n_users, z, [s], [c])
    assert res.throughput_rps[-1] == pytest.approx(exact.throughput_rps, rel=1e-10)
    assert res.response_s[-1] == pytest.approx(exact.response_s, rel=1e-10)
    assert res.queue_length[0] == pytest.approx(exact.mean_at_station, rel=1e-10)
    for n in (1, n_users // 2):  # every intermediate population is exact too
        assert res.throughput_rps[n] == pytest.approx(machine_repairman(n, z, s, c).throughput_rps, rel=1e-10)


def _cyclic_network_ctmc(n_users, z, d1, c1, d2, c2):
    """Brute-force CTMC of think -> station 1 -> station 2 -> think; returns X and R."""
    states = [(a, b) for a in range(n_users + 1) for b in range(n_users + 1 - a)]
    index = {s: i for i, s in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    for (a, b), i in index.items():
        moves = [((a + 1, b), (n_users - a - b) / z), ((a - 1, b + 1), min(a, c1) / d1), ((a, b - 1), min(b, c2) / d2)]
        for target, rate in moves:
            if rate > 0:
                q[i, index[target]] += rate
                q[i, i] -= rate
    lhs = np.vstack([q.T, np.ones(len(states))])
    pi = np.linalg.lstsq(lhs, np.concatenate([np.zeros(len(states)), [1.0]]), rcond=None)[0]
    x = sum(pi[i] * min(b, c2) / d2 for (a, b), i in index.items())
    busy = sum(pi[i] * (a + b) for (a, b), i in index.items())
    return x, busy / x


@pytest.mark.parametrize(("c1", "c2"), [(1, 1), (1, 3), (2, 4)])
def test_mva_two_stations_against_brute_force(c1, c2):
    n_users, z, d1, d2 = 12, 3.0, 0.4, 1.5
    x, r = _cyclic_network_ctmc(n_users, z, d1, c1, d2, c2)
    res = mva(n_users, z, [d1, d2], [c1, c2])
    assert res.throughput_rps[-1] == pytest.approx(x, rel=1e-9)
    assert res.response_s[-1] == pytest.approx(r, rel=1e-9)


def test_mva_respects_asymptotic_bounds_and_littles_law():
    d, z = np.array([0.05, 0.02, 0.08]), 2.0
    res = mva(100, z, d)
    n = np.arange(1, 101)
    assert np.all(res.throughput_rps[1:] <= np.minimum(n / (d.sum() + z), 1 / d.max()) * (1 + 1e-12))
    np.testing.assert_allclose(res.throughput_rps[1:] * (z + res.response_s[1:]), n, rtol=1e-12)
    assert res.utilisation.max() == pytest.approx(res.throughput_rps[-1] * d.max())


# --- caching ----------------------------------------------------------------------


def test_zipf_popularity_and_che_edge_cases():
    p = zipf_popularity(4, 1.0)
    np.testing.assert_allclose(p, np.array([1, 1 / 2, 1 / 3, 1 / 4]) / (25 / 12))
    assert che_hit_ratio(p, 4) == 1.0
    t = che_characteristic_time(zipf_popularity(1000, 0.8), 100)
    assert float(np.sum(-np.expm1(-zipf_popularity(1000, 0.8) * t))) == pytest.approx(100, rel=1e-10)
    # Uniform popularity: every key hits with probability C/n exactly in the limit.
    assert che_hit_ratio(np.ones(1000), 250) == pytest.approx(0.25, rel=1e-9)


@pytest.mark.parametrize("cache_size", [100, 1000, 5000])
def test_che_matches_simulated_lru_for_zipf(cache_size):
    # 300 000 measured requests: the binomial standard deviation of the hit ratio is
    # at most 0.5/sqrt(3e5) = 0.0009 and the batch-means estimate (which includes
    # the correlation LRU introduces) is 0.0008-0.0010. Over 20 seeds the mean
    # difference from Che was below 2e-4 at all three sizes (Che's own error is
    # negligible here), so 0.005 is about five standard deviations.
    p = zipf_popularity(10_000, 0.8)
    sim = lru_simulate(p, cache_size, 300_000, np.random.default_rng(20240 + cache_size), warmup_requests=20_000)
    assert sim.std_error < 0.0015
    assert abs(sim.hit_ratio - che_hit_ratio(p, cache_size)) < 0.005
