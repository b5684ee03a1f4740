"""The capacity search's fluid screen: its stand-in, its search logic, and its answer against the DES-only search.

References:

* The stand-in: an exponential response time of mean W has ``P(T > t) = exp(−t/W)``, so its
  q-quantile is ``W·ln(1/(1−q))``: ``W·ln 100`` for p99 (scipy's ``expon.ppf`` agrees).
* The search logic is checked on synthetic loads whose pass/fail thresholds are known
  exactly (a fake executor: the DES passes up to ``d``, the flow model's stand-in up to
  ``f``). Both searches must end with ``lo <= d < hi`` and ``hi / lo <= 1 + rel_tol``.
* The real engines: ``scenarios/small.yaml`` cut to 60 s, the same seeds for both searches.
  Without a screen the search doubles from 60 users until a load fails and then bisects a
  factor-2 bracket to ≤ 1.05, which takes ⌈log2(ln 2 / ln 1.05)⌉ = 4 steps; the answer lies
  between ×4 and ×8 (240 and 480 users), so that search takes 4 + 4 = 8 DES runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_scenarios import scenario
from scipy.stats import expon

from memstack_capacity.api.batch import runner
from memstack_capacity.api.capacity import find_capacity
from memstack_capacity.api.capacity_screen import STAND_INS, judge_flow_summary, unavailable
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 0.5  # the synthetic scenario's p99 target, s
BASE_RPS = 20.0


def test_the_stand_in_is_the_exponential_quantile():
    for stat, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        assert STAND_INS[stat] == pytest.approx(expon.ppf(q), rel=1e-12)
    assert STAND_INS["p99"] == pytest.approx(4.60517, rel=1e-6)


def _fluid_summary(mean, p99=None, throughput=100.0):
    return {"mode": "fluid", "requests": {"throughput_rps": throughput, "error_rate": 0.0,
                                          "latency_s": {"mean": mean, "p50": None, "p95": None, "p99": p99}},
            "jobs": {"latency_s": {"mean": None, "p99": None}}}


def test_a_flow_run_is_judged_on_the_stand_in_and_its_own_figures():
    sc = scenario(targets={"latency_p99": {"max": "500ms"}, "job_latency_p99": {"max": "60s"}})
    # 0.5 / ln 100 = 0.10857 s: a mean just below passes, just above misses.
    below = judge_flow_summary(_fluid_summary(0.108), sc)
    above = judge_flow_summary(_fluid_summary(0.109), sc)
    assert below["met"] and not above["met"]
    p99 = next(v for v in above["targets"] if v["name"] == "latency_p99")
    assert p99["value"] == pytest.approx(0.109 * math.log(100)) and "ln(100)" in p99["stand_in"]
    jobs = next(v for v in above["targets"] if v["name"] == "job_latency_p99")
    assert jobs["met"] and "not judged" in jobs["stand_in"]
    # A p99 the flow model has (one CPU tier) is its own: no stand-in.
    own = judge_flow_summary(_fluid_summary(0.2, p99=0.45), sc)
    assert own["met"] and "stand_in" not in next(v for v in own["targets"] if v["name"] == "latency_p99")
    # Nothing completed: no mean, no stand-in, the target is missed.
    assert not judge_flow_summary(_fluid_summary(None), sc)["met"]


class FakeExecutor:
    """``run_many`` over synthetic loads: the DES meets the target up to ×``d``, the flow model's mean
    latency is ``LIMIT / ln 100`` at ×``f`` (M/M/1-like, ``W ∝ 1 / (c − m)``), so its stand-in passes
    up to ×``f`` exactly."""

    def __init__(self, d: float, f: float):
        self.d, self.f, self.des_runs, self.fluid_runs = d, f, 0, 0

    def multiplier(self, scaled) -> float:
        wl = scaled.workload
        if wl.users is not None:
            return wl.users.profile[0].users / 10.0
        return wl.arrivals.profile[0].rps / BASE_RPS

    def __call__(self, scaled, seeds, engine=None):
        m = self.multiplier(scaled)
        if engine == "fluid":
            self.fluid_runs += len(seeds)
            c = 2 * self.f  # W(f) = LIMIT / ln 100 with W = k / (c − m)
            mean = (LIMIT / math.log(100)) * (c - self.f) / (c - m) if m < c else 1e9
            return [_fluid_summary(mean, throughput=m * BASE_RPS) for _ in seeds]
        self.des_runs += len(seeds)
        met = m <= self.d
        verdict = {"name": "latency_p99", "kind": "max", "limit": LIMIT, "value": 0.1 if met else 1.0, "met": met}
        return [{"met": met, "targets": [verdict]} for _ in seeds]


def synthetic():
    return scenario(**{"workload.arrivals.profile": [{"at": 0, "rps": BASE_RPS}],
                       "targets": {"latency_p99": {"max": f"{LIMIT}s"}}})


def search(d, f, screen, sc=None, **kw):
    fake = FakeExecutor(d, f)
    result = find_capacity(sc or synthetic(), rel_tol=0.05, run_many=fake, screen=screen, progress=False, **kw)
    return result, fake


@pytest.mark.parametrize("ratio", [0.9, 0.95, 1.0, 1.04, 1.1])
def test_a_screen_within_ten_percent_saves_des_runs(ratio):
    f = 3.0
    d = f * ratio
    plain, plain_fake = search(d, f, None)
    screened, fake = search(d, f, "fluid")
    for r in (plain, screened):
        assert r.lo.multiplier <= d < r.hi.multiplier and r.hi.multiplier / r.lo.multiplier <= 1.05 + 1e-12
    assert all(t.engine == "kernel" for t in screened.trials)  # the search's own engine (auto's choice)
    assert all(t.engine == "fluid" for t in screened.screen.trials) and fake.fluid_runs == len(screened.screen.trials)
    assert fake.des_runs == len(screened.trials) < plain_fake.des_runs == len(plain.trials)
    # When d lies in the screen's own bracket the DES runs its two ends and nothing else.
    if screened.screen.lo.multiplier <= d < screened.screen.hi.multiplier:
        assert len(screened.trials) == 2


@pytest.mark.parametrize("d", [0.1, 2.1, 3.9, 20.0])
def test_a_screen_far_off_is_corrected_by_the_des(d):
    """Flow model at ×3, DES at ×0.1, ×2.1 (−30 %), ×3.9 (+30 %) or ×20. The widening steps grow from
    the screen's width (1.05, 1.05², 1.05⁴, …), so after k of them they span 1.05^(2^k − 1), and
    the bisection of the last (1.05^(2^(k−1))) takes k − 1 runs: with the screen's two ends at
    most 2 + k + (k − 1) DES runs, k = ⌈log2(|ln(d/3)| / ln 1.05 + 1)⌉. Beyond about ±20 % that is
    more than doubling from ×1 would take (docs/performance.md)."""
    screened, fake = search(d, 3.0, "fluid")
    assert screened.lo.multiplier <= d < screened.hi.multiplier
    assert screened.hi.multiplier / screened.lo.multiplier <= 1.05 + 1e-12
    k = math.ceil(math.log2(abs(math.log(d / 3.0)) / math.log(1.05) + 1))
    assert fake.des_runs <= 2 + k + (k - 1)


def test_where_the_flow_model_cannot_run_the_search_goes_on_without_the_screen():
    sc = synthetic().with_overrides({"deployments.api.background_cpu": "100m"})
    assert "background_cpu" in unavailable(sc)
    assert "flow model" in unavailable(synthetic(), engine="fluid")
    plain, _ = search(2.5, 3.0, None, sc)
    screened, fake = search(2.5, 3.0, "fluid", sc)
    assert not screened.screen.used and fake.fluid_runs == 0
    assert [t.multiplier for t in screened.trials] == [t.multiplier for t in plain.trials]
    assert "background_cpu" in screened.to_dict()["screen"]["note"] and "screen: none" in screened.describe()


def test_one_user_is_the_floor_of_the_halving():
    """10 users, every load fails: 10, 5, 2 (2.5 rounds to even), 1, then nothing lower to try."""
    sc = scenario(**{"workload.arrivals": None, "workload.users": {
        "profile": [{"at": 0, "users": 10}], "think_time": {"dist": "exponential", "mean": "1s"}},
        "targets": {"latency_p99": {"max": f"{LIMIT}s"}}})
    result, _ = search(0.01, 0.01, None, sc)
    assert not result.found and [t.load for t in result.trials] == [10, 5, 2, 1]


def test_unknown_screen_is_refused():
    with pytest.raises(ValueError, match="screen must be None or one of fluid"):
        find_capacity(synthetic(), screen="magic", run_many=FakeExecutor(1, 1))


# --------------------------------------------------------------------------- the real engines


def small():
    return load_scenario(ROOT / "scenarios" / "small.yaml", {"duration": "60s", "warmup": "10s"})


def test_on_small_the_screened_answer_lies_in_the_des_only_bracket_with_fewer_des_runs():
    sc = small()
    with runner(workers=1) as run_many:
        plain = find_capacity(sc, seed=7, rel_tol=0.05, run_many=run_many, progress=False)
        screened = find_capacity(sc, seed=7, rel_tol=0.05, run_many=run_many, progress=False, screen="fluid")
    assert plain.found and plain.hi is not None and screened.found and screened.hi is not None
    assert plain.lo.load <= screened.lo.load < plain.hi.load
    assert screened.hi.load / screened.lo.load <= 1.05 + 1e-12
    assert 240 < plain.lo.load < 480 and len(plain.trials) == 8  # see the module docstring
    assert len(screened.trials) <= 4 < len(plain.trials)  # the two ends, at most one widening and one bisection
    assert {t.engine for t in screened.trials} == {"fast"} and {t.engine for t in screened.screen.trials} == {"fluid"}
    assert screened.screen.stand_ins == {"latency_p99.max": "mean × ln(100) (exact for an exponential response time)"}
    again = find_capacity(sc, seed=7, rel_tol=0.05, progress=False, screen="fluid")
    assert summary_json(again.to_dict()) == summary_json(screened.to_dict())  # same seed, same bytes


def test_the_command_says_each_trial_and_its_engine_off_a_terminal(tmp_path):
    out = tmp_path / "cap"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("MEMSTACK_PROGRESS", None)
    done = subprocess.run([sys.executable, "-m", "memstack_capacity", "capacity", str(ROOT / "scenarios" / "small.yaml"),
                           "--set", "duration=60s", "--set", "warmup=10s", "--out", str(out), "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("capacity small: ×")]
    doc = json.loads(done.stdout)
    assert len(lines) == len(doc["screen"]["trials"]) + doc["des_trials"]  # one line per trial
    assert sum("on the fluid screen" in ln for ln in lines) == len(doc["screen"]["trials"])
    assert sum("on the compiled data plane" in ln for ln in lines) == doc["des_trials"] == len(doc["trials"])
    assert any("missed: latency_p99 on mean × ln(100)" in ln for ln in lines)
    assert doc["screen"]["used"] and {t["engine"] for t in doc["trials"]} == {"fast"}
    assert "| fluid |" in (out / "capacity.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "memstack_capacity", "capacity", str(ROOT / "scenarios" / "small.yaml"),
                          "--screen", "magic"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--screen" in bad.stderr and "fluid" in bad.stderr


def test_the_runner_takes_an_engine_per_call():
    sc = small()
    with runner(workers=1) as run_many:
        fluid, = run_many(sc, [7], engine="fluid")
        des, = run_many(sc, [7])
    assert fluid.get("mode") == "fluid" and des.get("mode") is None


def test_a_widening_step_lands_on_the_upper_bound_and_stops_there():
    """Every load passes: the widening from the screen's bracket lands on max_multiplier once (here
    within half a user of a whole number of users), then stops with no failing load."""
    sc = scenario(**{"workload.arrivals": None, "workload.users": {
        "profile": [{"at": 0, "users": 10}], "think_time": {"dist": "exponential", "mean": "1s"}},
        "targets": {"latency_p99": {"max": f"{LIMIT}s"}}})
    result, fake = search(100.0, 1.5, "fluid", sc, max_multiplier=4.02)
    assert result.found and result.hi is None and result.lo.load == 40
    assert fake.des_runs == len(result.trials) <= 6
