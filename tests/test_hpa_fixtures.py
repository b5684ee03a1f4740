"""Builders that turn the Kubernetes HPA Go test fixtures into this package's inputs.

Go's fixtures use ``time.Now()`` and the zero ``time.Time``; here the reconcile happens at
``NOW`` and the zero time is ``ZERO`` (far in the past). Pods have two containers: a
request or level given per container is doubled for the pod, as Go's fakes do.
"""

from __future__ import annotations

from memstack_capacity.components.hpa.decision import ControllerConfig, MetricSample, PodInfo
from memstack_capacity.scenario.hpa import HorizontalPodAutoscalerSpec, HPAScalingPolicy, HPAScalingRules

NOW = 1_000_000.0
ZERO = -1.0e12  # Go's zero time.Time
HOT = NOW  # hotCPUCreationTime()
COOL = NOW - 180.0  # coolCPUCreationTime()
#: The Go tests' controller: tolerance 0.1, CPU initialisation 2 min, readiness delay 10 s,
#: downscale stabilisation 5 min, and scaleUpLimitFactor overridden to 8 in init().
GO_CONFIG = ControllerConfig(
    tolerance=0.1, cpu_initialization_period_s=120.0, initial_readiness_delay_s=10.0,
    downscale_stabilization_s=300.0, scale_up_limit_factor=8.0, scale_up_limit_minimum=4.0,
)


def calc_pods(current, *, readiness=None, start=None, phase=None, deleted=None, requests=(), levels=(),
              pod_names=None, resource="cpu", per_container=True, timestamp=ZERO):
    """``replicaCalcTestCase``: the pod list and the samples (by name, superfluous ones included)."""
    n = max(current, len(phase or ()))
    factor = 2 if per_container else 1
    pods = []
    for i in range(n):
        pods.append(PodInfo(
            name=f"test-pod-{i}",
            phase=phase[i] if phase else "Running",
            deleting=bool(deleted[i]) if deleted else False,
            ready=readiness[i] if readiness and i < len(readiness) else True,
            start_time=start[i] if start else ZERO,
            ready_transition_time=ZERO,
            requests={resource: factor * requests[i]} if i < len(requests) else {},
        ))
    samples = {}
    for i, level in enumerate(levels):
        name = pod_names[i] if pod_names and i < len(pod_names) else f"test-pod-{i}"
        samples[name] = MetricSample(factor * level, timestamp, 60.0)
    return pods, samples


def controller_pods(spec_replicas, status_replicas, *, levels=(), requests=None, readiness=None, start=None,
                    phase=None, deleted=None):
    """``testCase.prepareTestClient``: pods with CPU requests and samples taken at ``NOW``.

    ``requests`` are per-pod milli-CPU (split over two containers); without them there are
    ``status_replicas`` pods of 1 CPU. Levels for pods that do not exist are dropped.
    """
    n = len(requests) if requests is not None else status_replicas
    pods = []
    for i in range(n):
        request = requests[i] if requests is not None else 1000
        started = start[i] if start else ZERO
        samples = {}
        if i < len(levels):
            samples["cpu"] = MetricSample((levels[i] // 2) * 2, NOW, 60.0)
        pods.append(PodInfo(
            name=f"test-pod-{i}",
            phase=phase[i] if phase else "Running",
            deleting=bool(deleted[i]) if deleted else False,
            ready=readiness[i] if readiness else True,
            start_time=started,
            ready_transition_time=started,
            requests={"cpu": (request // 2) * 2},
            samples=samples,
        ))
    return pods


def cpu_metric(target):
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}


def external_metric(target_type, milli):
    key = "value" if target_type == "Value" else "averageValue"
    return {"type": "External", "external": {"metric": {"name": "queue_length"},
                                             "target": {"type": target_type, key: f"{milli}m"}}}


def scaling_rules(pods=0, pods_period=0, percent=0, percent_period=0, window=0, select="Max"):
    """Go's ``generateScalingRules``."""
    policies = []
    if pods:
        policies.append(HPAScalingPolicy(type="Pods", value=pods, periodSeconds=pods_period))
    if percent:
        policies.append(HPAScalingPolicy(type="Percent", value=percent, periodSeconds=percent_period))
    return HPAScalingRules(stabilizationWindowSeconds=window, selectPolicy=select, policies=tuple(policies))


def hpa(min_replicas, max_replicas, metrics, scale_up=None, scale_down=None):
    """An HPA spec; ``behavior`` is set when either direction's rules are given."""
    data = {"minReplicas": min_replicas, "maxReplicas": max_replicas, "metrics": list(metrics)}
    if scale_up is not None or scale_down is not None:
        data["behavior"] = {k: v.model_dump(exclude_none=True) for k, v in
                            (("scaleUp", scale_up), ("scaleDown", scale_down)) if v is not None}
    return HorizontalPodAutoscalerSpec.model_validate(data)


def uniform_events(changes, period_s):
    """Go's ``generateEventsUniformDistribution``: events centred in equal segments of the period."""
    from memstack_capacity.components.hpa.decision import ScaleEvent

    segment = period_s / len(changes)
    return [ScaleEvent(c, NOW - int(period_s - segment * (i + 1) + segment / 2)) for i, c in enumerate(changes)]
