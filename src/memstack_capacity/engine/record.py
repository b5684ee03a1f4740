"""What every engine hands to the results layer: one typed record of one run (plain data, no pandas)."""

from __future__ import annotations

from dataclasses import dataclass, field

from memstack_capacity.components.recorder import Recorder, RequestStats
from memstack_capacity.scenario.models import Scenario


@dataclass
class DeploymentTotals:
    """A deployment's totals over the whole run."""

    pod_seconds: float
    oom_kills: int
    restarts: int
    #: ∫ Σ pods' requests dt over the run: core-seconds and byte-seconds (what a cost by requests counts).
    cpu_request_seconds: float = 0.0
    memory_request_seconds: float = 0.0


@dataclass
class FlowFigures:
    """What a flow model computes in place of a per-request record (docs/fluid.md).

    ``requests`` is the summary's ``requests`` block; ``details`` the flow model's own
    figures and caveats (summary.json's ``fluid``).
    """

    requests: dict
    details: dict


@dataclass
class RunRecord:
    """One run of one scenario with one seed, whichever engine ran it.

    ``recorder`` holds the time series, the per-request and per-job logs, the scaling and pod
    events; ``request_stats`` the exact counts and latency sketches per class (None when the
    log keeps every request); ``jobs`` and ``datastores`` the summary's blocks of the same
    names (None when the scenario has none); ``flow`` is set only by a flow model.
    ``nodes_requested_at`` holds when the node autoscaler asked for each node it added (the
    scenario's ``cluster.nodes`` are there from t = 0).
    """

    scenario: Scenario
    seed: int
    engine: str
    recorder: Recorder
    arrived: int
    in_flight_end: int
    deployments: dict[str, DeploymentTotals] = field(default_factory=dict)
    request_stats: RequestStats | None = None
    jobs: dict | None = None
    datastores: dict | None = None
    flow: FlowFigures | None = None
    nodes_requested_at: list[float] = field(default_factory=list)
    wall_s: float = 0.0
