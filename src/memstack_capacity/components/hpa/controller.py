"""The HPA controller process: every sync period, read the metrics API, decide, scale.

The decision itself is :func:`memstack_capacity.components.hpa.decision.reconcile`, a port of the
Kubernetes controller; this module only gathers what the controller would read (the
pods the selector matches, their metrics from metrics-server, the external queue length)
and records every decision as a row of ``scaling.csv``.
"""

from __future__ import annotations

from memstack_capacity.components.hpa.decision import HPAState, reconcile
from memstack_capacity.components.hpa.calc import ControllerConfig, MetricSample, PodInfo

class HPAController:
    """One HorizontalPodAutoscaler bound to one Deployment."""

    def __init__(self, env, name: str, runtime, spec, metrics_server, config: ControllerConfig, recorder, external=None,
                 first_sync: float = 1.0):
        self.env = env
        self.first_sync = first_sync  # when the first sync runs (components.hpa.phases)
        self.name = name
        self.runtime = runtime
        self.spec = spec
        self.metrics = metrics_server
        self.config = config
        self.recorder = recorder
        self.external = external or {}  # metric name -> callable returning a list of values (units)
        self.state = HPAState()

    def change_spec(self, spec) -> None:
        """A new HPA spec (a config change): the controller keeps its recommendations and scale events."""
        self.spec = spec

    def run(self):
        yield self.env.timeout(self.first_sync)
        while True:
            self.sync()
            yield self.env.timeout(self.config.sync_period_s)

    def pod_infos(self) -> list[PodInfo]:
        infos = []
        for pod in self.runtime.pods:
            if pod.phase == "Gone":
                continue
            cpu, window, stamp, memory = self.metrics.sample(pod)
            samples = {}
            if cpu is not None:
                samples["cpu"] = MetricSample(int(cpu * 1000), stamp, window)
            if memory is not None:
                samples["memory"] = MetricSample(int(memory) * 1000, stamp, window)
            infos.append(
                PodInfo(
                    name=pod.name,
                    phase="Running" if pod.phase == "Running" else "Pending",
                    deleting=pod.deleting,
                    ready=pod.ready,
                    start_time=pod.scheduled_at,
                    ready_transition_time=pod.ready_changed_at,
                    requests={"cpu": int(round(pod.cpu_request * 1000)), "memory": int(pod.mem_request) * 1000},
                    samples=samples,
                )
            )
        return infos

    def sync(self):
        now = self.env.now
        runtime = self.runtime
        status_replicas = sum(1 for p in runtime.pods if p.phase != "Gone")
        external = {name: [int(round(v * 1000)) for v in fn()] for name, fn in self.external.items()}
        decision = reconcile(
            self.spec, self.state, now, runtime.spec_replicas, status_replicas, self.pod_infos(), external, self.config
        )
        self.recorder.scaling.append(decision_row(self.name, decision))
        if decision.rescaled:
            runtime.scale_to(decision.desired_replicas)
            self.recorder.pod_event(now, self.name, "", "SuccessfulRescale", decision.reason)
        return decision


def decision_row(deployment: str, decision) -> dict:
    """A flat row for scaling.csv: what `kubectl describe hpa` would show at that sync."""
    row = {
        "t_s": decision.time,
        "deployment": deployment,
        "current_replicas": decision.current_replicas,
        "status_replicas": decision.status_replicas,
        "proposal": decision.proposal,
        "stabilized": decision.stabilized,
        "desired_replicas": decision.desired_replicas,
        "rescaled": decision.rescaled,
        "able_to_scale": decision.able_to_scale,
        "scaling_active_reason": decision.scaling_active_reason,
        "limited_reason": decision.limited_reason,
        "reason": decision.reason,
    }
    for m in decision.metrics:
        key = m.metric
        if m.target_type == "Utilization":
            row[f"{key}_utilization_pct"] = m.current_utilization
            row[f"{key}_target_pct"] = m.target
        else:
            row[f"{key}_value"] = None if m.current_value is None else m.current_value / 1000.0
            row[f"{key}_target"] = m.target / 1000.0
        row[f"{key}_proposal"] = m.proposal
        if m.error:
            row[f"{key}_error"] = m.error
    return row
