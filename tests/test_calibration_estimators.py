"""The estimators on synthetic data whose answer is known.

References: the utilisation law U = Σ X_c D_c (Denning & Buzen 1978) fitted by NNLS, as the
utilisation-regression approaches in Spinner et al. 2015; the interactive response time law
N = X (R + Z); Little's law for the memory held in flight. Noise-free data must give the
exact answer (a closed form); noisy data an interval that covers the truth about as often as it
says (95 %): over 200 seeds the count of covering intervals is Binomial(200, 0.95) (sd 3.1),
and a pairs-percentile bootstrap with 60 windows under-covers slightly, so 0.89–0.99 is asked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memstack_capacity.calibration import demand, estimates
from memstack_capacity.calibration.measurements import SERIES, Windows
from memstack_capacity.scenario.load import load_scenario

from pathlib import Path

SCENARIO = Path(__file__).parent / "data" / "calibration" / "scenario.yaml"
TRUE_D = np.array([0.005, 0.012])


def _synthetic(seed: int, n: int = 60, noise: float = 0.02, ratio: float | None = None):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(20, 100, n)
    x2 = x1 * ratio if ratio is not None else rng.uniform(5, 40, n)
    x = np.column_stack([x1, x2])
    return x, x @ TRUE_D + rng.normal(0, noise, n)


def test_noise_free_data_give_the_demands_exactly():
    x, _ = _synthetic(1)
    fit = demand.estimate_demands(x, x @ TRUE_D, ["a", "b"], seed=1, b=200)
    assert [fit.demands[c].estimate for c in "ab"] == pytest.approx(TRUE_D, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0) and fit.residual_sd == pytest.approx(0.0, abs=1e-12)
    # The mix's demand law: ΣU/ΣX.
    assert fit.mix.estimate == pytest.approx((x @ TRUE_D).sum() / x.sum(), rel=1e-12)


def test_noisy_demands_are_recovered_within_their_interval_and_the_same_seed_gives_the_same_interval():
    x, u = _synthetic(7)
    fit = demand.estimate_demands(x, u, ["a", "b"], seed=3)
    again = demand.estimate_demands(x, u, ["a", "b"], seed=3)
    for i, c in enumerate("ab"):
        coef = fit.demands[c]
        assert coef.identifiable and coef.low <= TRUE_D[i] <= coef.high, coef
        assert (coef.low, coef.high) == (again.demands[c].low, again.demands[c].high)
    assert 0.95 < fit.r2 <= 1.0
    # The residual sd estimates the noise's sd (0.02 cores) within sampling error (58 degrees of freedom).
    assert fit.residual_sd == pytest.approx(0.02, rel=0.25)


def test_interval_coverage_is_near_nominal():
    covered = np.zeros(2)
    seeds = 200
    for seed in range(seeds):
        x, u = _synthetic(1000 + seed)
        fit = demand.estimate_demands(x, u, ["a", "b"], seed=seed, b=300)
        covered += [fit.demands[c].low <= TRUE_D[i] <= fit.demands[c].high for i, c in enumerate("ab")]
    coverage = covered / seeds
    assert np.all((0.89 <= coverage) & (coverage <= 0.99)), coverage


def test_classes_in_a_fixed_ratio_are_not_identified_but_the_mix_is():
    x, u = _synthetic(2, ratio=0.25)
    fit = demand.estimate_demands(x, u, ["a", "b"], seed=1)
    assert not fit.demands["a"].identifiable and not fit.demands["b"].identifiable
    assert "collinear" in fit.demands["a"].why
    mix = (TRUE_D[0] + 0.25 * TRUE_D[1]) / 1.25
    assert fit.mix.identifiable and fit.mix.low <= mix <= fit.mix.high


def test_too_few_windows_are_said_not_identified():
    x, u = _synthetic(3, n=4)
    fit = demand.estimate_demands(x, u, ["a", "b"], seed=1)
    assert not fit.demands["a"].identifiable and "4 windows for 2 coefficients" in fit.demands["a"].why


def _windows(x, r, users=None, cpu=None, memory=None, replicas=None, window_s=10.0) -> Windows:
    n = len(x)
    series = pd.DataFrame(index=range(n), columns=list(SERIES), dtype=float)
    for name, values in (("users", users), ("cpu_cores", cpu), ("memory_bytes", memory), ("replicas", replicas)):
        if values is not None:
            series[name] = values
    if users is not None:
        series["users_steady"] = 1.0  # each window's count held still within it (as Locust's rows say)
    return Windows(sources=("synthetic",), window_s=window_s, t=np.arange(n) * window_s,
                   throughput=pd.DataFrame(x, columns=["search", "items"]),
                   response_s=pd.DataFrame(r, columns=["search", "items"]), series=series, totals=None,
                   one_window=False, notes=(), ignored=())


def test_calibrate_closed_forms_think_time_memory_and_the_overlay_keys():
    scenario = load_scenario(SCENARIO)
    rng = np.random.default_rng(5)
    n = 80
    x = np.column_stack([rng.uniform(10, 60, n), rng.uniform(2, 20, n)])
    r = np.column_stack([rng.uniform(0.02, 0.05, n), rng.uniform(0.03, 0.08, n)])
    z = 1.5
    users = (x.sum(axis=1) * z + (x * r).sum(axis=1))  # N = X (R + Z), exactly
    replicas = rng.integers(2, 5, n).astype(float)
    base, per = 300 * 2**20, 2 * 2**20
    memory = base * replicas + per * (x * r).sum(axis=1)  # Little: in flight = Σ X·R
    cpu = x @ TRUE_D
    cal = estimates.calibrate(_windows(x, r, users=users, cpu=cpu, memory=memory, replicas=replicas), scenario, seed=1,
                              b=200)
    got = {e.figure: e for e in cal.estimates}
    assert got["think time (closed users)"].estimate == pytest.approx(z, rel=1e-9)
    assert got["base memory per pod"].estimate == pytest.approx(base, rel=1e-6)
    assert got["memory per request in flight"].estimate == pytest.approx(per, rel=1e-6)
    assert got["CPU per request: search"].estimate == pytest.approx(0.005, rel=1e-6)
    settings = cal.settings()
    # search's CPU steps (4 ms lognormal + 1 ms constant = 5 ms stated) keep their ratio: ×1.
    assert settings["workload.requests[search].steps[1].cpu.mean"] == pytest.approx(0.004)
    assert settings["workload.requests[search].steps[2].cpu.mean"] == pytest.approx(0.001)
    # items: 12 ms measured against 8 ms stated.
    assert settings["workload.requests[items].steps[1].cpu.mean"] == pytest.approx(0.012)
    assert settings["workload.users.think_time.mean"] == pytest.approx(1.5)
    assert settings["deployments.api.memory_base"] == base
    assert settings["workload.requests[search].memory"] == per
    # The overlay applies to the scenario as --set does.
    calibrated = scenario.with_overrides(settings)
    assert calibrated.workload.requests[1].steps[1].cpu.mean == pytest.approx(0.012)


def test_a_fixed_mix_scales_every_class_by_the_mix_demand_level_only():
    scenario = load_scenario(SCENARIO)
    x, u = _synthetic(4, ratio=1 / 3, noise=0.005)
    r = np.full_like(x, 0.05)
    cal = estimates.calibrate(_windows(x, r, cpu=u), scenario, seed=1, b=200)
    got = {e.figure: e for e in cal.estimates}
    search, items = got["CPU per request: search"], got["CPU per request: items"]
    assert search.identifiable == "level only" and items.identifiable == "level only"
    # The scenario states 5 ms and 8 ms; the measured mix (3:1) costs (3·5 + 12)/4 = 6.75 ms, so
    # both scale by 6.75 / ((3·5 + 8)/4) = 6.75 / 5.75.
    k = ((3 * 0.005 + 0.012) / 4) / ((3 * 0.005 + 0.008) / 4)
    assert search.estimate == pytest.approx(0.005 * k, rel=0.02)
    assert items.estimate == pytest.approx(0.008 * k, rel=0.02)


def test_the_replay_profile_puts_each_window_where_it_was_measured():
    """Load tests stamp a window with its start: its load is replayed from there, and the replay
    lasts to the last window's end. Prometheus stamps a rate over (t − w, t] with t, and backtest
    compares the run on (t − w, t] with the windows' time 0 as the run's: the first window lies
    before the start, each later window's rate is offered from t − w, and the replay ends at the
    last window's end, t; a user count (a gauge) holds from its own instant. (The profile keeps
    the points where the load changes and the one before each change.)"""
    import dataclasses

    closed = load_scenario(SCENARIO)
    open_ = closed.with_overrides({"workload.users": None,
                                   "workload.arrivals": {"profile": [{"at": 0, "rps": 1}]}})
    x = np.array([[10.0, 0.0], [10.0, 0.0], [20.0, 0.0], [20.0, 0.0]])
    r = np.full_like(x, 0.01)
    users = np.array([5.0, 5.0, 9.0, 9.0])
    start = _windows(x, r, users=users, window_s=5.0)
    end = dataclasses.replace(start, stamped_at_end=True)

    def profile(w, scenario):
        [e] = estimates.profile_estimates(w, scenario)
        key = "workload.users.profile" if scenario.workload.users is not None else "workload.arrivals.profile"
        return [tuple(p.values()) for p in e.settings[key]], e.settings["duration"]

    assert profile(start, open_) == ([(0.0, 10.0), (5.0, 10.0), (10.0, 20.0)], 20.0)
    assert profile(end, open_) == ([(0.0, 10.0), (5.0, 20.0)], 15.0)
    assert profile(start, closed) == ([(0.0, 5), (5.0, 5), (10.0, 9)], 20.0)
    assert profile(end, closed) == ([(0.0, 5), (5.0, 5), (10.0, 9)], 15.0)
