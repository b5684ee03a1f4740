"""Imperfect resource metrics (components/metrics.py, ``cluster.metrics_errors``).

References: metrics-server keeps, per pod, the points of its latest scrape only (its storage
replaces the pods it holds with each batch; a pod absent from a batch is dropped), and reports
CPU as the rate between a pod's last two points — so a pod missed by one scrape has no memory
sample until the next good scrape and no CPU sample until two good scrapes in a row. The
controller's missing-metrics rules then apply (hpa-spec.md §7). Counts are binomial; the
tolerances are 4 standard errors of the number of pod-scrapes drawn.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from memstack_capacity import simulate
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.engine.capabilities import reasons
from memstack_capacity.scenario.infrastructure import MetricsErrors
from memstack_capacity.scenario.load import parse_scenario
from tests.test_hpa_engine import autoscaled

R = 15.0  # metrics-server --metric-resolution


class SteadyPod:
    """A running container burning ``cores`` steadily, with a fixed working set."""

    def __init__(self, clock, cores: float, mem: int):
        self.clock, self.cores, self.mem = clock, cores, mem
        self.phase, self.container_up, self.restarts = "Running", True, 0

    def usage_now(self) -> float:
        return self.cores * self.clock.now


def scrape_many(errors: MetricsErrors, pods: int = 20, scrapes: int = 2000, seed: int = 5):
    """Scrape steady pods every R seconds; per pod and scrape, (cpu rate or None, window, memory or None)."""
    clock = SimpleNamespace(now=0.0)
    fleet = [SteadyPod(clock, 0.25 + 0.05 * i, (100 + i) * 2**20) for i in range(pods)]
    server = MetricsServer(clock, R, {"api": SimpleNamespace(pods=fleet)}, errors, np.random.default_rng(seed))
    seen = []
    for k in range(scrapes):
        clock.now = k * R
        server.scrape()
        if k >= 2:  # from the third scrape on, a pod scraped twice in a row always has a rate
            seen += [(pod, *server.sample(pod)) for pod in fleet]
    return seen, server


def test_a_missed_scrape_costs_one_memory_sample_and_two_cpu_samples():
    """With each pod's stats missing with probability p, a pod has memory at a sync with probability
    1 − p and CPU with (1 − p)² (this scrape and the one before both good); present samples are exact."""
    p = 0.3
    seen, server = scrape_many(MetricsErrors(missing_probability=p))
    n = len(seen)
    with_memory = sum(mem is not None for _, _, _, _, mem in seen) / n
    with_cpu = sum(cpu is not None for _, cpu, _, _, _ in seen) / n
    assert abs(with_memory - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n)
    q = (1 - p) ** 2
    assert abs(with_cpu - q) < 4 * math.sqrt(q * (1 - q) / n)
    assert all(cpu == pytest.approx(pod.cores) and window == R for pod, cpu, window, _, _ in seen if cpu is not None)
    assert all(mem == pod.mem for pod, _, _, _, mem in seen if mem is not None)
    assert server.missed == pytest.approx(p * 20 * 2000, rel=0.05)


def test_usage_noise_has_mean_one_and_the_coefficient_of_variation_asked_for():
    """Multiplicative lognormal noise, cv 0.2 on CPU and 0.1 on memory: the ratio of reported to true
    usage has mean 1 (4 SE) and the given cv (4 SE of a sample standard deviation, cv/√(2n))."""
    seen, _ = scrape_many(MetricsErrors(cpu_noise_cv=0.2, memory_noise_cv=0.1), pods=10, scrapes=1500)
    for values, cv in (([cpu / pod.cores for pod, cpu, _, _, _ in seen], 0.2),
                       ([mem / pod.mem for pod, _, _, _, mem in seen], 0.1)):  # fmt: skip
        ratio = np.asarray(values)
        n = ratio.size
        assert abs(ratio.mean() - 1.0) < 4 * cv / math.sqrt(n)
        assert abs(ratio.std(ddof=1) - cv) < 4 * cv / math.sqrt(2 * n)


def test_no_metrics_no_scaling():
    """Every pod's stats missing at every scrape: the controller never has a metric, so the
    deployment stays at its replicas under a load that scales it from 3 to 7 with perfect metrics
    (test_hpa_engine's hand-derived trajectory)."""
    data = autoscaled(240.0, cv=0.001, service="constant")
    data["cluster"]["metrics_errors"] = {"missing_probability": 1.0}
    blind = simulate(parse_scenario(data))
    assert (blind.scaling["desired_replicas"] == 3).all()
    seeing = simulate(parse_scenario(autoscaled(240.0, cv=0.001, service="constant")))
    assert seeing.scaling["desired_replicas"].max() == 7


def test_the_fluid_model_refuses_imperfect_metrics():
    data = autoscaled(240.0)
    data["cluster"]["metrics_errors"] = {"cpu_noise_cv": 0.1}
    with pytest.raises(Exception, match="missing or noisy resource metrics"):
        simulate(parse_scenario(data), engine="fluid")


def test_background_cpu_is_usage_the_hpa_sees():
    """``background_cpu: 300m`` on pods serving 20 req/s × 10 ms = 0.2 cores each: cAdvisor counts both,
    so metrics-server reports 0.5 cores = 100 % of the 500m request, and at the first sync with a
    rate (t = 16 s) the controller asks for ceil(3 × 100 / 70) = 5 pods (its policies allow 6).
    Without the background: 40 %, and the deployment stays at 3. The monitor's CPU series counts
    the background too: 3 × 0.5 cores before the new pods start."""
    data = autoscaled(60.0, cv=0.001, service="constant", duration=60.0)
    data["deployments"]["api"]["background_cpu"] = "300m"
    busy = simulate(parse_scenario(data))
    row = busy.scaling.set_index("t_s").loc[16.0]
    assert row["cpu_utilization_pct"] in (99, 100) and row["desired_replicas"] == 5
    assert busy.series.loc[15.0, "api/cpu_cores"] == pytest.approx(1.5, abs=0.02)
    idle = simulate(parse_scenario(autoscaled(60.0, cv=0.001, service="constant", duration=60.0)))
    assert (idle.scaling["desired_replicas"] == 3).all()
    assert idle.series.loc[15.0, "api/cpu_cores"] == pytest.approx(0.6, abs=0.02)


def test_background_cpu_under_a_binding_limit_is_held_to_it():
    """``background_cpu: 800m`` with ``limits.cpu: 500m`` and no traffic: the background spends the
    container's CFS quota and is throttled with it, so each pod uses 0.5 cores — its limit, 100 % of
    its 500m request — and the HPA sees 100 %, not the 160 % the background alone would ask for:
    ceil(3 × 100 / 70) = 5 pods at the first sync with a rate (t = 16 s). Such a scenario takes
    the general engine (the quota couples the processes)."""
    data = autoscaled(0.0, duration=30.0)
    api = data["deployments"]["api"]
    api["background_cpu"] = "800m"
    api["resources"]["limits"]["cpu"] = "500m"
    scenario = parse_scenario(data)
    assert any("CPU limit shared" in r for r in reasons(scenario, "hybrid"))
    result = simulate(scenario)
    row = result.scaling.set_index("t_s").loc[16.0]
    assert row["cpu_utilization_pct"] == 100 and row["desired_replicas"] == 5
    assert result.series.loc[15.0, "api/cpu_cores"] == pytest.approx(1.5, abs=1e-9)
    assert result.series.loc[15.0, "api/throttled_periods_fraction"] == pytest.approx(1.0)
