"""The engine against queueing theory (model.md §11).

Each check runs independent replications (different seeds) and compares the mean
across them with a closed form. The tolerance is four standard errors of that mean
(a false alarm about once in 16 000 runs for a normal estimate), and each test also
asserts the standard error itself is small, so a check cannot pass by being noisy.
Requests arriving in the first minute are cut as warm-up.
"""

from __future__ import annotations

import numpy as np
import pytest

from memstack_capacity.theory import queueing as theory
from memstack_capacity.theory.closed import machine_repairman
from tests import factory
from tests.factory import closed_scenario, mean_and_se, measured, pod_scenario

SEEDS = range(1, 6)


ENGINE = "auto"


@pytest.fixture(autouse=True, params=["des", "auto", "fast"])
def engine(request, monkeypatch):
    """Every check runs three times: on the general discrete-event engine, with the default
    dispatch (the exact per-pod kernel wherever the scenario is eligible), and on the compiled
    data plane."""
    monkeypatch.setattr(f"{__name__}.ENGINE", request.param)
    return request.param


def run_seeds(data: dict, seeds) -> list:
    """The scenario once per seed on this run's engine."""
    return factory.run_seeds(data, seeds, ENGINE)


def _check(values, expected, max_rel_se=0.03):
    mean, se = mean_and_se(values)
    assert se < max_rel_se * expected, f"too noisy to judge: se {se:.3g} vs {expected:.3g}"
    assert abs(mean - expected) < 4 * se + 1e-12, f"mean {mean:.6g} vs theory {expected:.6g} (se {se:.3g})"
    return (mean - expected) / expected


def test_mm1_mean_response():
    """M/M/1 (Kleinrock Vol. 1 §3.2): W = 1/(μ-λ); one process, concurrency 1."""
    lam, mu = 70.0, 100.0
    results = run_seeds(pod_scenario(lam, 1 / mu), SEEDS)
    values = [measured(r).latency_s.mean() for r in results]
    _check(values, 1.0 / (mu - lam))


def test_mmc_erlang_c():
    """M/M/c (Erlang C, Gross & Harris §2.3): c processes, concurrency 1, c cores."""
    lam, mu, c = 320.0, 100.0, 4
    results = run_seeds(pod_scenario(lam, 1 / mu, processes=c, concurrency=1), SEEDS)
    expected = theory.mmc(lam, mu, c)
    _check([measured(r).latency_s.mean() for r in results], expected.w_s)


def test_limited_processor_sharing_with_backlog():
    """One core shared by up to k=3 requests, a backlog of 5 (birth–death chain, theory.limited_processor_sharing)."""
    lam, mean_s, k, backlog = 95.0, 0.01, 3, 5
    results = run_seeds(pod_scenario(lam, mean_s, concurrency=k, backlog=backlog, cpu_limit=1.0), SEEDS)
    expected = theory.limited_processor_sharing(lam, mean_s, max_in_service=k, max_in_system=k + backlog)
    blocking = [float((measured(r).status == "503").mean()) for r in results]
    _check(blocking, expected.blocking_probability, max_rel_se=0.05)
    ok = [measured(r).query("status == 'ok'").latency_s.mean() for r in results]
    _check(ok, expected.mean_response_s)


def test_closed_users_machine_repairman():
    """N users with exponential think time and one FCFS server: finite-source M/M/1//N (Kleinrock §3.8)."""
    n, z, s = 20, 0.5, 0.02
    results = run_seeds(closed_scenario(n, z, s, duration=900.0), SEEDS)
    exact = machine_repairman(n, z, s, servers=1)
    window = 900.0 - 60.0
    _check([len(measured(r).query("status == 'ok'")) / window for r in results], exact.throughput_rps, max_rel_se=0.01)
    _check([measured(r).latency_s.mean() for r in results], exact.response_s)


def test_random_splitting_across_replicas():
    """Random routing splits a Poisson stream into independent Poisson streams: 3 × M/M/1 at λ/3."""
    lam, mu = 210.0, 100.0
    results = run_seeds(pod_scenario(lam, 1 / mu, replicas=3, load_balancing="random"), SEEDS)
    _check([measured(r).latency_s.mean() for r in results], 1.0 / (mu - lam / 3))
    for r in results:
        shares = np.bincount(measured(r).pod.to_numpy(), minlength=3) / len(measured(r))
        assert np.allclose(shares, 1 / 3, atol=0.01)


def test_round_robin_beats_random_on_the_same_load():
    """Round robin smooths arrivals (Erlang-3 per pod), so its mean response is below random's M/M/1."""
    lam, mu = 210.0, 100.0
    rr = run_seeds(pod_scenario(lam, 1 / mu, replicas=3), SEEDS)
    mean_rr, _ = mean_and_se([measured(r).latency_s.mean() for r in rr])
    assert mean_rr < 0.9 / (mu - lam / 3)


def test_littles_law_on_the_ingress():
    """L = λW: the time-average of requests in flight equals throughput × mean response time."""
    data = pod_scenario(80.0, 0.01, sample_interval=0.25, duration=600.0)
    for result in run_seeds(data, SEEDS):
        series = result.series
        in_flight = series.loc[series.index > 60.0, "ingress/in_flight"].mean()
        frame = measured(result)
        little = len(frame) / (600.0 - 60.0) * frame.latency_s.mean()
        # Sampling every 0.25 s gives ~2 000 samples with correlation time ~0.05 s: error well under 10 %.
        assert in_flight == pytest.approx(little, rel=0.1)


def test_open_arrivals_follow_a_piecewise_linear_rate():
    """Non-homogeneous Poisson: the count in [0, T] is Poisson with mean ∫rate (0→200 rps over 300 s)."""
    data = pod_scenario(1.0, 0.001, processes=4, duration=300.0, warmup=0.0)
    data["workload"]["arrivals"]["profile"] = [{"at": 0, "rps": 0}, {"at": 300, "rps": 200}]
    counts = [r.record.arrived for r in run_seeds(data, SEEDS)]
    expected = 0.5 * 200 * 300
    for count in counts:
        assert abs(count - expected) < 4 * np.sqrt(expected)
    early = [int((r.requests.t_arrival_s < 150).sum()) for r in run_seeds(data, [1])]
    assert abs(early[0] - expected / 4) < 4 * np.sqrt(expected / 4)
