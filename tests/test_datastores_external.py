"""External APIs and Redis.

References: CPython ``asyncio.locks.Semaphore`` (FIFO waiters), litellm ``num_retries``
with exponential back-off, OpenAI rate-limit docs (per-minute limits enforced per
second), Che, Tung & Wang (2002) and Fricker, Robert & Roberts (2012) for Che's LRU
approximation.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import simpy
from test_datastores_helpers import scenario, simulate

from memstack_capacity.theory import queueing as theory
from memstack_capacity.components.datastores.kv import ExternalStore
from memstack_capacity.components.flows import EXTERNAL, Executor, Task
from memstack_capacity.components.pods import Proc
from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.engine.rng import Streams
from memstack_capacity.scenario.infrastructure import ExternalSpec


class _Harness:
    def __init__(self, **spec):
        self.env = simpy.Environment()
        self.executor = Executor()
        self.done: list = []
        self.failed: list = []
        self.executor.on_task_done = lambda task: self.done.append(self.env.now)
        self.store = ExternalStore(self.env, "llm", ExternalSpec(kind="external", **spec), self.executor, self._fail,
                                   Streams(1))
        self.executor.handlers[EXTERNAL] = self.store.handle
        self.accepted: list = []
        latency = self.store.latency

        def spy():
            self.accepted.append(self.env.now)
            self.in_flight_max = max(getattr(self, "in_flight_max", 0), self.store.in_flight)  # counted already
            return latency()

        self.store.latency = spy

    def _fail(self, task, code):
        task.alive = False
        self.failed.append((self.env.now, code))

    def start(self, n: int, proc: Proc, at: float = 0.0):
        def go(_e=None):
            for _ in range(n):
                task = Task("request", 0, self.env.now, None, 0, ((EXTERNAL, "llm"),))
                task.proc = proc
                self.executor.start(task)

        if at:
            from memstack_capacity.components.clock import call_later

            call_later(self.env, at, go)
        else:
            go()


def test_semaphore_bounds_calls_per_process_and_is_fifo():
    """concurrency 3 per process, 10 calls of 1 s on one process: never more than 3 in flight,
    done in waves at 1, 2, 3, 4 s; a second process has its own 3."""
    h = _Harness(latency="1s", concurrency=3)
    p1, p2 = Proc(), Proc()
    h.start(10, p1)
    h.start(3, p2)
    h.env.run(until=10)
    assert h.store.max_in_use == 3 and h.in_flight_max == 6
    assert Counter(round(t, 9) for t in h.done) == {1.0: 6, 2.0: 3, 3.0: 3, 4.0: 1}


def test_rate_limit_never_exceeds_the_window_budget_and_retries_then_fails():
    """600/min with 1 s windows: at most 10 accepted per window. 40 calls at once with 8 slots:
    rejected attempts retry after 1, 2, 4 s holding their slot; after 3 retries they fail (500 rate_limited)."""
    h = _Harness(latency="100ms", concurrency=40, rate_limit="600/min", retries=3, retry_backoff="1s")
    h.start(40, Proc())
    h.env.run(until=60)
    per_window = Counter(math.floor(t) for t in h.accepted)
    assert max(per_window.values()) <= 10 and h.store.win_max == 10
    assert len(h.done) + len(h.failed) == 40
    # window 0: 10; retries of the 30 at t=1: 10; at t=1+2=3: 10 (of 20); at t=3+4=7: 10 (of 10) → none fail
    assert sorted(per_window.items()) == [(0, 10), (1, 10), (3, 10), (7, 10)] and not h.failed
    h2 = _Harness(latency="100ms", concurrency=40, rate_limit="600/min", retries=1, retry_backoff="1s")
    h2.start(40, Proc())
    h2.env.run(until=60)
    assert len(h2.done) == 20 and [c for _, c in h2.failed] == [REASON_CODE["rate_limited"]] * 20
    assert all(t == 1.0 for t, _ in h2.failed) and h2.store.rejected == 30 + 20


def test_semaphore_slot_is_held_during_retries():
    """concurrency 1: a call rejected at t=0 keeps the slot through its back-off, so the next waits."""
    h = _Harness(latency="10ms", concurrency=1, rate_limit=1, retries=2, retry_backoff="1s")
    h.start(1, Proc(), at=0.5)  # uses window 0
    h.env.run(until=0.6)
    proc = Proc()
    h.start(2, proc)  # t=0.6: first rejected (window 0 full), retries at 1.6 (window 1: accepted)
    h.env.run(until=10)
    # the second call gets the slot only at 1.61; window 1 is used up then, so it retries at 2.61
    assert [round(t, 6) for t in h.accepted] == [0.5, 1.6, 2.61]
    assert h.store.max_in_use == 1


def _redis_patch(sites, cache_model: str, keys_cached: int, rps: float):
    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = rps
        d["workload"]["requests"] = [
            {"name": f"r{i}", "weight": w, "steps": [{"call": "redis", "key_space": n, "key_alpha": a}]}
            for i, (w, n, a) in enumerate(sites)
        ]
        d["datastores"] = {"redis": {"kind": "redis", "maxmemory": keys_cached * 1024, "value_size": 1024,
                                     "maxmemory_policy": "allkeys-lru", "cache_model": cache_model}}
    return patch


def test_che_approximation_matches_a_simulated_lru():
    """One Zipf(0.8) key space of 5 000 keys, a cache of 500: Che's hit ratio against the exact LRU
    the store keeps in ``cache_model: lru``. 60 000 lookups per seed after a 5 s warm-up (the cache
    fills within ~2 000); the hit ratio's standard error is about 0.002 per seed: tolerance 0.01
    (Che's own error for Zipf at this size is below 0.005, Fricker et al. 2012)."""
    che = theory.che_hit_ratio(theory.zipf_popularity(5000, 0.8), 500)
    for seed in (1, 2):
        _, rec = simulate(scenario(_redis_patch([(1, 5000, 0.8)], "lru", 500, 1000), duration="65s",
                                   warmup="5s"), seed)
        measured = rec.datastores["redis"]["hit_ratio"]
        assert abs(measured - che) < 0.01, (measured, che)
    _, rec = simulate(scenario(_redis_patch([(1, 5000, 0.8)], "che", 500, 1000), duration="65s", warmup="5s"), 1)
    assert abs(rec.datastores["redis"]["hit_ratio"] - che) < 0.01


def test_shared_cache_hit_ratios_of_two_key_spaces_match_the_lru():
    """Two call sites (2 000 keys Zipf 1.0 and 8 000 keys Zipf 0.6, 30/70 of the lookups) share one cache
    of 800 keys: the per-site Che ratios solved jointly agree with the exact LRU to within 0.015."""
    sites = [(0.3, 2000, 1.0), (0.7, 8000, 0.6)]
    model, _ = simulate(scenario(_redis_patch(sites, "lru", 800, 2000), duration="65s", warmup="5s"), 3)
    store = model.datastores.stores["redis"]
    for site in store.sites.values():
        measured = site.hits / site.lookups
        assert abs(measured - site.hit_ratio) < 0.015, (site.step.key_space, measured, site.hit_ratio)
    ratios = sorted(s.hit_ratio for s in store.sites.values())
    assert ratios[0] < ratios[1]  # the skewed small key space hits more


def test_redis_miss_runs_the_backing_call():
    """A miss runs the step's `miss` steps: backing-store calls = lookups × (1 − hit ratio)."""

    def patch(d):
        d["workload"]["arrivals"]["profile"][0]["rps"] = 500
        d["workload"]["requests"][0]["steps"] = [
            {"call": "redis", "key_space": 2000, "key_alpha": 0.9,
             "miss": [{"call": "postgres", "time": "2ms"}]}]
        d["datastores"]["redis"] = {"kind": "redis", "maxmemory": "200Ki", "value_size": 1024,
                                    "maxmemory_policy": "allkeys-lru"}
        d["datastores"]["postgres"]["cores"] = 4

    _, rec = simulate(scenario(patch, duration="100s", warmup="10s"), 2)
    ds = rec.datastores
    h = theory.che_hit_ratio(theory.zipf_popularity(2000, 0.9), 200)
    misses = ds["postgres"]["calls"]
    assert abs(ds["redis"]["hit_ratio"] - h) < 0.01
    assert abs(misses / ds["redis"]["lookups"] - (1 - h)) < 0.01
    assert np.isclose(ds["redis"]["hit_ratio"] + misses / ds["redis"]["lookups"], 1.0, atol=0.002)
