"""The fluid mode against the discrete-event engine and the closed forms (docs/fluid.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memstack_capacity.api.simulation import simulate
from memstack_capacity.engine.fluid import pods as fluid_pods
from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.load import load_scenario, parse_scenario
from memstack_capacity.theory.queueing import mmc

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _fluid_requests(result) -> dict:
    return result.record.flow.requests


def _single_tier(processes: int, concurrency: int, rps: float, cpu: float = 0.01, cores: str = "4") -> object:
    return parse_scenario({
        "name": "one-tier", "duration": "10m", "warmup": "1m", "sample_interval": "5s",
        "workload": {"arrivals": {"profile": [{"at": "0s", "rps": rps}]},
                     "requests": [{"name": "r", "weight": 1, "steps": [{"cpu": {"dist": "exponential", "mean": cpu}}]}]},
        "deployments": {"api": {"replicas": 1, "processes": processes, "concurrency": concurrency,
                                "resources": {"requests": {"cpu": "1", "memory": "512Mi"},
                                              "limits": {"cpu": cores, "memory": "2Gi"}}}},
    }, "one-tier")


@pytest.fixture(scope="module")
def flash():
    sc = load_scenario(SCENARIOS / "flash-crowd.yaml")
    return simulate(sc), simulate(sc, mode="fluid")


def test_mmc_single_tier_is_exact():
    # processes 3, concurrency 1, exponential CPU: an M/M/3 pod; mean and percentiles in closed form
    result = simulate(_single_tier(3, 1, rps=240.0), mode="fluid")
    req = _fluid_requests(result)
    ref = mmc(240.0, 100.0, 3)
    assert req["latency_s"]["mean"] == pytest.approx(ref.w_s, rel=1e-9)
    assert req["throughput_rps"] == pytest.approx(240.0, rel=1e-9)
    # P(T > p99) = 0.01 for T = S + W (S ~ Exp(μ), W = 0 w.p. 1 - C, else Exp(cμ - λ))
    t, mu, theta = req["latency_s"]["p99"], 100.0, 3 * 100.0 - 240.0
    tail = (1 - ref.p_wait) * np.exp(-mu * t) + ref.p_wait * (theta * np.exp(-mu * t) - mu * np.exp(-theta * t)) / (theta - mu)
    assert tail == pytest.approx(0.01, rel=1e-6)
    assert req["latency_s"]["p50"] < req["latency_s"]["p95"] < t


def test_processor_sharing_pod_mean_and_no_percentiles():
    # one process, concurrency 100: M/M/1-PS, T = D / (1 - ρ); percentiles have no closed form here
    result = simulate(_single_tier(1, 100, rps=70.0), mode="fluid")
    req = _fluid_requests(result)
    assert req["latency_s"]["mean"] == pytest.approx(0.01 / (1 - 0.7), rel=1e-9)
    assert req["latency_s"]["p99"] is None
    assert any("percentiles" in c.lower() for c in result.record.flow.details["caveats"])


def test_single_tier_matches_des():
    sc = _single_tier(2, 1, rps=150.0)
    des, flu = simulate(sc).summary["requests"], _fluid_requests(simulate(sc, mode="fluid"))
    assert flu["throughput_rps"] == pytest.approx(des["throughput_rps"], rel=0.05)
    assert flu["latency_s"]["mean"] == pytest.approx(des["latency_s"]["mean"], rel=0.10)


def test_small_scenario_matches_des():
    sc = load_scenario(SCENARIOS / "small.yaml")
    des, flu = simulate(sc).summary["requests"], _fluid_requests(simulate(sc, mode="fluid"))
    assert flu["throughput_rps"] == pytest.approx(des["throughput_rps"], rel=0.10)
    assert flu["latency_s"]["mean"] == pytest.approx(des["latency_s"]["mean"], rel=0.10)
    assert flu["error_rate"] == pytest.approx(0.0, abs=1e-6)


def test_flash_crowd_replicas_and_throughput_follow_des(flash):
    des, flu = flash
    a, b = des.series, flu.series
    times = a.index.intersection(b.index)
    diff = (a.loc[times, "api/replicas_desired"] - b.loc[times, "api/replicas_desired"]).abs()
    assert (diff <= 1).mean() >= 0.8
    assert _fluid_requests(flu)["throughput_rps"] == pytest.approx(des.summary["requests"]["throughput_rps"], rel=0.10)
    # steady state before the crowd (1 min .. 2 min): mean latency within 10 %
    quiet = [t for t in times if 60 < t <= 120]
    lat_des = a.loc[quiet, "ingress/latency_mean_s"].mean()
    lat_flu = b.loc[quiet, "ingress/latency_mean_s"].mean()
    assert lat_flu == pytest.approx(lat_des, rel=0.10)


def test_hpa_decisions_go_through_reconcile(flash, monkeypatch):
    des, flu = flash
    assert len(flu.scaling) > 0
    assert {"t_s", "deployment", "desired_replicas", "reason", "cpu_utilization_pct"} <= set(flu.scaling.columns)
    assert set(flu.scaling.columns) <= set(des.scaling.columns)  # the DES adds memory_error while workers crash-loop
    calls = []
    real = fluid_pods.reconcile

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(fluid_pods, "reconcile", spy)
    sc = load_scenario(SCENARIOS / "flash-crowd.yaml").with_overrides({"duration": "2m"})
    result = simulate(sc, mode="fluid")
    assert len(calls) == len(result.scaling) > 0
    from memstack_capacity.components.hpa.phases import loop_phases
    from memstack_capacity.engine.rng import stream

    autoscaled = [n for n, d in sc.deployments.items() if d.hpa is not None]
    phases = loop_phases(sc.cluster, autoscaled, stream(sc.seed, "control-loops/phases"))
    assert calls[0] == pytest.approx(min(phases.sync_at.values()))  # the DES controllers' drawn phases


def test_fluid_writes_the_monitor_series(flash):
    des, flu = flash
    for key in ("api/replicas_desired", "api/pods_ready", "api/cpu_utilization", "api/memory_utilization",
                "ingress/throughput_rps", "ingress/error_rate", "neo4j/utilization", "postgres/connections_in_use"):
        assert key in flu.series.columns and key in des.series.columns
    assert len(flu.record.recorder.requests) == 0
    assert flu.record.engine == "fluid" and flu.summary["mode"] == "fluid"


def test_unsupported_events_are_rejected():
    sc = load_scenario(SCENARIOS / "node-loss.yaml")
    with pytest.raises(ScenarioError, match="the flow model does not model `node_failure` events"):
        simulate(sc, mode="fluid")


def test_week_follows_the_diurnal_profile():
    """A week at up to 10 000 req/s (its wall time is in benchmarks/, not asserted here)."""
    sc = load_scenario(SCENARIOS / "week.yaml")
    result = simulate(sc, mode="fluid")
    req = _fluid_requests(result)
    assert req["throughput_rps"] > 4000
    replicas = result.series["api/replicas_desired"]
    assert replicas.max() > 3 * replicas.min()  # the HPA follows the diurnal profile
    assert len(result.scaling) == pytest.approx(sc.duration / sc.cluster.hpa_sync_period, abs=1)


def test_fluid_run_writes_its_figures_into_the_summary(tmp_path, capsys):
    """`run --mode fluid`: summary.json carries the flow model's request figures and says
    which targets it cannot judge (no percentiles for a multi-tier chain)."""
    import json
    from pathlib import Path

    from memstack_capacity.cli import main

    small = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"
    assert main(["run", str(small), "--mode", "fluid", "--out", str(tmp_path / "f")]) == 0
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["mode"] == "fluid"
    # 60 users, 1 s think, ~10 ms response: the machine-repairman throughput is ~59 req/s.
    assert summary["requests"]["throughput_rps"] == pytest.approx(59, rel=0.05)
    p99 = next(v for v in summary["targets"] if v["name"] == "latency_p99")
    assert p99["met"] is False and "fluid mode" in p99["note"]
    assert "caveat:" in capsys.readouterr().out


# ---- the metric noise the HPA sees (engine/fluid_noise.py, docs/fluid.md "Metric noise") ---------
def _open_scenario(name: str, rps: float, replicas: int, steps: list, classes: list, hpa: dict | None = None,
                   stores: dict | None = None, duration: str = "8m", sample: str = "5s", seed: int = 3,
                   balancing: str = "round_robin") -> object:
    """Open Poisson arrivals to `replicas` API pods (one process, concurrency 1000, 256Mi base of
    a 512Mi request); `classes` are (name, memory) pairs running the same `steps`."""
    api = {"replicas": replicas, "processes": 1, "concurrency": 1000, "memory_base": "256Mi",
           "load_balancing": balancing,
           "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}}
    if hpa is not None:
        api["hpa"] = hpa
    return parse_scenario({
        "name": name, "seed": seed, "duration": duration, "warmup": "1m", "sample_interval": sample,
        "workload": {"arrivals": {"profile": [{"at": "0s", "rps": rps}]}, "timeout": "60s",
                     "requests": [{"name": c, "weight": 1, "memory": m, "steps": steps} for c, m in classes]},
        "deployments": {"api": api},
        "datastores": stores or {},
    }, name)


def _memory_hpa(replicas: int, max_replicas: int) -> dict:
    return {"minReplicas": replicas, "maxReplicas": max_replicas, "metrics": [
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}]}


def _fluid_sim(scenario, **kwargs):
    from memstack_capacity.engine.fluid.engine import FluidSim, default_step

    sim = FluidSim(scenario, default_step(scenario), **kwargs)
    sim.run(None)
    return sim


def test_chain_moments_match_the_closed_forms():
    from memstack_capacity.engine.fluid.flow import chain_moments, pod_chain

    # M/M/1-PS: the number in system is geometric, mean ρ/(1 − ρ), variance ρ/(1 − ρ)²
    for rho in (0.1, 0.5, 0.9, 0.98):
        mean, var = chain_moments(rho / 0.01, 0.01, 1, 2)
        assert mean == pytest.approx(rho / (1 - rho), rel=1e-9)
        assert var == pytest.approx(rho / (1 - rho) ** 2, rel=1e-9)
    # a multi-server chain r(n) = min(n, p, L)·μ against its stationary law summed directly
    for lam, p, cores in ((250.0, 3, 3.0), (150.0, 4, 2.0), (380.0, 16, 4.0)):
        mu = 100.0
        n = np.arange(20000)
        rates = np.minimum(np.minimum(n[1:], p), cores) * mu
        logp = np.concatenate([[0.0], np.cumsum(np.log(lam / rates))])
        prob = np.exp(logp - logp.max())
        prob /= prob.sum()
        mean, var = chain_moments(lam, 1 / mu, p, cores)
        assert mean == pytest.approx(float(prob @ n), rel=1e-9)
        assert mean == pytest.approx(pod_chain(lam, 1 / mu, p, cores)[0], rel=1e-12)
        assert var == pytest.approx(float(prob @ n**2) - float(prob @ n) ** 2, rel=1e-9)


def test_memory_noise_is_a_random_sum_monte_carlo():
    """Var(Σ_{j≤K} m_j) = Var(K)·m̄² + E[K]·σ_m² for K ~ geometric (an M/M/1-PS pod at ρ = 0.7)
    and classes drawn by the in-pod mix, against 200 000 draws. The sample variance's relative
    standard error is sqrt((κ − 1)/n), κ the kurtosis (estimated from the draws: about 10 here,
    so 0.7 %); the check allows 5 standard errors."""
    from memstack_capacity.engine.fluid.noise import memory_moments

    rng = np.random.default_rng(11)
    rho, n = 0.7, 200_000
    mix, mem = [0.6, 0.3, 0.1], [1.0, 3.0, 8.0]
    k = rng.geometric(1 - rho, n) - 1  # P(K = k) = (1 − ρ) ρ^k
    idx = np.repeat(np.arange(n), k)
    total = np.bincount(idx, weights=rng.choice(mem, size=idx.size, p=mix), minlength=n)
    m1, m_var = memory_moments(mix, mem)
    model = rho / (1 - rho) ** 2 * m1 * m1 + rho / (1 - rho) * m_var
    kurt = float(np.mean((total - total.mean()) ** 4) / total.var() ** 2)
    se = np.sqrt((kurt - 1) / n)
    assert abs(total.var() / model - 1) < 5 * se


def test_noise_of_a_processor_sharing_pod_is_the_closed_form():
    """One M/M/1-PS pod at ρ = 0.7 (a memory HPA pinned at one replica so metrics are drawn):
    the working set's standard deviation is m·sqrt(ρ)/(1 − ρ) (geometric count), the CPU rate's
    over the scrape window W is sqrt(λ·E[D²]/W) with E[D²] = 2D² (exponential demand)."""
    sc = _open_scenario("ps-pod", 70.0, 1, [{"cpu": {"dist": "exponential", "mean": 0.01}}], [("r", "2Mi")],
                        hpa=_memory_hpa(1, 1), duration="2m")
    sd_mem, sd_cpu = _fluid_sim(sc).deps["api"].noise_sd
    rho, m, window = 0.7, 2 * 2**20, sc.cluster.metrics_resolution
    assert sd_mem == pytest.approx(m * np.sqrt(rho) / (1 - rho), rel=1e-6)
    assert sd_cpu == pytest.approx(np.sqrt(70.0 * 2 * 0.01**2 / window), rel=1e-9)


def test_memory_noise_matches_des_variance():
    """The DES's working set, sampled every second over 20 min, against the model's standard
    deviation: one pod (so its arrivals are Poisson) at ρ = 0.7 with a 1 s external call, two
    classes. The sample variance's relative standard error is sqrt((κ − 1)/n) with n = 1140 and
    the kurtosis κ estimated from the samples (about 3: 4 %); samples 1 s apart are correlated
    about 0.2 at lag 1, which widens it by some 5 %. The check allows 4 standard errors (seeds
    3 to 6 give ratios 0.98 to 1.04)."""
    sc = _open_scenario("ps-delay", 70.0, 1, [{"cpu": {"dist": "exponential", "mean": 0.01}}, {"external": "slow"}],
                        [("light", "1Mi"), ("heavy", "4Mi")], hpa=_memory_hpa(1, 1), duration="20m", sample="1s",
                        stores={"slow": {"kind": "external", "latency": {"dist": "lognormal", "mean": "1s", "cv": 0.5},
                                         "concurrency": 100000}})
    sd_mem = _fluid_sim(sc).deps["api"].noise_sd[0]
    mem = simulate(sc).series.loc[60:, "api/memory_bytes"].to_numpy()
    kurt = float(np.mean((mem - mem.mean()) ** 4) / mem.var() ** 2)
    se = np.sqrt((kurt - 1) / mem.size)
    assert abs(mem.var() / sd_mem**2 - 1) < 4 * se


def _edge_scenario(seed: int = 3):
    """Nine pods whose mean memory sits at 88 % of the request against an 80 % target: a ratio of
    1.10, just inside the HPA's tolerance. Requests hold 1 or 2.5 MiB for a 5 s external call."""
    return _open_scenario("hpa-edge", 202.0, 9, [{"cpu": {"dist": "exponential", "mean": 0.002}}, {"external": "slow"}],
                          [("light", "1Mi"), ("heavy", "2560Ki")], hpa=_memory_hpa(9, 20), seed=seed,
                          stores={"slow": {"kind": "external", "latency": {"dist": "lognormal", "mean": "5s", "cv": 0.5},
                                           "concurrency": 100000}})


def test_replicas_at_the_tolerance_edge_follow_des():
    """At the edge the DES's noise tips the HPA up (9 → 11) and the 300 s scale-down window keeps
    it there; the fluid means alone never leave 9, the fluid with its metric noise follows the DES."""
    from memstack_capacity.engine.fluid.engine import run_fluid
    from memstack_capacity.results.result import Result

    sc = _edge_scenario()
    des, flu = simulate(sc), simulate(sc, mode="fluid")
    means = Result(run_fluid(sc, metric_noise=False))
    times = [t for t in des.series.index.intersection(flu.series.index) if t > sc.warmup]
    a = des.series.loc[times, "api/replicas_desired"]
    assert a.iloc[-1] >= 11
    assert (means.series.loc[times, "api/replicas_desired"] == 9).all()
    assert ((a - flu.series.loc[times, "api/replicas_desired"]).abs() <= 1).mean() >= 0.8
    caveats = flu.record.flow.details["caveats"]
    assert any("tolerance band's edge" in c for c in caveats)
    assert any("metric noise off" in c for c in means.record.flow.details["caveats"])


def test_fluid_is_deterministic_for_a_seed():
    sc = _edge_scenario()
    one, two = simulate(sc, mode="fluid"), simulate(sc, mode="fluid")
    assert one.scaling.equals(two.scaling)
    other = simulate(sc, seed=4, mode="fluid")
    assert list(other.scaling["memory_utilization_pct"]) != list(one.scaling["memory_utilization_pct"])


def test_saturated_backlog_waits_at_the_bottleneck():
    """Closed users beyond a PostgreSQL server's capacity queue there: the class that never calls
    it is not delayed (DES 3.4 ms), the one that does carries the whole queue (DES 1.0 s)."""
    sc = parse_scenario({
        "name": "saturated-store", "seed": 3, "duration": "4m", "warmup": "1m", "sample_interval": "5s",
        "workload": {"users": {"profile": [{"at": "0s", "users": 400}],
                               "think_time": {"dist": "exponential", "mean": "0.5s"}},
                     "timeout": "60s",
                     "requests": [
                         {"name": "query", "weight": 1, "memory": "4Mi",
                          "steps": [{"cpu": {"dist": "exponential", "mean": 0.002}},
                                    {"call": "pg", "time": {"dist": "exponential", "mean": "10ms"}}]},
                         {"name": "plain", "weight": 1, "memory": "1Mi",
                          "steps": [{"cpu": {"dist": "exponential", "mean": 0.002}}]}]},
        "deployments": {"api": {"replicas": 2, "processes": 1, "concurrency": 1000, "memory_base": "256Mi",
                                "load_balancing": "random",
                                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                              "limits": {"cpu": "2", "memory": "2Gi"}}}},
        "datastores": {"pg": {"kind": "postgresql", "max_connections": 10000, "cores": 2,
                              "pool": {"pool_size": 1000, "max_overflow": 0}}},
    }, "saturated-store")
    des, flu = simulate(sc), simulate(sc, mode="fluid")
    assert flu.record.flow.details["bottlenecks_s"].get("pg server cores", 0) > 0
    for c in ("query", "plain"):
        ref = des.summary["requests"]["by_class"][c]["latency_s"]["mean"]
        assert _fluid_requests(flu)["by_class"][c]["latency_s"]["mean"] == pytest.approx(ref, rel=0.10)
    mem_des = des.series.loc[60:, "api/memory_utilization"].mean()
    assert flu.series.loc[60:, "api/memory_utilization"].mean() == pytest.approx(mem_des, rel=0.02)
