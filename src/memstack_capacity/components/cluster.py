"""Nodes, and scheduling pods onto them by their requests.

A pod fits a node when the requests of the pods already bound there plus its own stay
within the node's allocatable CPU and memory. Required pod anti-affinity (on
``kubernetes.io/hostname``) forbids a node that already runs a pod of the same
deployment; preferred anti-affinity only ranks nodes (fewest such pods first), as the
scheduler's InterPodAffinity score does. Among equals the least-allocated node wins
(the default NodeResourcesFit strategy). A pod that fits nowhere stays Pending until
room appears (a pod leaves, a node is added).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    cpu: float
    memory: int
    ready: bool = True
    cpu_requested: float = 0.0
    memory_requested: int = 0
    pods: set = field(default_factory=set)

    def fits(self, cpu: float, memory: int) -> bool:
        return self.ready and self.cpu_requested + cpu <= self.cpu + 1e-9 and self.memory_requested + memory <= self.memory


class Cluster:
    """The node pool and the scheduler's decision for one pod at a time."""

    def __init__(self, env, spec, recorder):
        self.env = env
        self.spec = spec
        self.recorder = recorder
        self.nodes: list[Node] = [Node(f"node-{i}", spec.node.cpu, spec.node.memory) for i in range(spec.nodes)]
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
        return best

    def unbind(self, pod) -> None:
        node = pod.node
        if node is None:
            return
        node.pods.discard(pod)
        node.cpu_requested -= pod.cpu_request
        node.memory_requested -= pod.mem_request
        pod.node = None
        self.notify_room()

    def notify_room(self) -> None:
        """Wake every pod waiting to be scheduled (they retry in creation order)."""
        event, self._room = self._room, self.env.event()
        event.succeed()

    def wait_for_room(self):
        return self._room

    def add_node(self) -> Node:
        node = Node(f"node-{len(self.nodes)}", self.spec.node.cpu, self.spec.node.memory)
        self.nodes.append(node)
        self.notify_room()
        return node

    def fail_node(self, node: Node) -> list:
        """Mark a node NotReady; returns the pods bound to it (their owners recreate them)."""
        node.ready = False
        return list(node.pods)

    def ready_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.ready)
