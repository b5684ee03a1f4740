"""Datastores, the cluster, events in time, and the targets a run is judged by."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, field_validator, model_validator

from memstack_capacity.scenario import quantities as q
from memstack_capacity.scenario.base import (MAX_REPEAT, Count, Cpu, Duration, Factor, Memory, Number,
                                             PositiveDuration, SpecModel)
from memstack_capacity.scenario.distributions import Dist


class QueuePoolSpec(SpecModel):
    """SQLAlchemy QueuePool settings, per process (defaults are SQLAlchemy's)."""

    pool_size: Count = Field(5, ge=0)
    max_overflow: Count = Field(10, ge=-1, description="-1 means no limit")
    pool_timeout: PositiveDuration = 30.0
    pool_pre_ping: bool = False
    pool_recycle: Duration | None = Field(None, description="seconds after which a connection is replaced")


class PostgresSpec(SpecModel):
    kind: Literal["postgresql"]
    max_connections: Count = Field(100, ge=1)
    superuser_reserved_connections: Count = Field(3, ge=0)
    cores: Count = Field(4, ge=1)
    connect_time: Duration = Field(0.005, description="time to open a new connection (TCP + auth)")
    round_trip: Duration = Field(0.0005, description="network round trip (pre-ping costs one)")
    pool: QueuePoolSpec = QueuePoolSpec()
    session: bool = Field(False, description="hold one connection per request (or job) from its first call to its end, "
                          "as an AsyncSession opened by `get_db` does; false: one checkout per call")


class Neo4jPoolSpec(SpecModel):
    max_connection_pool_size: Count = Field(100, ge=1)
    connection_acquisition_timeout: PositiveDuration = 60.0


class Neo4jSpec(SpecModel):
    kind: Literal["neo4j"]
    cores: Count = Field(4, ge=1)
    connect_time: Duration = 0.005
    round_trip: Duration = Field(0.0005, description="network round trip added to every query")
    pool: Neo4jPoolSpec = Neo4jPoolSpec()


class RedisSpec(SpecModel):
    kind: Literal["redis"]
    maxmemory: Memory | None = None
    maxmemory_policy: Literal["noeviction", "allkeys-lru"] = "noeviction"
    value_size: Memory = Field(1024, description="mean bytes per cached key (with overhead)")
    op_time: Duration = Field(0.00002, description="service time of one command on Redis' single thread")
    round_trip: Duration = 0.0005
    cache_model: Literal["che", "lru"] = Field("che", description="che: hits drawn with Che's LRU approximation; "
                                               "lru: an exact LRU over Zipf-drawn keys (slower, for validation)")


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")


def parse_rate(value: object) -> float:
    """Requests per second from ``3000/min``, ``50/s`` or a number (per second)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _RATE.match(value)
        if match:
            per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
            return float(match.group(1)) / per[match.group(2)]
    raise ValueError("must be a rate such as 3000/min, 50/s or a number per second")


class ExternalSpec(SpecModel):
    """An external API (LLM, embeddings): latency, per-process concurrency, provider rate limit."""

    kind: Literal["external"]
    latency: Dist
    concurrency: Count = Field(8, ge=1, description="in-flight calls per process (asyncio.Semaphore)")
    rate_limit: Number | None = Field(None, gt=0, description="provider limit, e.g. 3000/min; beyond it: 429")
    retries: Count = Field(3, ge=0, le=MAX_REPEAT, description="retries after a 429 (litellm num_retries)")
    retry_backoff: Duration = 1.0
    rate_window: PositiveDuration = Field(1.0, description="the provider counts requests in fixed windows this long; "
                                          "at most rate_limit × rate_window are accepted per window")

    _rate = field_validator("rate_limit", mode="before")(classmethod(lambda cls, v: v if v is None else parse_rate(v)))


class NodeSpec(SpecModel):
    cpu: Cpu = 8.0
    memory: Memory = 32 * 2**30


class NodeAutoscaler(SpecModel):
    """cluster-autoscaler: adds nodes for pods Pending for lack of room (scale-up only)."""

    max_nodes: Count = Field(ge=1)
    provisioning_delay: Duration = Field(120.0, description="from the scale-up decision until the node is Ready")
    scan_interval: PositiveDuration = Field(10.0, description="cluster-autoscaler --scan-interval (10s)")


class MetricsErrors(SpecModel):
    """What makes real resource metrics imperfect (off unless set)."""

    missing_probability: Number = Field(
        0.0, ge=0.0, le=1.0, description="per pod and scrape: the pod's stats are missing (\"no metrics returned\"); "
        "metrics-server then has no point for it until the next good scrape (CPU: two in a row)")
    cpu_noise_cv: Number = Field(0.0, ge=0.0, le=10.0, description="multiplicative noise on each pod's CPU rate per "
                                 "scrape (lognormal, mean 1): GC, sidecars, the node")
    memory_noise_cv: Number = Field(0.0, ge=0.0, le=10.0, description="the same for the working set")


def _cpu_window(value: object) -> object:
    """``housekeeping``, a duration in seconds, or None (metrics-server's own rate between scrapes)."""
    if value is None or value == "housekeeping":
        return value
    try:
        seconds = q.parse_duration(value)
    except ValueError:
        raise ValueError("must be `housekeeping` (the kubelet's rate between its last two cAdvisor samples) or "
                         "a duration such as 10s (the rate over that window before each scrape)") from None
    if not 0.0 < seconds <= 3600.0:
        raise ValueError("a window must be longer than 0s and at most 1h")
    return seconds


#: ``cluster.metrics_cpu_window``: None, ``housekeeping`` or seconds (written back as ``10s``).
CpuWindow = Annotated[
    Literal["housekeeping"] | float | None,
    BeforeValidator(_cpu_window),
    PlainSerializer(lambda v: v if v is None or isinstance(v, str) else q.format_duration(v), when_used="json"),
]


class Cluster(SpecModel):
    nodes: Count = Field(6, ge=1)
    node: NodeSpec = NodeSpec()
    node_autoscaler: NodeAutoscaler | None = None
    metrics_resolution: PositiveDuration = Field(15.0, description="metrics-server --metric-resolution")
    hpa_sync_period: PositiveDuration = Field(15.0, description="--horizontal-pod-autoscaler-sync-period")
    node_monitor_grace_period: Duration = Field(
        40.0, description="kube-controller-manager --node-monitor-grace-period: an unresponsive node is marked "
        "NotReady (its pods unready, out of the endpoints) this long after it stopped (40s; 50s from 1.32)")
    not_ready_toleration: Duration = Field(
        300.0, description="tolerationSeconds of the default not-ready/unreachable NoExecute tolerations "
        "(--default-not-ready-toleration-seconds): pods are evicted this long after the node went NotReady")

    control_loops: Literal["aligned", "independent"] = Field(
        "independent", description="independent: each loop's phase drawn from the seed, as in a cluster; aligned: "
        "metrics-server scrapes at 0, 15, 30 ... s and each HPA syncs 1 s after a scrape (the best case)")
    metrics_scrape_offset: Duration | None = Field(
        None, description="when metrics-server's first scrape runs (within one metrics_resolution); unset: 0s "
        "aligned, drawn when independent")
    hpa_sync_offset: Duration | None = Field(
        None, description="when each HPA's first sync runs (within one hpa_sync_period); unset: 1s after the "
        "first scrape aligned, drawn per HPA when independent")
    housekeeping_interval: PositiveDuration = Field(
        10.0, description="kubelet --housekeeping-interval: how often cAdvisor samples each container's CPU counter "
        "and working set (10s; jittered up to 2x, 15s for an idle container); with independent control loops "
        "metrics-server reads these samples, so its CPU is the rate between two of them and up to one interval "
        "stale; from 1s to 60s")
    metrics_cpu_window: CpuWindow = Field(
        None, description="how the CPU rate metrics-server serves is taken. Unset (metrics-server 0.5 and later): "
        "metrics-server's own rate between the two points it holds; `housekeeping` (metrics-server before 0.5): "
        "the kubelet's usageNanoCores, the rate between cAdvisor's last two housekeeping samples, copied as is and "
        "replaced at each scrape (needs control_loops: independent); a duration such as 10s: that rate over the "
        "window ending at each scrape (needs control_loops: aligned)")
    metrics_errors: MetricsErrors | None = Field(
        None, description="imperfect metrics: missing pod samples and usage noise (none by default)")
    cpu_cfs_quota: bool = Field(
        True, description="kubelet --cpu-cfs-quota: enforce limits.cpu with CFS bandwidth control (false: CPU "
        "limits are not enforced)")
    cpu_cfs_quota_period: PositiveDuration = Field(
        0.1, description="kubelet --cpu-cfs-quota-period (cpu.cfs_period_us): 100ms; from 1ms to 1s")
    cpu_cfs_burst: Duration = Field(
        0.0, description="cpu.cfs_burst_us of every container: unused quota it may carry into the next period "
        "(the kubelet sets none: 0s); at most the container's quota, limits.cpu x period")
    cpu_cfs_phase: Literal["random", "container_start"] = Field(
        "random", description="where each container's CFS periods start: random (the kernel's period timer runs "
        "on its own clock) or at the container's start")

    @field_validator("metrics_resolution")
    @classmethod
    def _metrics_server_minimum(cls, value: float) -> float:
        if value < 10:
            raise ValueError("metrics-server accepts a metric resolution of 10s or more")
        return value

    @field_validator("housekeeping_interval")
    @classmethod
    def _housekeeping_range(cls, value: float) -> float:
        if not 1.0 <= value <= 60.0:
            raise ValueError("must be from 1s (cAdvisor's own default) to 60s (cAdvisor's default "
                             "max_housekeeping_interval)")
        return value

    @field_validator("metrics_cpu_window")
    @classmethod
    def _cpu_window_needs_its_loops(cls, value, info: ValidationInfo):
        loops = info.data.get("control_loops")
        if value == "housekeeping" and loops == "aligned":
            raise ValueError("`housekeeping` needs control_loops: independent (the kubelet's samples exist only "
                             "there); with aligned loops give a duration such as 10s")
        if isinstance(value, float) and loops == "independent":
            raise ValueError("a duration needs control_loops: aligned; with independent loops use `housekeeping` "
                             "(the window is then the kubelet's own, between two cAdvisor samples)")
        return value

    @field_validator("metrics_scrape_offset", "hpa_sync_offset")
    @classmethod
    def _offset_within_its_period(cls, value: float | None, info: ValidationInfo) -> float | None:
        period = {"metrics_scrape_offset": "metrics_resolution", "hpa_sync_offset": "hpa_sync_period"}[info.field_name]
        length = info.data.get(period)
        if value is not None and length is not None and value >= length:
            raise ValueError(f"must be shorter than {period} ({length:g}s)")
        return value

    @field_validator("cpu_cfs_quota_period")
    @classmethod
    def _kubelet_period_range(cls, value: float) -> float:
        if not 0.001 <= value <= 1.0:
            raise ValueError("the kubelet accepts a CFS quota period from 1ms to 1s")
        return value


# ---- events ---------------------------------------------------------------------------------------
class TrafficSpike(SpecModel):
    """Multiply the arrival rate (open) or the number of users (closed) by `factor` for `duration`."""

    factor: Factor
    duration: PositiveDuration
    ramp: Duration = Field(0.0, description="linear rise at the start and fall at the end (0: a step)")

    @model_validator(mode="after")
    def _ramps_fit(self) -> "TrafficSpike":
        if 2 * self.ramp > self.duration:
            raise ValueError("the rise and the fall (2 × ramp) must fit within duration")
        return self


class NodeFailure(SpecModel):
    """Nodes stop (involuntary: PodDisruptionBudgets do not apply)."""

    count: Count = Field(1, ge=1, description="how many nodes, those with the most API pods first")
    nodes: list[str] = Field(default_factory=list, description="fail these nodes by name instead")
    recover_after: Duration | None = Field(None, description="the node comes back Ready after this long")


class PodKill(SpecModel):
    """Evict `count` pods of a deployment through the Eviction API (voluntary: honours the PDB)."""

    deployment: str = "api"
    count: Count = Field(1, ge=1)
    respect_pdb: bool = Field(True, description="false: delete the pods directly (kubectl delete pod)")


class Drain(SpecModel):
    """kubectl drain: cordon nodes, evict their pods (PDBs honoured, retried every 5 s)."""

    node: str | None = None
    count: Count = Field(1, ge=1, description="when no node is named: the nodes with the most API pods first")


class RollingUpdate(SpecModel):
    deployment: str = "api"


class ConfigChange(SpecModel):
    """Dotted overrides applied to the running system (`kubectl apply` of a changed object)."""

    set: dict[str, Any] = Field(min_length=1)


class DatastoreSlowdown(SpecModel):
    datastore: str
    factor: Factor = Field(description="service times are multiplied by this")
    duration: PositiveDuration


class DatastoreOutage(SpecModel):
    datastore: str
    duration: PositiveDuration
    mode: Literal["refused", "timeout"] = Field(
        "refused", description="refused: calls fail at once; timeout: calls hang until the outage ends, then fail")


class Event(SpecModel):
    """Something that happens at a time: exactly one kind key besides `at`."""

    at: Duration
    traffic_spike: TrafficSpike | None = Field(None, description="{factor, duration, ramp}")
    node_failure: NodeFailure | None = Field(None, description="a count, or {count | nodes, recover_after}")
    pod_kill: PodKill | None = Field(None, description="{deployment, count}")
    drain: Drain | None = Field(None, description="a node name, or {node | count}")
    rolling_update: RollingUpdate | None = Field(None, description="a deployment name, or {deployment}")
    config_change: ConfigChange | None = Field(None, description="{set: {dotted.key: value}}")
    datastore_slowdown: DatastoreSlowdown | None = Field(None, description="{datastore, factor, duration}")
    datastore_outage: DatastoreOutage | None = Field(None, description="{datastore, duration, mode}")
    cache_flush: str | None = Field(None, description="a Redis datastore's name")

    KINDS: ClassVar[tuple[str, ...]] = ("traffic_spike", "node_failure", "pod_kill", "drain", "rolling_update",
                                        "config_change", "datastore_slowdown", "datastore_outage", "cache_flush")

    @field_validator("node_failure", mode="before")
    @classmethod
    def _node_failure_short(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        return value

    @field_validator("drain", mode="before")
    @classmethod
    def _drain_short(cls, value):
        if isinstance(value, str):
            return {"node": value}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        return value

    @field_validator("rolling_update", mode="before")
    @classmethod
    def _rolling_update_short(cls, value):
        return {"deployment": value} if isinstance(value, str) else value

    @field_validator("config_change", mode="before")
    @classmethod
    def _config_change_short(cls, value):
        # the first spelling, {dotted.key: value}, still works
        if isinstance(value, dict) and "set" not in value:
            return {"set": value}
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Event":
        given = [k for k in self.KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an event needs exactly one of {', '.join(self.KINDS)} (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    @property
    def payload(self):
        return getattr(self, self.kind)


class Bound(SpecModel):
    min: Number | None = Field(None, ge=0)
    max: Number | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> "Bound":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class DurationBound(SpecModel):
    max: PositiveDuration


class Targets(SpecModel):
    """Service-level targets; each becomes a verdict and the CI gate fails on any miss."""

    throughput_rps: Bound | None = None
    error_rate: Bound | None = None
    latency_mean: DurationBound | None = None
    latency_p50: DurationBound | None = None
    latency_p95: DurationBound | None = None
    latency_p99: DurationBound | None = None
    job_latency_p99: DurationBound | None = None
