"""What a run records, as flat arrays appended during the run and turned into frames after.

Hot paths append numbers to ``array('d')``/``array('i')`` columns; nothing here
knows pandas. Status and reason codes are small integers whose labels are below.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

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
    """One row per finished request (client-visible outcome)."""

    cls: array = field(default_factory=lambda: array("i"))
    t_arrival: array = field(default_factory=lambda: array("d"))
    t_end: array = field(default_factory=lambda: array("d"))
    status: array = field(default_factory=lambda: array("b"))
    reason: array = field(default_factory=lambda: array("b"))
    pod: array = field(default_factory=lambda: array("i"))

    def add(self, cls: int, t_arrival: float, t_end: float, status: int, reason: int, pod: int) -> None:
        self.cls.append(cls)
        self.t_arrival.append(t_arrival)
        self.t_end.append(t_end)
        self.status.append(status)
        self.reason.append(reason)
        self.pod.append(pod)

    def __len__(self) -> int:
        return len(self.cls)


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
