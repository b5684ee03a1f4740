"""The fluid mode's control plane: virtual pods with the DES's lifecycle delays, a
first-fit cluster, the metrics-server view and the real HPA ``reconcile`` in the loop.

A virtual pod carries only times: created, scheduled, Running (after the image pull),
container up (after startup), Ready (first readiness probe at ``max(startup,
initialDelaySeconds)`` after the start, then ``successThreshold - 1`` periods), serving
(after the endpoint delay). Load is spread evenly over serving pods, so one per-deployment
integral of per-pod CPU gives every pod's cumulative CPU counter, which metrics-server
scrapes exactly as :mod:`components.metrics` does.
"""

from __future__ import annotations

import math

from memstack_capacity.components.hpa.decision import HPAState, reconcile
from memstack_capacity.components.hpa.calc import ControllerConfig, MetricSample, PodInfo
from memstack_capacity.components.hpa.controller import decision_row
from memstack_capacity.engine.record import DeploymentTotals

INITIAL_POD_AGE_S = 3600.0  # as components/deployments.py: pods present at t=0 have run an hour
INF = math.inf


class VPod:
    __slots__ = ("name", "created", "scheduled", "running", "up", "ready", "serving", "node",
                 "cpu_base", "scrape")

    def __init__(self, name: str, created: float):
        self.name = name
        self.created = created
        self.scheduled = self.running = self.up = self.ready = self.serving = INF
        self.node = None
        self.cpu_base = None  # the deployment's CPU integral when the pod started serving
        self.scrape = None  # [t_prev, c_prev, t_last, c_last, rate, window, memory]


class VCluster:
    """Nodes with allocatable CPU and memory; first fit by requests; optional scale-up."""

    def __init__(self, spec):
        self.spec = spec
        self.free = [[spec.node.cpu, float(spec.node.memory)] for _ in range(spec.nodes)]
        self.provisioning: list[float] = []  # ready times of nodes being added
        self.requested_at: list[float] = []  # when each added node was asked for (its cost starts then)
        self.next_scan = 0.0

    def place(self, cpu: float, mem: float):
        for i, f in enumerate(self.free):
            if f[0] >= cpu - 1e-9 and f[1] >= mem:
                f[0] -= cpu
                f[1] -= mem
                return i
        return None

    def release(self, node: int, cpu: float, mem: float) -> None:
        self.free[node][0] += cpu
        self.free[node][1] += mem

    def tick(self, now: float, pending: list) -> None:
        """Add provisioned nodes; scan for Pending pods (cluster-autoscaler, scale-up only)."""
        while self.provisioning and self.provisioning[0] <= now:
            self.provisioning.pop(0)
            self.free.append([self.spec.node.cpu, float(self.spec.node.memory)])
        auto = self.spec.node_autoscaler
        if auto is None or now < self.next_scan:
            return
        self.next_scan = now + auto.scan_interval
        if not pending:
            return
        cpu = sum(c for c, _ in pending)
        mem = sum(m for _, m in pending)
        need = max(math.ceil(cpu / self.spec.node.cpu), math.ceil(mem / self.spec.node.memory))
        need -= len(self.provisioning)
        room = auto.max_nodes - len(self.free) - len(self.provisioning)
        for _ in range(max(0, min(need, room))):
            self.provisioning.append(now + auto.provisioning_delay)
            self.requested_at.append(now)


class VDeployment:
    """The pods of one Deployment, their lifecycle and what metrics-server and the HPA see."""

    def __init__(self, name: str, spec, cluster: VCluster, recorder):
        self.name, self.spec, self.cluster, self.recorder = name, spec, cluster, recorder
        self.pods: list[VPod] = []
        self.spec_replicas = 0
        self.index = 0
        self.cpu_integral = 0.0  # ∫ CPU cores of one serving pod dt
        self.cpu_req = float(spec.resources.requests.cpu)
        self.mem_req = float(spec.resources.requests.memory)
        self.mem_per_pod = float(spec.memory_base)  # working set of a serving pod (set each step)
        self.mem_serving = 0  # the serving pods mem_per_pod was set for
        self.scrapes = self.edge_scrapes = 0  # scrapes, and those whose HPA ratio sat at the tolerance edge
        self.noise_sd = (0.0, 0.0)  # sd of a serving pod's working set and CPU rate at the last scrape
        self.pod_seconds = 0.0
        rp = spec.readinessProbe
        self.version = 0  # bumped when pods are added, removed or scheduled
        self._cache = (None, -INF, INF, None)  # (version, valid from, valid until, counts)
        self.to_ready = (spec.startup if rp is None else
                         max(spec.startup, rp.initialDelaySeconds) + (rp.successThreshold - 1) * rp.periodSeconds)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, replicas: int) -> None:
        self.spec_replicas = replicas
        for _ in range(replicas):
            pod = self._new(0.0)
            if self._schedule(pod, 0.0):
                pod.scheduled = pod.running = pod.up = pod.ready = pod.serving = -INITIAL_POD_AGE_S
                pod.cpu_base = 0.0

    def _new(self, now: float) -> VPod:
        pod = VPod(f"{self.name}-{self.index}", now)
        self.index += 1
        self.pods.append(pod)
        return pod

    def _schedule(self, pod: VPod, now: float) -> bool:
        node = self.cluster.place(self.cpu_req, self.mem_req)
        if node is None:
            return False
        self.version += 1
        s = self.spec
        pod.node, pod.scheduled = node, now
        pod.running = now + s.image_pull
        pod.up = pod.running + s.startup
        pod.ready = pod.running + self.to_ready
        pod.serving = pod.ready + s.endpoint_delay
        return True

    def totals(self) -> DeploymentTotals:
        """The run's totals: no OOMKill or restart is modelled, and every pod carries the deployment's
        requests (the flow model runs no rollout), so the requests' integrals are pod-seconds × requests."""
        return DeploymentTotals(self.pod_seconds, 0, 0, self.pod_seconds * self.cpu_req,
                                self.pod_seconds * self.mem_req)

    def scale_to(self, replicas: int, now: float) -> None:
        self.spec_replicas = replicas
        self.version += 1
        live = len(self.pods)
        for _ in range(replicas - live):
            self._schedule(self._new(now), now)
        if live > replicas:
            def rank(p):  # ReplicaSet victim order: unscheduled, pending, not ready, ready for less time, newer
                ready = p.ready <= now
                return (p.node is not None, p.running <= now, ready, now - p.ready if ready else -1.0, -p.created)
            for pod in sorted(self.pods, key=rank)[: live - replicas]:
                self.pods.remove(pod)
                if pod.node is not None:
                    self.cluster.release(pod.node, self.cpu_req, self.mem_req)
                self.recorder.pod_event(now, self.name, pod.name, "Deleted")

    def pending(self) -> list:
        return [p for p in self.pods if p.node is None] if self.n_pending else []

    def retry_pending(self, now: float) -> None:
        if self.n_pending:
            for pod in self.pods:
                if pod.node is None:
                    self._schedule(pod, now)

    @property
    def n_pending(self) -> int:
        version, start, _, value = self._cache
        if version != self.version:
            value = self._counts(max(start, 0.0))
        return value[4]

    def next_transition(self, now: float) -> float:
        """The next time a pod changes state (so the stepper stops there)."""
        self.counts(now)
        return self._cache[2]

    def counts(self, now: float) -> tuple[int, int, int, int]:
        """(pods, Running with the container up, Ready, serving); cached between transitions."""
        version, start, until, value = self._cache
        if version == self.version and start <= now < until:
            return value[:4]
        value = self._counts(now)
        return value[:4]

    def _counts(self, now: float) -> tuple:
        nxt = INF
        for p in self.pods:
            for x in (p.running, p.up, p.ready, p.serving):
                if now < x < nxt:
                    nxt = x
        up = ready = serving = pending = 0
        for p in self.pods:
            if p.up <= now:
                up += 1
            if p.ready <= now:
                ready += 1
            if p.serving <= now:
                serving += 1
                if p.cpu_base is None:
                    p.cpu_base = self.cpu_integral
            if p.node is None:
                pending += 1
        value = (len(self.pods), up, ready, serving, pending)
        self._cache = (self.version, now, nxt, value)
        return value

    # ---- metrics-server ------------------------------------------------------------------------
    def scrape(self, now: float, mem_noise: float = 0.0, cpu_noise: float = 0.0) -> None:
        """One metrics-server scrape. `mem_noise` and `cpu_noise` are this scrape's deviations of a
        serving pod's working set (bytes) and CPU rate (cores) from the means (engine.fluid_noise).

        The requests in flight are those of the last step, held by the pods serving then; pods
        that have just joined the endpoints share them (the total is what the HPA sums, and in
        the DES it is the same: the old pods still hold their requests, the new ones few yet)."""
        base = float(self.spec.memory_base)
        serving_now = self.counts(now)[3]
        extra = self.mem_per_pod - base
        if serving_now and self.mem_serving and serving_now != self.mem_serving:
            extra *= self.mem_serving / serving_now
        mem_serving = max(base, base + extra + mem_noise)
        for p in self.pods:
            if p.up > now:
                p.scrape = None
                continue
            cpu = self.cpu_integral - p.cpu_base if p.cpu_base is not None else 0.0
            serving = p.serving <= now
            mem = mem_serving if serving else base
            s = p.scrape
            if s is None:
                p.scrape = [None, 0.0, now, cpu, None, 0.0, mem]
                continue
            s[0], s[1], s[2], s[3], s[6] = s[2], s[3], now, cpu, mem
            if now > s[0]:
                s[5] = now - s[0]
                s[4] = (cpu - s[1]) / s[5]
                if serving and cpu_noise:
                    s[4] = max(0.0, s[4] + cpu_noise)

    def pod_infos(self, now: float) -> list[PodInfo]:
        """What the controller reads. Pods with the same scrape share one samples mapping, and the
        frozen PodInfo is filled through its __dict__ (thousands of pods per sync on long runs)."""
        out = []
        req = {"cpu": int(round(self.cpu_req * 1000)), "memory": int(self.mem_req) * 1000}
        shared: dict = {}
        new = object.__new__
        for p in self.pods:
            s = p.scrape
            if s is None:
                samples = {}
            else:
                cpu = None if s[4] is None else int(s[4] * 1000)
                key = (cpu, s[2], s[5], int(s[6]))
                samples = shared.get(key)
                if samples is None:
                    samples = {"memory": MetricSample(key[3] * 1000, s[2], s[5])}
                    if cpu is not None:
                        samples["cpu"] = MetricSample(cpu, s[2], s[5])
                    shared[key] = samples
            ready = p.ready <= now
            info = new(PodInfo)
            info.__dict__.update(
                name=p.name, phase="Running" if p.running <= now else "Pending", deleting=False, ready=ready,
                start_time=None if p.node is None else p.scheduled,
                ready_transition_time=p.ready if ready else p.created, requests=req, samples=samples)
            out.append(info)
        return out


class VHPA:
    """One HorizontalPodAutoscaler: the real ``reconcile`` every sync period."""

    def __init__(self, dep: VDeployment, spec, config: ControllerConfig, recorder, external=None, first_sync=1.0):
        self.dep, self.spec, self.config, self.recorder = dep, spec, config, recorder
        self.external = external or {}
        self.state = HPAState()
        self.next_sync = first_sync

    def sync(self, now: float):
        dep = self.dep
        external = {k: [int(round(v * 1000)) for v in fn()] for k, fn in self.external.items()}
        decision = reconcile(self.spec, self.state, now, dep.spec_replicas, len(dep.pods), dep.pod_infos(now),
                             external, self.config)
        self.recorder.scaling.append(decision_row(dep.name, decision))
        if decision.rescaled:
            dep.scale_to(decision.desired_replicas, now)
            self.recorder.pod_event(now, dep.name, "", "SuccessfulRescale", decision.reason)
        self.next_sync = now + self.config.sync_period_s
        return decision
