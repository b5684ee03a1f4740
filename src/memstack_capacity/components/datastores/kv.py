"""Redis (a single-threaded cache with LRU eviction) and external APIs (LLM, embeddings).

**Redis.** One thread runs commands in arrival order (a FIFO single server, ``op_time``
each) and a reply takes one ``round_trip``. A ``call`` with ``key_space`` and
``key_alpha`` is a cache read: it hits with the LRU hit ratio of Che's approximation
(Che, Tung & Wang 2002; ``theory.che_hit_ratio``) for a cache of ``maxmemory /
value_size`` keys. The cache is shared by every such call site on that Redis: each
site has its own keys (Zipf popularity) and a share of the lookups from the static
request mix, and Che's characteristic time is solved over all of them at once. On a
miss the step's ``miss`` steps run (the backing call) and the cache-aside SET costs
Redis one more command (load only; the reply is not awaited). ``cache_model: lru``
instead keeps an exact LRU over Zipf-drawn keys (for validation). A call without
``key_space`` is a plain command (XADD, PUBLISH, SETEX): always served, no miss path.
``maxmemory_policy: noeviction`` keeps the first keys written; for Zipf keys that is
close to the most popular ones, so its hit ratio is taken as that of a static cache of
the ``maxmemory / value_size`` most popular keys. No ``maxmemory``: everything hits.

**External APIs.** Per process, an ``asyncio.Semaphore(concurrency)`` with FIFO
waiters (CPython's ``Semaphore.acquire`` queues waiters in a deque and wakes the
first). The provider counts accepted requests in fixed windows of ``rate_window``
seconds (1 s by default: providers enforce per-minute limits at per-second
granularity — OpenAI documents that 60 000 RPM "may be enforced as 1 000 requests per
second"); at most ``floor(rate_limit × rate_window)`` are accepted per window. A
rejected request gets 429 at once and, like litellm's ``num_retries`` retry, is tried
again after ``retry_backoff × 2^k`` (k = 0, 1, …) while still holding its semaphore
slot; after ``retries`` retries it fails with 500 ``rate_limited``. Rejected
attempts do not count against the window.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import numpy as np

from memstack_capacity.components.clock import call_later, call_later_fn
from memstack_capacity.components.flows import Flow
from memstack_capacity.components.datastores.failure import refuse_while_down
from memstack_capacity.components.datastores.pools import FifoServer
from memstack_capacity.components.sampling import BLOCK, Sampler, Uniforms
from memstack_capacity.components.recorder import REASON_CODE
from memstack_capacity.scenario.workload import CallStep, EnqueueStep, ParallelStep, RepeatStep
from memstack_capacity.theory.queueing import che_characteristic_time, zipf_popularity


# ---- Redis ------------------------------------------------------------------------------------------
class CacheSite:
    """One cache-reading call step: its keys, its share of lookups, its hit ratio."""

    __slots__ = ("step", "index", "share", "p", "hit_ratio", "cdf", "buf", "i", "lookups", "hits")

    def __init__(self, step, index: int, share: float):
        self.step = step
        self.index = index
        self.share = share
        self.p = zipf_popularity(step.key_space, step.key_alpha if step.key_alpha is not None else 0.0)
        self.hit_ratio = 1.0
        self.cdf = None
        self.buf: list = []
        self.i = 0
        self.lookups = self.hits = 0


def lookup_shares(scenario, store: str) -> dict:
    """Expected executions per request of each cache-reading call step on `store` (by step id).

    Walks the request classes by weight, with repeats, parallel branches, miss paths (counted
    as if always taken) and the jobs each request enqueues.
    """
    jobs = {j.name: j for j in scenario.workload.jobs}
    total_w = sum(c.weight for c in scenario.workload.requests) or 1.0
    counts: dict = {}
    steps_of: dict = {}

    def walk(steps, mult: float, depth: int) -> None:
        if depth > 8:
            return
        for step in steps:
            m = mult * step.repeat
            if isinstance(step, RepeatStep):
                walk(step.steps, m, depth)
            elif isinstance(step, ParallelStep):
                walk(step.parallel, m, depth)
            elif isinstance(step, CallStep):
                if step.call == store and step.key_space is not None and not step.write:
                    counts[id(step)] = counts.get(id(step), 0.0) + m
                    steps_of[id(step)] = step
                if step.miss:
                    walk(step.miss, m, depth)
            elif isinstance(step, EnqueueStep) and step.enqueue in jobs:
                walk(jobs[step.enqueue].steps, m, depth + 1)

    for cls in scenario.workload.requests:
        walk(cls.steps, cls.weight / total_w, 0)
    for job in scenario.workload.jobs:  # job sites no request reaches still get a (tiny) share
        walk(job.steps, 1e-9, 1)
    return {k: (steps_of[k], v) for k, v in counts.items()}


def shared_cache_hit_ratios(sites: list, capacity: float, policy: str) -> None:
    """Set each site's hit ratio for one cache of `capacity` keys shared by all sites."""
    if not sites:
        return
    total = sum(s.share for s in sites) or 1.0
    parts = [s.p * (s.share / total) for s in sites]
    p_all = np.concatenate(parts)
    if capacity >= p_all.size:
        for s in sites:
            s.hit_ratio = 1.0
        return
    if policy == "noeviction":
        kept = np.zeros(p_all.size, dtype=bool)
        kept[np.argsort(-p_all, kind="stable")[: int(capacity)]] = True
        start = 0
        for s in sites:
            n = s.p.size
            s.hit_ratio = float(s.p[kept[start:start + n]].sum())
            start += n
        return
    t_c = che_characteristic_time(p_all, capacity)
    for s, part in zip(sites, parts):
        s.hit_ratio = 1.0 if math.isinf(t_c) else float(s.p @ -np.expm1(-part * t_c))


class RedisStore:
    """One Redis: its single thread, its cache, its call sites."""

    def slowdown(self, factor: float) -> None:
        """Its thread runs at ``1 / factor`` from now on (``datastore_slowdown``; 1 ends it)."""
        self.server.speed = 1.0 / factor

    def __init__(self, env, name: str, spec, executor, scenario, streams):
        self.env = env
        self.name = name
        self.kind = spec.kind
        self.executor = executor
        self.down = None  # (end, mode) during an outage
        self.server = FifoServer(env)
        self.op_time = float(spec.op_time)
        self.round_trip = float(spec.round_trip)
        self.capacity = math.inf if spec.maxmemory is None else spec.maxmemory // spec.value_size
        self.lru = spec.cache_model == "lru" and spec.maxmemory is not None
        self.sites: dict = {}
        for i, (key, (step, share)) in enumerate(lookup_shares(scenario, name).items()):
            self.sites[key] = CacheSite(step, i, share)
        sites = list(self.sites.values())
        shared_cache_hit_ratios(sites, self.capacity, spec.maxmemory_policy if spec.maxmemory is not None else "")
        self.uniform = Uniforms(streams(f"datastores/{name}/hits"))
        if self.lru:
            self.cache: OrderedDict = OrderedDict()
            self.key_rng = streams(f"datastores/{name}/keys")
            for s in sites:
                s.cdf = np.cumsum(s.p)
        self.lookups = self.hits = 0  # since the warm-up
        self.w_lookups = self.w_hits = 0  # this interval

    def handle(self, flow, op) -> bool:
        if self.down is not None:
            return refuse_while_down(self, flow)
        step = op[3]
        site = self.sites.get(id(step)) if step.key_space is not None else None
        hit = True
        if site is not None:
            hit = self._lookup(site)
        elif self.lru and step.key_space is not None and step.write:
            self._touch(step)
        done = self.server.schedule(self.op_time) + self.round_trip
        miss = None if hit else op[4]
        call_later_fn(self.env, done - self.env.now, self._reply, (flow, miss))
        return False

    def _lookup(self, site: CacheSite) -> bool:
        if self.lru:
            key = site.index << 40 | self._draw(site)
            cache = self.cache
            if key in cache:
                cache.move_to_end(key)
                hit = True
            else:
                cache[key] = None
                if len(cache) > self.capacity:
                    cache.popitem(last=False)
                hit = False
        else:
            hit = self.uniform() < site.hit_ratio
        site.lookups += 1
        self.lookups += 1
        self.w_lookups += 1
        if hit:
            site.hits += 1
            self.hits += 1
            self.w_hits += 1
        return hit

    def _draw(self, site: CacheSite) -> int:
        i = site.i
        if i >= len(site.buf):
            site.buf = np.searchsorted(site.cdf, self.key_rng.random(BLOCK) * site.cdf[-1], side="right").tolist()
            i = 0
        site.i = i + 1
        return site.buf[i]

    def _touch(self, step) -> None:
        """A write to a cached key space (SET): the key becomes most recently used."""
        for s in self.sites.values():
            if s.step.key_space == step.key_space and s.step.key_alpha == step.key_alpha:
                key = s.index << 40 | self._draw(s)
                self.cache[key] = None
                self.cache.move_to_end(key)
                if len(self.cache) > self.capacity:
                    self.cache.popitem(last=False)
                return

    def _reply(self, arg) -> None:
        flow, miss = arg
        if miss is None:
            self.executor.advance(flow)
            return
        self.server.schedule(self.op_time)  # the cache-aside SET after the backing read
        flow.pending = 1
        self.executor.advance(Flow(flow.task, miss, flow))

    def flush(self) -> None:
        if self.lru:
            self.cache.clear()


# ---- external APIs ------------------------------------------------------------------------------------
class Semaphore:
    __slots__ = ("in_use", "waiters", "max_in_use")

    def __init__(self):
        self.in_use = 0
        self.waiters: deque = deque()
        self.max_in_use = 0


class ExternalStore:
    """One external API: per-process semaphores, the provider's rate limit, retries."""

    def slowdown(self, factor: float) -> None:
        """Its latency × ``factor`` from now on (``datastore_slowdown``; 1 ends it)."""
        self.latency_factor = float(factor)

    def __init__(self, env, name: str, spec, executor, fail_task, streams):
        self.env = env
        self.name = name
        self.kind = spec.kind
        self.executor = executor
        self.down = None  # (end, mode) during an outage
        self.fail_task = fail_task
        self.latency = Sampler(spec.latency, streams(f"datastores/{name}/latency"))
        self.latency_factor = 1.0  # a datastore_slowdown's factor while it lasts
        self.concurrency = spec.concurrency
        self.retries = spec.retries
        self.backoff = float(spec.retry_backoff)
        self.window = float(spec.rate_window)
        self.budget = None if spec.rate_limit is None else max(1, math.floor(spec.rate_limit * self.window + 1e-9))
        self.code = REASON_CODE["rate_limited"]
        self.sems: dict = {}
        self.win_index = -1
        self.win_count = 0
        self.win_max = 0  # most requests accepted in one window
        self.in_flight = 0
        self.calls = self.rejected = self.failed = 0  # since the warm-up (reset by the coordinator)
        self.w_rejected = 0
        self.max_in_use = 0  # most slots held in one process's semaphore

    def handle(self, flow, op) -> bool:
        if self.down is not None:
            return refuse_while_down(self, flow)
        proc = flow.task.proc
        sem = self.sems.get(proc)
        if sem is None:
            sem = self.sems[proc] = Semaphore()
        self.calls += 1
        if sem.in_use < self.concurrency and not sem.waiters:
            sem.in_use += 1
            if sem.in_use > self.max_in_use:
                self.max_in_use = sem.in_use
            self._attempt(sem, flow, 0)
        else:
            sem.waiters.append(flow)
        return False

    def _attempt(self, sem: Semaphore, flow, tries: int) -> None:
        if not flow.task.alive:
            self._release(sem)
            return
        if self.budget is not None:
            w = math.floor(self.env.now / self.window)
            if w != self.win_index:
                self.win_index, self.win_count = w, 0
            if self.win_count >= self.budget:
                self.rejected += 1
                self.w_rejected += 1
                if tries < self.retries:
                    call_later(self.env, self.backoff * 2**tries, lambda _e: self._attempt(sem, flow, tries + 1))
                    return
                self.failed += 1
                self._release(sem)
                self.fail_task(flow.task, self.code)
                return
            self.win_count += 1
            if self.win_count > self.win_max:
                self.win_max = self.win_count
        self.in_flight += 1
        call_later_fn(self.env, self.latency() * self.latency_factor, self._done, (sem, flow))

    def _done(self, arg) -> None:
        sem, flow = arg
        self.in_flight -= 1
        self._release(sem)
        self.executor.advance(flow)

    def _release(self, sem: Semaphore) -> None:
        sem.in_use -= 1
        waiters = sem.waiters
        while waiters:
            flow = waiters.popleft()
            if flow.task.alive:
                sem.in_use += 1
                self._attempt(sem, flow, 0)
                return

    def proc_gone(self, proc) -> None:
        self.sems.pop(proc, None)

    def waiting(self) -> int:
        return sum(len(s.waiters) for s in self.sems.values())
