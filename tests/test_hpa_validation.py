"""The HPA on Kubernetes Resource Metrics against a published measurement of a real cluster.

Source: T.-T. Nguyen, Y.-J. Yeom, T. Kim, D.-H. Park, S. Kim, "Horizontal Pod Autoscaling in
Kubernetes for Elastic Container Orchestration", Sensors 20(16):4621, 2020
(https://doi.org/10.3390/s20164621). The setup is rebuilt in
scenarios/validation/nguyen2020-hpa-krm.yaml from the paper's §5.1 (its header says where each
value comes from); docs/model.md, "Validation: the HPA", has the table and the mismatches.

What the paper reports (§5.2.1, Figure 3a, 60 s scraping): the metric changes between 35 and 40 s
and holds until 100 s, then until 160 s; the replica set goes 4 → 8 at about 50 s, → 15 at 65 s,
→ 21 at 110 s, then holds to the end (the 5 min downscale delay). §5.2.2 (Figure 4): the most
replicas reached are 24, 23 and 21 with 15, 30 and 60 s scraping.

Tolerances come from the mechanism, never from a fit:

* times: a rescale can only happen at an HPA sync, so the paper's "about 50 s" is matched by the
  sync nearest to it, within half a sync period (7.5 s);
* sizes: with the 60m target and pods held to 200m, each pod metrics-server reports adds
  199/60 ≈ 3.3 replicas to the proposal and a pod it does not report (its sample within 30 s of
  its readiness: Kubernetes' CPU-initialisation rule with metrics-server 0.3's fixed 30 s window)
  adds none, so the size after the 98 s scrape is ceil(n × 3.3) for the n pods it reports, which
  the cAdvisor jitter of the new pods decides: 14 (no rescale), 17, 20 or 24. The measurement is
  one run of ten; it is compared with that set, not with one seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from memstack_capacity import load_scenario, simulate

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "validation" / "nguyen2020-hpa-krm.yaml"
SYNC = 15.0

#: §5.2.1 (Figure 3a): (time in s, replicas after) of each rescale with 60 s scraping.
PAPER_60S = [(50.0, 8), (65.0, 15), (110.0, 21)]
#: §5.2.2 (Figure 4a-c): the most replicas reached, per scraping period.
PAPER_MAX = {15.0: 24, 30.0: 23, 60.0: 21}


def rescales(seed: int = 1, **overrides):
    scenario = load_scenario(SCENARIO)
    if overrides:
        scenario = scenario.with_overrides(overrides)
    scaling = simulate(scenario, seed=seed).scaling
    done = scaling[scaling.rescaled]
    return [(float(t), int(n)) for t, n in zip(done.t_s, done.desired_replicas)]


@pytest.fixture(scope="module")
def runs_60s():
    return {seed: rescales(seed) for seed in (1, 2)}


def test_the_first_two_rescales_come_at_the_papers_syncs(runs_60s):
    """4 → 8 at the first sync after the first scrape that sees the load (the scale-up limit, 2 × 4:
    the paper's 8 exactly), then at the next sync to ceil(4 × 199 / 60) = 14: the four old pods at
    their 200m ceiling and the four new ones not yet reported. The paper has 15, one more: that
    would need more than 840m from four pods held to 200m each — not reachable with the 60m target
    of the paper's Figure 2a (a target in (53.3m, 57.1m] would give 15); reported, not tuned."""
    for trajectory in runs_60s.values():
        (t1, n1), (t2, n2) = trajectory[:2]
        assert abs(t1 - PAPER_60S[0][0]) <= SYNC / 2 and n1 == PAPER_60S[0][1] == 8
        assert abs(t2 - PAPER_60S[1][0]) <= SYNC / 2 and n2 == math.ceil(4 * 199 / 60) == 14
        assert PAPER_60S[1][1] - n2 == 1  # the documented mismatch


def test_the_third_rescale_follows_the_next_scrape_and_brackets_the_papers_size(runs_60s):
    """After the 97.5 s scrape the next sync (110 s, the paper's instant) rescales to ceil(n × 199 / 60)
    for the n pods metrics-server reports; seeds 1 and 2 give 20 and 24 (seeds 3-10: 17 six times, 20 once and
    once no rescale until 170 s), and the paper's 21 lies in that range (its ~180 % per pod with
    n = 7 gives exactly 21)."""
    third = {}
    for seed, trajectory in runs_60s.items():
        later = [(t, n) for t, n in trajectory[2:] if t < 160.0]
        assert later, f"seed {seed}: no rescale after the 97.5 s scrape"
        t3, n3 = later[0]
        assert abs(t3 - PAPER_60S[2][0]) <= SYNC / 2
        assert n3 in {math.ceil(n * 199 / 60) for n in range(5, 8)} | {24}
        third[seed] = n3
    assert min(third.values()) <= PAPER_60S[2][1] <= max(third.values())


def test_after_the_load_the_replicas_never_go_down_within_the_run(runs_60s):
    """The paper's replica set holds to 300 s (the 5 min downscale delay): no simulated rescale goes down.
    The simulation adds a late rescale to 24 at 170 s that the paper does not have: its pods are still
    draining the backlog of the 1800 req/s phase (docs/model.md explains)."""
    for trajectory in runs_60s.values():
        sizes = [n for _, n in trajectory]
        assert sizes == sorted(sizes) and sizes[-1] <= 24


def test_a_shorter_scrape_period_gives_no_fewer_replicas_early(runs_60s):
    """§5.2.2: shorter scraping, more replicas (24, 23, 21 at most for 15, 30, 60 s). At 125 s, once the
    1800 req/s phase has been seen, the simulation has 24, 20 and 20: the order holds and the 15 s
    case reaches the maximum as measured; the 30 s case ends at 24 where the paper has 23 (the same
    late rescale as above)."""
    at_125 = {}
    runs = {period: rescales(1, **{"cluster.metrics_resolution": f"{period:g}s",
                                   "cluster.metrics_scrape_offset": "7.5s"}) for period in (15.0, 30.0)}
    runs[60.0] = runs_60s[1]
    for period, trajectory in runs.items():
        at_125[period] = max([4] + [n for t, n in trajectory if t <= 125.0])
    assert at_125[15.0] >= at_125[30.0] >= at_125[60.0]
    assert at_125[15.0] == PAPER_MAX[15.0] == 24


def test_the_unknown_request_cost_does_not_move_the_first_rescales(runs_60s):
    """The paper gives no CPU time per request; its reported CPU levels bracket it to [1.5, 2.3] ms
    (the scenario's header). At both ends the rescales up to 110 s are the scenario's (2 ms)."""
    base = [r for r in runs_60s[1] if r[0] <= 125.0]
    for cost in ("1.5ms", "2.3ms"):
        assert [r for r in rescales(1, **{"workload.requests.0.steps.0.cpu.mean": cost}) if r[0] <= 125.0] == base
