"""A node's cores, shared by its containers' runnable threads in proportion to ``requests.cpu``.

What Linux does: the kubelet gives each pod's cgroup a CPU weight from its requests
(``cpu.shares = requests.cpu in millicores × 1024 / 1000``, at least 2 — Kubernetes
``MilliCPUToShares``; cgroup v2 converts the shares to ``cpu.weight`` nearly proportionally).
While the runnable threads on a node want no more than its cores, every thread has a core and
the weights do nothing. When they want more, CFS shares the cores among the runnable groups in
proportion to their weights; a group that wants less than its share (fewer runnable threads,
or throttled by its own quota) leaves the rest to the others — weighted max–min fairness, the
standard fluid reading of group scheduling (Linux ``Documentation/scheduler/sched-design-CFS.rst``,
"group scheduler extensions"; Kubernetes "Resource Management for Pods and Containers": requests
are what a container is guaranteed under contention). A pod's runnable threads share its
allocation equally, each at most one core. Every container is still held to its own quota
(:mod:`.cfs`): a throttled container wants nothing until its next period.

Cost. Only a node whose bound pods could together run more threads than it has cores is
watched (its pods report when their runnable threads change); only while they actually do is it
contended, and then every change on the node re-shares its cores and re-times its pods. A node
that never fills keeps the pods' own fast paths, so such runs are unchanged to the bit.

Background CPU (``background_cpu``) is taken off the node's cores first: it is small and steady,
and the simulator counts it at its stated rate whatever the node does.
"""

from __future__ import annotations

class CoresNotShared(RuntimeError):
    """A node that could run out of cores holds pods played alone (an engine that cannot share a
    node's cores between pods); the run must be redone on an engine that can."""


#: Kubernetes ``MinShares``: what a pod without a CPU request weighs.
MIN_SHARES = 2


def cpu_shares(request_cores: float | None) -> int:
    """The cgroup ``cpu.shares`` the kubelet sets for a CPU request (``MilliCPUToShares``)."""
    if not request_cores:
        return MIN_SHARES
    return max(MIN_SHARES, int(round(request_cores * 1000.0)) * 1024 // 1000)


def weighted_shares(cores: float, demands: list[float], weights: list[float]) -> list[float]:
    """Share ``cores`` among groups wanting ``demands`` cores, in proportion to ``weights``,
    none getting more than it wants (weighted max–min fairness, by water-filling)."""
    alloc = [0.0] * len(demands)
    active = [i for i, d in enumerate(demands) if d > 0.0]
    left = cores
    while active:
        wsum = sum(weights[i] for i in active)
        satisfied = [i for i in active if demands[i] * wsum <= left * weights[i]]
        if not satisfied:
            for i in active:
                alloc[i] = left * weights[i] / wsum
            break
        for i in satisfied:
            alloc[i] = demands[i]
            left -= demands[i]
        done = set(satisfied)
        active = [i for i in active if i not in done]
    return alloc


class NodeCpu:
    """One node's cores and the pods bound to it; shares the cores when the threads want more."""

    def __init__(self, name: str, cores: float):
        self.name = name
        self.cores = cores
        self.pods: list = []
        self.watched = False  # the bound pods could want more threads than there are cores
        self.busy = 0  # runnable threads over the node's watched pods (throttled ones included)
        self.contended = False
        self.contended_s = 0.0  # time spent contended
        self._since = 0.0

    # ---- binding -------------------------------------------------------------------------------
    def bind(self, pod) -> None:
        self.pods.append(pod)
        self._rewatch(pod.env.now)

    def unbind(self, pod) -> None:
        if pod in self.pods:
            self.pods.remove(pod)
            if pod.node_cpu is self:
                self.busy -= pod.node_busy
                pod.node_busy = 0
                pod.node_cpu = None
                pod.release_node(pod.env.now)
            self._rewatch(pod.env.now)

    def possible_threads(self) -> float:
        """The most runnable threads the bound pods could have at once, with their background CPU."""
        return sum(p.spec.processes + (p.background_cpu or 0.0) for p in self.pods)

    def _rewatch(self, now: float) -> None:
        watched = self.possible_threads() > self.cores
        if watched and not self.watched:
            self.watched = True
            self.busy = 0
        if watched:
            for pod in self.pods:
                if not pod.shares_node_cores:
                    raise CoresNotShared(f"at t = {now:g} s the pods bound to {self.name} could run "
                                         f"{self.possible_threads():g} threads on its {self.cores:g} cores")
                if pod.node_cpu is not self:
                    pod.node_cpu = self
                    pod.node_busy = pod.busy_threads()
                    self.busy += pod.node_busy
            self._update(now)
        elif self.watched:
            self._update(now, force_free=True)
            for pod in self.pods:
                pod.node_cpu = None
                pod.node_busy = 0
            self.watched = False
            self.busy = 0

    # ---- the pods' reports ---------------------------------------------------------------------
    def changed(self, pod, now: float) -> None:
        """``pod``'s runnable threads (or its throttling) may have changed at ``now``."""
        busy = pod.busy_threads()
        self.busy += busy - pod.node_busy
        pod.node_busy = busy
        if self.contended or self.busy > self._free_cores():
            self._update(now)

    def _free_cores(self) -> float:
        return self.cores - sum(p.background_cpu for p in self.pods if p.container_up and p.background_cpu)

    def _update(self, now: float, force_free: bool = False) -> None:
        contended = not force_free and self.busy > self._free_cores()
        if contended:
            if not self.contended:
                self.contended, self._since = True, now
            self._share(now)
        elif self.contended:
            self.contended = False
            self.contended_s += now - self._since
            for pod in self.pods:
                pod.run_free(now)

    def _share(self, now: float) -> None:
        """Bring every pod up to ``now`` at its old speed, then give each its share of the cores."""
        pods = self.pods
        for pod in pods:
            pod.couple(now)
        demands = [float(p.runnable_threads(now)) for p in pods]
        weights = [float(cpu_shares(p.cpu_request)) for p in pods]
        alloc = weighted_shares(self._free_cores(), demands, weights)
        for pod, want, got in zip(pods, demands, alloc):
            pod.set_speed(now, got / want if want > 0.0 else 1.0)

    def contended_time(self, now: float) -> float:
        return self.contended_s + (now - self._since if self.contended else 0.0)


class NodeSampler:
    """Each node's CPU at every monitor sample: cores used over the interval (what node-exporter's
    ``rate(node_cpu_seconds_total{mode!="idle"})`` shows), that against the node's allocatable
    cores, and the share of the interval its pods wanted more cores than it has."""

    def __init__(self, nodes: list, interval: float):
        self.nodes = nodes  # the cluster's list: nodes added later are sampled too
        self.interval = interval
        #: A pod's cumulative CPU (core-seconds) now; an engine that computes the pods' CPU
        #: afterwards (the per-pod kernel) points it at its own figures.
        self.usage = _usage_now
        self._usage_prev: dict = {}
        self._contended_prev: dict = {}

    def sample(self, now: float, add) -> None:
        usage_prev, self._usage_prev = self._usage_prev, {}
        for node in self.nodes:
            used = 0.0
            for pod in node.cores.pods:
                usage = self.usage(pod)
                used += usage - usage_prev.get(pod, 0.0)
                self._usage_prev[pod] = usage
            contended = node.cores.contended_time(now)
            share = (contended - self._contended_prev.get(node.name, 0.0)) / self.interval
            self._contended_prev[node.name] = contended
            cores = used / self.interval
            add(now, node.name, "cpu_cores", cores)
            add(now, node.name, "cpu_utilization", cores / node.cpu)
            add(now, node.name, "cpu_contended_fraction", share)


def _usage_now(pod) -> float:
    return pod.usage_now()
