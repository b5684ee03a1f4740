"""What a run records, as flat arrays appended during the run and turned into frames after.

Hot paths append numbers to ``array('d')``/``array('i')`` columns; nothing here
knows pandas. Status and reason codes are small integers whose labels are below.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from memstack_capacity.components.sketch import QuantileSketch

STATUS_LABELS = ("ok", "503", "504", "502", "500")
OK, E503, E504, E502, E500 = range(5)

REASON_LABELS = (
    "ok",
    "backlog_full",
    "no_endpoints",
    "timeout",
    "oom_killed",
    "container_restarted",
    "pod_terminated",
    "pool_timeout",
    "connection_refused",
    "rate_limited",
    "acquisition_timeout",
    "node_lost",
)
REASON_CODE = {label: i for i, label in enumerate(REASON_LABELS)}


@dataclass
class RequestLog:
    """One row per finished request (client-visible outcome), or one per ``every`` of them.

    A run whose requests would not fit in memory keeps every N-th answer (N = ``every``,
    chosen before the run from the expected request count); the summary's figures then come
    from :class:`RequestStats`, which sees every request.
    """

    every: int = 1
    seen: int = 0
    cls: array = field(default_factory=lambda: array("i"))
    t_arrival: array = field(default_factory=lambda: array("d"))
    t_end: array = field(default_factory=lambda: array("d"))
    status: array = field(default_factory=lambda: array("b"))
    reason: array = field(default_factory=lambda: array("b"))
    pod: array = field(default_factory=lambda: array("i"))

    def add(self, cls: int, t_arrival: float, t_end: float, status: int, reason: int, pod: int) -> None:
        self.seen += 1
        if self.every != 1 and self.seen % self.every:
            return
        self.cls.append(cls)
        self.t_arrival.append(t_arrival)
        self.t_end.append(t_end)
        self.status.append(status)
        self.reason.append(reason)
        self.pod.append(pod)

    def __len__(self) -> int:
        return len(self.cls)


class RequestStats:
    """Exact counts and a latency sketch per request class, for requests arriving after the warm-up.

    Sees every answer, so its counts are exact whatever the log keeps; its percentiles are
    within the sketch's relative error (:mod:`memstack_capacity.components.sketch`).
    """

    def __init__(self, n_classes: int, warmup: float):
        self.warmup = warmup
        self.counts = [[0] * len(STATUS_LABELS) for _ in range(n_classes)]
        self.reasons = [[0] * len(REASON_LABELS) for _ in range(n_classes)]
        self.ok_latency = [QuantileSketch() for _ in range(n_classes)]

    def add(self, cls: int, t_arrival: float, t_end: float, status: int, reason: int) -> None:
        if t_arrival < self.warmup:
            return
        self.counts[cls][status] += 1
        self.reasons[cls][reason] += 1
        if status == OK:
            self.ok_latency[cls].add(t_end - t_arrival)


@dataclass
class SampleLog:
    """Long-format samples: (t_s, component, metric, value)."""

    t_s: array = field(default_factory=lambda: array("d"))
    component: list = field(default_factory=list)
    metric: list = field(default_factory=list)
    value: array = field(default_factory=lambda: array("d"))

    def add(self, t: float, component: str, metric: str, value: float) -> None:
        self.t_s.append(t)
        self.component.append(component)
        self.metric.append(metric)
        self.value.append(float(value))


@dataclass
class PodEvent:
    t_s: float
    deployment: str
    pod: str
    event: str
    detail: str = ""


@dataclass
class Recorder:
    """Everything one run writes down."""

    requests: RequestLog = field(default_factory=RequestLog)
    jobs: RequestLog = field(default_factory=RequestLog)
    samples: SampleLog = field(default_factory=SampleLog)
    pod_events: list = field(default_factory=list)
    scaling: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def pod_event(self, t: float, deployment: str, pod: str, event: str, detail: str = "") -> None:
        self.pod_events.append(PodEvent(t, deployment, pod, event, detail))
