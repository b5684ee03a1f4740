"""The workload block: who sends requests, how often, and what each request does.

Closed users (``users:``) model the deployment guide's "concurrent users": each
loops think → request → response. Open arrivals (``arrivals:``) model a request
rate. A request class is a weighted list of steps; jobs (background work) are
steps too.
"""

from __future__ import annotations

import math
from typing import Annotated, Union

from pydantic import Discriminator, Field, Tag, model_validator

from memstack_capacity.errors import Problem
from memstack_capacity.scenario.base import (MAX_REPEAT, MAX_SECONDS, Count, Cv, Duration, Factor, Memory, Number,
                                             PositiveDuration, SpecModel, raise_problems)
from memstack_capacity.scenario.distributions import Dist

#: The most distinct keys a Redis call may read (its popularity table is held in memory).
MAX_KEY_SPACE = 10**7
#: The largest Zipf exponent of key popularity (web caches see about 0.6 to 1).
MAX_KEY_ALPHA = 100.0

STEP_KINDS = ("cpu", "call", "external", "parallel", "enqueue", "repeat")


class CpuStep(SpecModel):
    """Core-seconds of Python work on the pod (shares the process's one core)."""

    cpu: Dist
    repeat: Count = Field(1, ge=1, le=MAX_REPEAT, description="run this step this many times in a row")


class CallStep(SpecModel):
    """A datastore operation: holds a pooled connection for its duration."""

    call: str = Field(description="the name of a datastore in `datastores`")
    time: Dist | None = Field(None, description="server-side execution time of one operation")
    write: bool = Field(False, description="a write (PostgreSQL commit / Neo4j MERGE); affects caching only")
    key_space: Count | None = Field(None, ge=1, le=MAX_KEY_SPACE,
                                    description="Redis: number of distinct keys this call reads")
    key_alpha: Number | None = Field(None, ge=0, le=MAX_KEY_ALPHA, description="Redis: Zipf exponent of key popularity")
    miss: list["Step"] | None = Field(None, description="Redis: steps run on a cache miss (the backing call)")
    repeat: Count = Field(1, ge=1, le=MAX_REPEAT)


class ExternalStep(SpecModel):
    """A call to an external API (LLM, embeddings) named in `datastores`."""

    external: str
    repeat: Count = Field(1, ge=1, le=MAX_REPEAT)


class ParallelStep(SpecModel):
    """A group of steps started together and awaited together (asyncio.gather)."""

    parallel: list["Step"] = Field(min_length=1)
    repeat: Count = Field(1, ge=1, le=MAX_REPEAT)


class EnqueueStep(SpecModel):
    """Start a background job (a Temporal workflow) and carry on without waiting."""

    enqueue: str = Field(description="the name of a job in `workload.jobs`")
    repeat: Count = Field(1, ge=1, le=MAX_REPEAT)


class RepeatStep(SpecModel):
    """A block of steps run `repeat` times in sequence."""

    repeat: Count = Field(ge=1, le=MAX_REPEAT)
    steps: list["Step"] = Field(min_length=1)


def _step_kind(value: object) -> str | None:
    if isinstance(value, dict):
        kinds = [k for k in STEP_KINDS if k in value and k != "repeat"]
        if len(kinds) == 1:
            return kinds[0]
        if not kinds and "repeat" in value:
            return "repeat"
        return None
    for kind, model in _STEP_MODELS.items():
        if isinstance(value, model):
            return kind
    return None


Step = Annotated[
    Union[
        Annotated[CpuStep, Tag("cpu")],
        Annotated[CallStep, Tag("call")],
        Annotated[ExternalStep, Tag("external")],
        Annotated[ParallelStep, Tag("parallel")],
        Annotated[EnqueueStep, Tag("enqueue")],
        Annotated[RepeatStep, Tag("repeat")],
    ],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of the keys cpu, call, external, parallel, enqueue "
        "(or repeat with steps)",
    ),
]

_STEP_MODELS = {
    "cpu": CpuStep,
    "call": CallStep,
    "external": ExternalStep,
    "parallel": ParallelStep,
    "enqueue": EnqueueStep,
    "repeat": RepeatStep,
}
for _model in (CallStep, ParallelStep, RepeatStep):
    _model.model_rebuild()


def _backoff_problem(first: float, factor: float, attempts: int, names: str) -> None:
    """A back-off that grows ``first × factor^n`` must stay a number of seconds for every attempt."""
    if first > 0 and factor > 1 and math.log(first) + (attempts - 1) * math.log(factor) > math.log(MAX_SECONDS):
        raise ValueError(f"{names}: the wait before the last attempt would exceed 100 years; "
                         "give fewer attempts or a smaller multiplier")


class RetryPolicy(SpecModel):
    """Client retries after a failed request: feeds load back in (retry storms)."""

    attempts: Count = Field(1, ge=1, le=MAX_REPEAT, description="total attempts including the first")
    backoff: Duration = Field(1.0, description="wait before the first retry")
    multiplier: Factor = Field(2.0, ge=1.0)
    jitter: Number = Field(0.0, ge=0.0, le=1.0, description="± fraction of the back-off drawn uniformly")

    @model_validator(mode="after")
    def _backoff_finite(self) -> "RetryPolicy":
        _backoff_problem(self.backoff, self.multiplier, self.attempts, "backoff × multiplier^(attempts - 1)")
        return self


class UsersPoint(SpecModel):
    at: Duration
    users: Count = Field(ge=0)


class RatePoint(SpecModel):
    at: Duration
    rps: Number = Field(ge=0)


def _check_increasing(points: list, what: str) -> None:
    times = [p.at for p in points]
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"{what} points must be in time order (got at = {times})")


class ClosedUsers(SpecModel):
    """A closed population: `users(t)` piecewise linear, each user thinking between requests."""

    profile: list[UsersPoint] = Field(min_length=1)
    think_time: Dist
    retry: RetryPolicy | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "ClosedUsers":
        _check_increasing(self.profile, "profile")
        return self


class OpenArrivals(SpecModel):
    """An open arrival process: `rate(t)` piecewise linear, Poisson unless `cv` says otherwise."""

    profile: list[RatePoint] = Field(min_length=1)
    cv: Cv = Field(1.0, gt=0, description="coefficient of variation of inter-arrival times (1 = Poisson), at most 100")

    @model_validator(mode="after")
    def _ordered(self) -> "OpenArrivals":
        _check_increasing(self.profile, "profile")
        return self


class RequestClass(SpecModel):
    name: str = Field(min_length=1)
    weight: Number = Field(ge=0)
    memory: Memory = Field(0, description="memory the request holds while in flight")
    steps: list[Step] = Field(min_length=1)


class JobRetry(SpecModel):
    """Temporal activity retry policy."""

    maximum_attempts: Count = Field(3, ge=1, le=MAX_REPEAT)
    initial_interval: Duration = 1.0
    backoff_coefficient: Factor = Field(2.0, ge=1.0)
    maximum_interval: Duration = 600.0

    @model_validator(mode="after")
    def _backoff_finite(self) -> "JobRetry":
        _backoff_problem(self.initial_interval, self.backoff_coefficient, self.maximum_attempts,
                         "initial_interval × backoff_coefficient^(maximum_attempts - 1)")
        return self


class JobClass(SpecModel):
    name: str = Field(min_length=1)
    memory: Memory = 0
    start_to_close_timeout: PositiveDuration = 600.0
    retry: JobRetry = JobRetry()
    steps: list[Step] = Field(min_length=1)


class Workload(SpecModel):
    users: ClosedUsers | None = None
    arrivals: OpenArrivals | None = None
    timeout: PositiveDuration = Field(60.0, description="ingress proxy-read-timeout: 504 after this")
    requests: list[RequestClass] = Field(min_length=1)
    jobs: list[JobClass] = []

    @model_validator(mode="after")
    def _one_source_and_weights(self) -> "Workload":
        problems: list[Problem] = []
        if (self.users is None) == (self.arrivals is None):
            given = "both" if self.users is not None else "neither"
            problems.append(
                Problem("", f"give exactly one of `users` (closed model) or `arrivals` (open model); got {given}")
            )
        if sum(r.weight for r in self.requests) <= 0:
            weights = [r.weight for r in self.requests]
            problems.append(Problem("requests", f"request weights must sum to more than zero (got weights {weights})"))
        if self.users is not None and self.users.think_time.expected() == 0:
            for i, request in enumerate(self.requests):
                if request.weight > 0 and not any(_takes_time(s) for s in iter_steps(request.steps)):
                    problems.append(Problem(f"requests[{i}]", "takes no time (no cpu or call time above zero) while "
                                            "think_time is zero, so simulated time would never advance; give the "
                                            "users a think_time or the request a step that takes time"))
        for what, items in (("requests", self.requests), ("jobs", self.jobs)):
            names = [i.name for i in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(Problem(what, f"names must be unique (duplicated: {', '.join(dupes)})"))
        if problems:
            raise_problems(problems)
        return self


def _takes_time(step) -> bool:
    """Whether a step surely takes some time: CPU or a datastore's time above zero, or an external call."""
    if isinstance(step, CpuStep):
        return step.cpu.expected() > 0
    if isinstance(step, CallStep):
        return step.time is not None and step.time.expected() > 0
    return isinstance(step, ExternalStep)


def iter_steps(steps: list) -> "list":
    """Every step in a list, nested ones included (parallel, repeat blocks, Redis miss paths)."""
    out = []
    for step in steps:
        out.append(step)
        if isinstance(step, ParallelStep):
            out.extend(iter_steps(step.parallel))
        elif isinstance(step, RepeatStep):
            out.extend(iter_steps(step.steps))
        elif isinstance(step, CallStep) and step.miss:
            out.extend(iter_steps(step.miss))
    return out
