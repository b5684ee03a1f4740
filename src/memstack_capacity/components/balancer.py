"""Load balancing over a deployment's ready endpoints.

- ``round_robin``: ingress-nginx's default; a cursor over the endpoint list.
- ``random``: kube-proxy's iptables mode picks uniformly at random.
- ``least_request``: power of two choices on in-flight requests (Envoy's LEAST_REQUEST
  default, choice_count 2).
- ``ewma``: ingress-nginx's ``load-balance: ewma``: two random endpoints, the lower
  ``ewma_latency × (in_flight + 1)`` wins; the EWMA decays with a 10 s time constant.
"""

from __future__ import annotations

import math

from memstack_capacity.components.sampling import Uniforms

EWMA_DECAY_S = 10.0


class Balancer:
    """Picks a pod for each request among the endpoints of one deployment."""

    def __init__(self, runtime, policy: str, rng):
        self.runtime = runtime
        self.policy = policy
        self.uniform = Uniforms(rng)
        self.cursor = 0
        self.ewma: dict = {}
        self.pick = {
            "round_robin": self._round_robin,
            "random": self._random,
            "least_request": self._least_request,
            "ewma": self._ewma,
        }[policy]

    def _round_robin(self, now: float):
        eps = self.runtime.endpoints
        if not eps:
            return None
        i = self.cursor % len(eps)
        self.cursor = i + 1
        return eps[i]

    def _random(self, now: float):
        eps = self.runtime.endpoints
        if not eps:
            return None
        return eps[int(self.uniform() * len(eps))]

    def _two(self):
        eps = self.runtime.endpoints
        n = len(eps)
        if n == 0:
            return None, None
        if n == 1:
            return eps[0], eps[0]
        i = int(self.uniform() * n)
        j = int(self.uniform() * (n - 1))
        if j >= i:
            j += 1
        return eps[i], eps[j]

    def _least_request(self, now: float):
        a, b = self._two()
        if a is None:
            return None
        return a if a.inflight + len(a.backlog) <= b.inflight + len(b.backlog) else b

    def _ewma(self, now: float):
        a, b = self._two()
        if a is None:
            return None
        return a if self._score(a, now) <= self._score(b, now) else b

    def _score(self, pod, now: float) -> float:
        value, _ = self._decayed(pod, now)
        return value * (pod.inflight + len(pod.backlog) + 1)

    def _decayed(self, pod, now: float):
        value, t = self.ewma.get(pod, (0.0, now))
        return value * math.exp(-(now - t) / EWMA_DECAY_S), now

    def observe(self, pod, latency_s: float, now: float) -> None:
        """Feed a response time back (ewma only)."""
        if self.policy != "ewma":
            return
        value, t = self.ewma.get(pod, (latency_s, now))
        w = math.exp(-(now - t) / EWMA_DECAY_S)
        self.ewma[pod] = (value * w + latency_s * (1.0 - w), now)
