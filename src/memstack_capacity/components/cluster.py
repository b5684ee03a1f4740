"""Nodes, and scheduling pods onto them by their requests.

A pod fits a node when the requests of the pods already bound there plus its own stay
within the node's allocatable CPU and memory. Required pod anti-affinity (on
``kubernetes.io/hostname``) forbids a node that already runs a pod of the same
deployment; preferred anti-affinity only ranks nodes (fewest such pods first), as the
scheduler's InterPodAffinity score does. Among equals the least-allocated node wins
(the default NodeResourcesFit strategy). A pod that fits nowhere stays Pending until
room appears (a pod leaves, a node is added or comes back).

Nodes can fail (NotReady: nothing new is scheduled there), be cordoned (a drain) and be
added. :class:`NodeAutoscaler` is cluster-autoscaler's scale-up loop: every
``scan_interval`` (``--scan-interval``, 10 s) it looks at the pods Pending for lack of
room, works out how many empty nodes of the pool's shape would hold them (first fit, as
its binpacking estimator does), counts the nodes already on their way, and asks for the
rest up to ``max_nodes``; each new node is Ready ``provisioning_delay`` later
(cluster-autoscaler FAQ: "How does scale-up work?"). Scale-down is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memstack_capacity.components.nodecpu import NodeCpu
from memstack_capacity.scenario.event_checks import node_name


@dataclass
class Node:
    name: str
    cpu: float
    memory: int
    ready: bool = True
    schedulable: bool = True  # False once cordoned
    cpu_requested: float = 0.0
    memory_requested: int = 0
    pods: set = field(default_factory=set)
    #: Its cores, shared by the running pods' threads when they want more (:mod:`.nodecpu`).
    cores: NodeCpu = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cores = NodeCpu(self.name, self.cpu)

    def fits(self, cpu: float, memory: int) -> bool:
        return self.ready and self.schedulable and self.cpu_requested + cpu <= self.cpu + 1e-9 and self.memory_requested + memory <= self.memory


class Cluster:
    """The node pool and the scheduler's decision for one pod at a time."""

    def __init__(self, env, spec, recorder, cfs=None, share_cores: bool = True):
        self.env = env
        #: Whether bound pods share the nodes' cores (False when only asking where pods would go).
        self.share_cores = share_cores
        self.spec = spec
        self.recorder = recorder
        #: The kubelets' CFS settings (:class:`.cfs.CfsSettings`), read by each new pod.
        self.cfs = cfs
        self.nodes: list[Node] = [Node(node_name(i), spec.node.cpu, spec.node.memory) for i in range(spec.nodes)]
        self.pending: list = []  # pods waiting for room, in arrival order
        self._room = env.event()
        self.nodes_requested = 0

    def place(self, pod) -> Node | None:
        """Bind the pod to the best node, or None when nothing fits."""
        cpu, mem = pod.cpu_request, pod.mem_request
        mode = pod.spec.anti_affinity
        best, best_key = None, None
        for node in self.nodes:
            if not node.fits(cpu, mem):
                continue
            same = sum(1 for p in node.pods if p.runtime is pod.runtime)
            if mode == "required" and same:
                continue
            free = (node.cpu - node.cpu_requested) / node.cpu + (node.memory - node.memory_requested) / node.memory
            key = (same if mode == "preferred" else 0, -free, node.name)
            if best_key is None or key < best_key:
                best, best_key = node, key
        if best is not None:
            best.pods.add(pod)
            best.cpu_requested += cpu
            best.memory_requested += mem
            pod.node = best
            if self.share_cores:
                best.cores.bind(pod)
        return best

    def unbind(self, pod) -> None:
        node = pod.node
        if node is None:
            return
        node.pods.discard(pod)
        node.cpu_requested -= pod.cpu_request
        node.memory_requested -= pod.mem_request
        pod.node = None
        if self.share_cores:
            node.cores.unbind(pod)
        self.notify_room()

    def notify_room(self) -> None:
        """Wake every pod waiting to be scheduled (they retry in creation order)."""
        event, self._room = self._room, self.env.event()
        event.succeed()

    def wait_for_room(self):
        return self._room

    def add_node(self) -> Node:
        node = Node(node_name(len(self.nodes)), self.spec.node.cpu, self.spec.node.memory)
        self.nodes.append(node)
        self.notify_room()
        return node

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def fail_node(self, node: Node) -> list:
        """Mark a node NotReady; returns the pods bound to it (their owners recreate them)."""
        node.ready = False
        self.recorder.pod_event(self.env.now, "cluster", node.name, "NodeLost")
        return list(node.pods)

    def recover_node(self, node: Node) -> None:
        node.ready = True
        self.recorder.pod_event(self.env.now, "cluster", node.name, "NodeReady")
        self.notify_room()

    def cordon(self, node: Node) -> None:
        node.schedulable = False
        self.recorder.pod_event(self.env.now, "cluster", node.name, "Cordoned")

    def nodes_by_api_pods(self, count: int, runtime) -> list[Node]:
        """The ready nodes running the most pods of `runtime` (ties: by name), `count` of them."""
        ready = [n for n in self.nodes if n.ready]
        ready.sort(key=lambda n: (-sum(1 for p in n.pods if p.runtime is runtime), n.name))
        return ready[:count]

    def ready_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.ready)


class NodeAutoscaler:
    """cluster-autoscaler's scale-up: nodes for Pending pods, after a provisioning delay."""

    def __init__(self, env, cluster: Cluster, spec):
        self.env = env
        self.cluster = cluster
        self.max_nodes = spec.max_nodes
        self.delay = float(spec.provisioning_delay)
        self.scan_interval = float(spec.scan_interval)
        self.provisioning = 0
        #: When each node was asked for (a cloud bills an instance from its launch, before it is Ready).
        self.requested_at: list[float] = []

    def run(self):
        while True:
            yield self.env.timeout(self.scan_interval)
            self.scan()

    def nodes_needed(self, pods: list) -> int:
        """Empty nodes of the pool's shape that would hold `pods` (first fit by arrival order)."""
        cap_cpu, cap_mem = self.cluster.spec.node.cpu, self.cluster.spec.node.memory
        bins: list[list] = []  # [cpu used, memory used, runtimes with required anti-affinity]
        for pod in pods:
            cpu, mem = pod.cpu_request, pod.mem_request
            if cpu > cap_cpu + 1e-9 or mem > cap_mem:
                continue  # fits no node of this shape: cluster-autoscaler cannot help
            required = pod.spec.anti_affinity == "required"
            for b in bins:
                if b[0] + cpu <= cap_cpu + 1e-9 and b[1] + mem <= cap_mem and not (required and pod.runtime in b[2]):
                    b[0] += cpu
                    b[1] += mem
                    b[2].add(pod.runtime)
                    break
            else:
                bins.append([cpu, mem, {pod.runtime}])
        return len(bins)

    def scan(self) -> None:
        cluster = self.cluster
        pending = [p for p in cluster.pending if not p.deleting and p.node is None]
        if not pending:
            return
        needed = self.nodes_needed(pending) - self.provisioning
        room = self.max_nodes - len(cluster.nodes) - self.provisioning
        add = min(needed, room)
        if add <= 0:
            if needed > 0:
                cluster.recorder.pod_event(self.env.now, "cluster", "", "NotTriggerScaleUp",
                                           f"max_nodes {self.max_nodes} reached")
            return
        self.provisioning += add
        cluster.recorder.pod_event(self.env.now, "cluster", "", "TriggeredScaleUp",
                                   f"{add} node(s) for {len(pending)} pending pod(s)")
        for _ in range(add):
            self.requested_at.append(self.env.now)
            self.env.process(self._provision())

    def _provision(self):
        yield self.env.timeout(self.delay)
        self.provisioning -= 1
        node = self.cluster.add_node()
        self.cluster.recorder.pod_event(self.env.now, "cluster", node.name, "NodeReady")
