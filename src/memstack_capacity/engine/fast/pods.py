"""A pod whose requests run in the compiled loop: the compiled data plane's pod.

:class:`FastPod` is a :class:`memstack_capacity.components.pods.Pod` to the control plane (the
deployment's lifecycle, probes, metrics-server, cAdvisor, the monitor); what runs inside it
lives in the loop's arrays. Each container incarnation is a slot of those arrays, so a
restarted container starts empty while queries of its predecessor still finish on the
database (as a real server finishes a dead client's query) without touching it. The control
plane reads the slot (CPU used, memory, in flight, backlog); a probe is a CPU job in the
slot's process, answered when the loop says it finished; killing the container fails what
it held inside the loop.
"""

from __future__ import annotations

from memstack_capacity.components.pods import Pod


class _ProcView:
    """What the prober reads of a process: its requests in a ``cpu`` step (``len(heap)``)."""

    __slots__ = ("plane", "proc")

    def __init__(self, plane, proc: int):
        self.plane = plane
        self.proc = proc

    @property
    def heap(self):
        return range(int(self.plane.nt.pr_n[self.proc]))


class _Backlog:
    """``len(pod.backlog)``: the requests in the slot's accept backlog."""

    __slots__ = ("plane", "slot")

    def __init__(self, plane, slot: int):
        self.plane, self.slot = plane, slot

    def __len__(self) -> int:
        return int(self.plane.nt.pod_blen[self.slot])


class FastPod(Pod):
    """A pod of the compiled data plane (see the module docstring)."""

    #: Its processes run at full speed on their own clocks: the capability table keeps scenarios
    #: whose nodes could run out of cores off this plane.
    shares_node_cores = False

    def __init__(self, env, runtime, index: int, name: str, spec, plane):
        self.plane = plane
        self.slot = -1
        self._refuse = None
        self.used_before = 0.0  # core-seconds of earlier container incarnations
        super().__init__(env, runtime, index, name, spec)

    def _reset_container(self) -> None:
        now = self.env.now
        moved = self.slot >= 0
        if moved:
            self.used_before += self.plane.slot_usage(self.slot, now)
        self.slot = self.plane.new_slot(self, now)
        self.procs = [_ProcView(self.plane, proc) for proc in self.plane.slot_procs(self.slot)]
        self.backlog = _Backlog(self.plane, self.slot)
        self.bandwidth = None
        self.independent = self.own_clocks = True
        self.speed = 1.0
        self.nbusy = 0
        if moved:
            self.plane.slot_moved(self)

    @property
    def refuse(self):
        """What the pod does with a request the balancer sends it instead of serving it (None: it serves).

        The deployment sets it only when the pod's node is lost (``lose_node_pod``); the loop then
        fails what reaches the pod's slot at once with 502 ``node_lost``, as the des pod's function does.
        """
        return self._refuse

    @refuse.setter
    def refuse(self, fn) -> None:
        self._refuse = fn
        if self.slot >= 0:
            self.plane.set_refusing(self.slot, fn is not None)

    # ---- what the control plane reads ----------------------------------------------------------
    @property
    def mem(self) -> int:
        return int(self.plane.nt.pod_mem[self.slot])

    @property
    def inflight(self) -> int:
        return int(self.plane.nt.pod_inflight[self.slot])

    @property
    def tasks(self) -> int:
        """Requests held (admitted or in the backlog): a deleted pod drains while this is non-zero."""
        nt = self.plane.nt
        return int(nt.pod_inflight[self.slot] + nt.pod_blen[self.slot])

    def usage_now(self) -> float:
        return self.used_before + self.plane.slot_usage(self.slot, self.env.now)

    def set_container_up(self, up: bool) -> None:
        self.container_up = up
        if not up:
            self.plane.container_down(self)

    # ---- what the control plane does to it -----------------------------------------------------
    def drop_all(self, reason: str = "") -> list:
        """The container died or the pod is deleted: the loop fails what it held (oldest first, 502
        `reason`); nothing is left for the deployment to fail."""
        self.plane.kill(self, reason, self.env.now)
        self._reset_container()
        return []

    def cpu_start(self, proc: _ProcView, flow, work: float) -> None:
        """A probe's CPU work (the prober's ``probe_once``); its prober hears when the loop finishes it."""
        self.plane.probe(proc.proc, flow, work, self.env.now)
