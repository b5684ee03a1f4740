"""Where requests come from: closed users who think between requests, or an open arrival rate.

Open arrivals are a non-homogeneous renewal process by time change: unit-mean
inter-arrival draws (exponential for Poisson, gamma for another cv) are mapped
through the inverse of the cumulative rate Λ(t) = ∫ rate, which is exact for a
piecewise-linear rate (Λ is piecewise quadratic and inverts in closed form).

Closed users follow ``users(t)``, piecewise linear: a user is added each time the
profile crosses the next whole number upwards, and one retires (after its current
request) each time it crosses one downwards. Each user loops think → pick a request
class by weight → send → wait for the answer or the timeout → think, with retries
after a failure when a retry policy is given.
"""

from __future__ import annotations

import bisect
import math

from memstack_capacity.components.clock import call_later, call_later_fn
from memstack_capacity.components.flows import Task
from memstack_capacity.components.sampling import Sampler, Uniforms, unit_renewal_drawer


class RequestMix:
    """Picks a request class by weight and builds its task."""

    def __init__(self, classes: list, programs: list[tuple], rng):
        total = sum(c.weight for c in classes)
        acc, self.cumulative = 0.0, []
        for c in classes:
            acc += c.weight / total
            self.cumulative.append(acc)
        self.cumulative[-1] = 1.0
        self.memory = [c.memory for c in classes]
        self.programs = programs
        self.uniform = Uniforms(rng)

    def make(self, now: float, owner, cls: int | None = None) -> Task:
        if cls is None:
            cls = bisect.bisect_right(self.cumulative, self.uniform())
            if cls >= len(self.programs):
                cls = len(self.programs) - 1
        return Task("request", cls, now, owner, self.memory[cls], self.programs[cls])


class PiecewiseLinearRate:
    """rate(t) through the points; constant before the first and after the last."""

    def __init__(self, points: list[tuple[float, float]]):
        self.t = [float(t) for t, _ in points]
        self.r = [float(r) for _, r in points]

    def rate(self, t: float) -> float:
        t_pts, r_pts = self.t, self.r
        if t <= t_pts[0]:
            return r_pts[0]
        if t >= t_pts[-1]:
            return r_pts[-1]
        i = bisect.bisect_right(t_pts, t) - 1
        t0, t1 = t_pts[i], t_pts[i + 1]
        return r_pts[i] + (r_pts[i + 1] - r_pts[i]) * (t - t0) / (t1 - t0)

    def segments(self):
        """(start, end, rate at start, slope) pieces covering [0, ∞)."""
        t_pts, r_pts = self.t, self.r
        start = 0.0
        if t_pts[0] > 0:
            yield 0.0, t_pts[0], r_pts[0], 0.0
            start = t_pts[0]
        for i in range(len(t_pts) - 1):
            t0, t1 = t_pts[i], t_pts[i + 1]
            if t1 <= t0:
                continue
            a = max(t0, start)
            if t1 > a:
                slope = (r_pts[i + 1] - r_pts[i]) / (t1 - t0)
                yield a, t1, r_pts[i] + slope * (a - t0), slope
        yield max(t_pts[-1], start), math.inf, r_pts[-1], 0.0


class InverseIntensity:
    """Maps unit-rate epochs to times: Λ⁻¹ for a piecewise-linear rate, walked forward."""

    def __init__(self, rate: PiecewiseLinearRate):
        self._segments = rate.segments()
        self._load_next()
        self.base = 0.0  # Λ at the start of the current segment

    def _load_next(self) -> None:
        self.a, self.b, self.ra, self.k = next(self._segments)

    def time_of(self, big_lambda: float) -> float:
        """The t with Λ(t) = big_lambda (non-decreasing calls); inf if the rate is zero from here on."""
        while True:
            a, b, ra, k = self.a, self.b, self.ra, self.k
            seg_mass = math.inf if b == math.inf else ra * (b - a) + 0.5 * k * (b - a) ** 2
            need = big_lambda - self.base
            if need <= seg_mass:
                if need <= 0:
                    return a
                if k == 0.0:
                    return a + need / ra if ra > 0 else math.inf
                disc = ra * ra + 2.0 * k * need
                return a + 2.0 * need / (ra + math.sqrt(max(disc, 0.0)))
            if b == math.inf:
                return math.inf
            self.base += seg_mass
            self._load_next()


class OpenSource:
    """Open arrivals: each one a new request sent to the ingress."""

    def __init__(self, env, spec, mix: RequestMix, ingress, rng, horizon: float):
        self.env = env
        self.mix = mix
        self.ingress = ingress
        self.horizon = horizon
        self.draw = unit_renewal_drawer(spec.cv, rng)
        self.inverse = InverseIntensity(PiecewiseLinearRate([(p.at, p.rps) for p in spec.profile]))
        self.epoch = 0.0

    def start(self) -> None:
        self._schedule_next()

    def _schedule_next(self) -> None:
        self.epoch += self.draw()
        t = self.inverse.time_of(self.epoch)
        if t <= self.horizon:
            call_later(self.env, t - self.env.now, self._arrive)

    def _arrive(self, _event) -> None:
        self.ingress.send(self.mix.make(self.env.now, None))
        self._schedule_next()


class User:
    """One closed-loop user."""

    __slots__ = ("pop", "retiring", "attempt", "cls")

    def __init__(self, pop):
        self.pop = pop
        self.retiring = False
        self.attempt = 1
        self.cls = None

    def answered(self, task, ok: bool) -> None:
        self.pop.answered(self, task, ok)


class ClosedPopulation:
    """users(t) closed-loop users with think time and optional retries."""

    def __init__(self, env, spec, mix: RequestMix, ingress, rng, horizon: float):
        self.env = env
        self.spec = spec
        self.mix = mix
        self.ingress = ingress
        self.horizon = horizon
        self.think = Sampler(spec.think_time, rng)
        self.uniform = Uniforms(rng)
        self.active: list[User] = []
        self.retry = spec.retry

    def start(self) -> None:
        points = [(p.at, p.users) for p in self.spec.profile]
        initial = points[0][1] if points[0][0] <= 0 else 0
        for _ in range(int(initial)):
            self._add_user(first=True)
        for t, delta in user_changes(points, self.horizon):
            call_later(self.env, t, self._change_add if delta > 0 else self._change_remove)

    def _change_add(self, _event) -> None:
        self._add_user(first=False)

    def _change_remove(self, _event) -> None:
        for user in reversed(self.active):
            if not user.retiring:
                user.retiring = True
                self.active.remove(user)
                return

    def _add_user(self, first: bool) -> None:
        user = User(self)
        self.active.append(user)
        # Users present at t=0 are spread over their first think time (no synchronised burst).
        delay = self.think() * self.uniform() if first else 0.0
        call_later_fn(self.env, delay, self._send, user)

    def _send(self, user: User) -> None:
        if user.retiring:
            return
        task = self.mix.make(self.env.now, user, user.cls)
        task.attempt = user.attempt
        self.ingress.send(task)

    def answered(self, user: User, task, ok: bool) -> None:
        retry = self.retry
        if not ok and retry is not None and user.attempt < retry.attempts:
            backoff = retry.backoff * retry.multiplier ** (user.attempt - 1)
            if retry.jitter:
                backoff *= 1.0 + retry.jitter * (2.0 * self.uniform() - 1.0)
            user.attempt += 1
            user.cls = task.cls
            call_later_fn(self.env, backoff, self._send, user)
            return
        user.attempt = 1
        user.cls = None
        call_later_fn(self.env, self.think(), self._send, user)


def user_changes(points: list[tuple[float, int]], horizon: float) -> list[tuple[float, int]]:
    """Times at which a piecewise-linear users(t) crosses a whole number, with +1 / -1."""
    changes: list[tuple[float, int]] = []
    for (t0, u0), (t1, u1) in zip(points, points[1:]):
        if t1 <= t0 or u1 == u0:
            if t1 == t0 and u1 != u0 and t0 <= horizon:  # a step
                changes.extend([(t0, 1 if u1 > u0 else -1)] * abs(int(u1) - int(u0)))
            continue
        step = 1 if u1 > u0 else -1
        count = abs(int(u1) - int(u0))
        for j in range(1, count + 1):
            level = u0 + step * j
            t = t0 + (level - u0) / (u1 - u0) * (t1 - t0)
            if t <= horizon:
                changes.append((t, step))
    changes.sort(key=lambda c: c[0])
    return changes
