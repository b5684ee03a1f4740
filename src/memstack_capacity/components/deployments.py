"""A Deployment's pods over their lives: scheduled, pulled, started, probed, ready, deleted.

The ReplicaSet keeps ``spec_replicas`` pods; the HPA (or an event) changes that number.
New pods wait for a node with room for their requests, pull the image, start the
container, and become Ready when the readiness probe has passed ``successThreshold``
times; they receive traffic after the endpoints reach the load balancer. A container
that is OOMKilled or fails its liveness probe ``failureThreshold`` times restarts with
CrashLoopBackOff (10 s doubling to 300 s; reset after 10 min of running). A deleted
pod leaves the endpoints at once, drains what it has for up to
``terminationGracePeriodSeconds`` and fails the rest.

Probes run through the pod's own event loop: a probe is a small CPU task on the
least-loaded process, so under saturation it waits behind the load and times out —
the overload death spiral.

Rollouts (:mod:`.rollout` has the arithmetic): each pod template is a revision with its
own ReplicaSet count; a rolling update surges the new ReplicaSet up to ``replicas +
maxSurge`` and scales old ones down while at least ``replicas - maxUnavailable`` pods
are available, exactly as ``pkg/controller/deployment/rolling.go`` does; a change of
``replicas`` mid-rollout is spread over the ReplicaSets in proportion
(``sync.go: scale``). Evictions go through the PodDisruptionBudget (``evict``). A pod
whose node is lost fails what it holds with 502 ``node_lost`` and answers nothing more
until the endpoints drop it (see :mod:`.events`).
"""

from __future__ import annotations

from memstack_capacity.components import rollout
from memstack_capacity.components.clock import call_later
from memstack_capacity.components.probes import Prober
from memstack_capacity.components.recorder import E502, REASON_CODE

BACKOFF_START_S, BACKOFF_MAX_S, BACKOFF_RESET_S = 10.0, 300.0, 600.0
INITIAL_POD_AGE_S = 3600.0  # pods present at t=0 have been running for an hour


class DeploymentRuntime:
    """One Deployment in the simulation: its pods, endpoints and lifecycle processes."""

    def __init__(self, env, name: str, spec, cluster, executor, recorder, on_task_failed, on_procs_gone=None,
                 pod_factory=None):
        self.env = env
        self.name = name
        self.spec = spec
        self.cluster = cluster
        self.executor = executor
        self.recorder = recorder
        self.on_task_failed = on_task_failed  # (task, status, reason) -> None
        self.on_procs_gone = on_procs_gone  # (processes of a dead container or deleted pod) -> None
        self.prober = Prober(self)
        self.pods: list = []
        self.endpoints: list = []
        self.spec_replicas = 0
        self._next_index = 0
        self.pod_seconds = 0.0
        self.cpu_request_seconds = self.memory_request_seconds = 0.0  # ∫ the pods' requests dt (what costs count)
        self.oom_kills = 0
        self.restarts = 0
        self.endpoints_changed = None  # optional callback (balancer resets)
        # ReplicaSets: revision -> spec.replicas, in creation order; the newest is the template in use
        self.revision = 0
        self.rs_replicas: dict[int, int] = {0: 0}
        self.templates: dict = {0: spec}
        self.rolling = False
        self.pdb = spec.pdb
        self.evictions = 0
        self._max_annotation = 0  # deployment.kubernetes.io/max-replicas of the active ReplicaSets
        #: Builds a pod: ``pod_factory(env, runtime, index, name, spec)``; None for :class:`.pods.Pod`
        #: (the batched data plane, engine/hybrid/, builds its own pods).
        self.pod_factory = pod_factory
        #: Told ``container_up(pod)`` when a container comes up (:mod:`.cadvisor`), or None.
        self.containers_watch = None

    # ---- replica management ----------------------------------------------------------------
    def start(self, replicas: int) -> None:
        """Create the initial pods, already running and ready (the run starts in steady state)."""
        self.spec_replicas = replicas
        self.rs_replicas[self.revision] = replicas
        self._max_annotation = replicas + rollout.max_surge(self.spec.strategy, replicas)
        for _ in range(replicas):
            pod = self._new_pod(self.spec)
            pod.revision = self.revision
            self._next_index += 1
            self.pods.append(pod)
            if self.cluster.place(pod) is None:
                pod.phase = "Pending"
                self.env.process(self._lifecycle(pod))
                continue
            pod.phase = "Running"
            pod.created_at = pod.started_at = pod.scheduled_at = -INITIAL_POD_AGE_S
            pod.ready_changed_at = -INITIAL_POD_AGE_S
            pod.set_container_up(True)
            self._container_started(pod)
            pod.ready = True
            self._add_endpoint(pod)
            self.env.process(self.prober.run(pod))

    def scale_to(self, replicas: int) -> None:
        """Set spec.replicas; the ReplicaSets create or delete pods to match.

        With one active ReplicaSet it takes the whole count; mid-rollout the change is
        spread over the ReplicaSets in proportion (``sync.go: scale``), then the rollout
        carries on from there.
        """
        self.spec_replicas = replicas
        active = [r for r, n in self.rs_replicas.items() if n > 0]
        strategy = self.spec.strategy
        if len(active) <= 1 or strategy.type != "RollingUpdate":
            target = active[0] if len(active) == 1 else self.revision
            self.rs_replicas[target] = replicas
        else:
            sizes = rollout.proportional_scale(
                [(r, self.rs_replicas[r]) for r in active], replicas, strategy, self._max_annotation, self.revision
            )
            self.rs_replicas.update(sizes)
        self._max_annotation = replicas + rollout.max_surge(strategy, replicas)
        self._sync_all()
        self._rollout_step()

    def _sync_replicaset(self, revision: int) -> None:
        """The ReplicaSet controller: create or delete pods of `revision` to match its count."""
        want = self.rs_replicas.get(revision, 0)
        live = [p for p in self.pods if p.revision == revision and not p.deleting]
        if len(live) < want:
            for _ in range(want - len(live)):
                self._create_pod(revision)
        elif len(live) > want:
            for pod in sorted(live, key=self._deletion_rank)[: len(live) - want]:
                self.delete_pod(pod)

    def _sync_all(self) -> None:
        for revision in list(self.rs_replicas):
            self._sync_replicaset(revision)

    def reconcile(self) -> None:
        """Controllers react to a change (a pod deleted, evicted or lost): replace, carry on rolling."""
        self._sync_all()
        self._rollout_step()

    # ---- rollouts ----------------------------------------------------------------------------------
    def rolling_update(self, spec=None) -> None:
        """A new pod template (the same one when `spec` is None): a new ReplicaSet and a rollout."""
        if spec is not None:
            self.spec = spec
            self.pdb = spec.pdb
        self.revision += 1
        self.templates[self.revision] = self.spec
        self.rs_replicas[self.revision] = 0
        self.rolling = True
        self.recorder.pod_event(self.env.now, self.name, "", "RolloutStarted", f"revision {self.revision}")
        self._rollout_step()

    def available(self, revision: int | None = None) -> int:
        """Available pods (Ready, not being deleted; minReadySeconds 0), of one revision or all."""
        return sum(1 for p in self.pods if p.ready and not p.deleting and (revision is None or p.revision == revision))

    def _rollout_step(self) -> None:
        if not self.rolling:
            return
        for _ in range(64):  # the controller re-syncs on every ReplicaSet change
            changes = rollout.rollout_step(self.spec.strategy, self.spec_replicas, self.revision,
                                           dict(self.rs_replicas), self.available, self._old_pods_left)
            if not changes:
                break
            self.rs_replicas.update(changes)
            for revision in changes:
                self._sync_replicaset(revision)
        old = [r for r in self.rs_replicas if r != self.revision]
        if all(self.rs_replicas[r] == 0 for r in old) and not self._old_pods_left():
            self.rolling = False
            self.recorder.pod_event(self.env.now, self.name, "", "RolloutComplete", f"revision {self.revision}")

    def _old_pods_left(self) -> int:
        return sum(1 for p in self.pods if p.revision != self.revision and p.phase != "Gone")

    # ---- evictions (the Eviction API and the PodDisruptionBudget) ------------------------------------
    def disruptions_allowed(self) -> tuple[int, int]:
        """(currentHealthy, desiredHealthy) as ``pkg/controller/disruption`` computes them."""
        healthy = self.available()
        pdb = self.pdb
        if pdb is None:
            return healthy, 0
        return healthy, rollout.desired_healthy(pdb, self.spec_replicas)

    def evict(self, pod, reason: str = "pod_terminated") -> bool:
        """POST pods/eviction: deleted (True) when the budget allows, refused (429, False) otherwise.

        Pending pods ignore the budget; an unready pod may go when the budget is healthy
        (``unhealthyPodEvictionPolicy: IfHealthyBudget``, the default); a ready one only
        while ``disruptionsAllowed`` > 0.
        """
        if pod.deleting or pod.phase == "Gone":
            return True
        if self.pdb is not None and pod.phase == "Running":
            healthy, desired = self.disruptions_allowed()
            ok = healthy - 1 >= desired if (pod.ready and not pod.deleting) else healthy >= desired
            if not ok:
                self.recorder.pod_event(self.env.now, self.name, pod.name, "EvictionBlocked",
                                        f"PDB: {healthy} healthy, {desired} needed")
                return False
        self.evictions += 1
        self.recorder.pod_event(self.env.now, self.name, pod.name, "Evicted")
        self.delete_pod(pod, reason)
        self.reconcile()
        return True

    def _deletion_rank(self, pod):
        """ReplicaSet victim order (controller.ActivePods): unscheduled, pending, not ready,
        ready for less time, more restarts, newer — in that order of preference."""
        ready_for = self.env.now - pod.ready_changed_at if pod.ready else -1.0
        return (pod.node is not None, pod.phase == "Running", pod.ready, ready_for, -pod.restarts, -pod.created_at)

    def _new_pod(self, spec):
        from memstack_capacity.components.pods import Pod

        make = self.pod_factory or Pod
        return make(self.env, self, self._next_index, f"{self.name}-{self._next_index}", spec)

    def _create_pod(self, revision: int | None = None):
        revision = self.revision if revision is None else revision
        spec = self.templates.get(revision, self.spec)
        pod = self._new_pod(spec)
        pod.revision = revision
        self._next_index += 1
        self.pods.append(pod)
        self.recorder.pod_event(self.env.now, self.name, pod.name, "Created")
        self.env.process(self._lifecycle(pod))
        return pod

    def delete_pod(self, pod, reason: str = "pod_terminated") -> None:
        if pod.deleting:
            return
        pod.deleting = True
        self.recorder.pod_event(self.env.now, self.name, pod.name, "Killing", reason)
        self._remove_endpoint(pod)
        pod.ready = False
        self.env.process(self._terminate(pod, reason))

    def _terminate(self, pod, reason: str):
        grace = float(pod.spec.terminationGracePeriodSeconds)
        deadline = self.env.now + grace
        while pod.tasks and self.env.now < deadline:
            yield self.env.timeout(min(1.0, deadline - self.env.now))
        self._fail_tasks(pod, reason)
        pod.phase = "Gone"
        pod.set_container_up(False)
        self._account(pod, self.env.now)
        if pod in self.pods:
            self.pods.remove(pod)
        if pod in self.cluster.pending:
            self.cluster.pending.remove(pod)
        self.cluster.unbind(pod)
        self.recorder.pod_event(self.env.now, self.name, pod.name, "Deleted")
        self._rollout_step()

    # ---- lifecycle ---------------------------------------------------------------------------
    def _lifecycle(self, pod):
        env = self.env
        self.cluster.pending.append(pod)
        while self.cluster.place(pod) is None:
            if pod.deleting:
                return
            yield self.cluster.wait_for_room()
        self.cluster.pending.remove(pod)
        pod.scheduled_at = env.now
        self.recorder.pod_event(env.now, self.name, pod.name, "Scheduled", pod.node.name)
        yield env.timeout(pod.spec.image_pull)
        if pod.deleting:
            return
        pod.phase = "Running"
        yield from self._run_container(pod)

    def _run_container(self, pod):
        env = self.env
        pod.started_at = env.now
        self.recorder.pod_event(env.now, self.name, pod.name, "Started")
        yield env.timeout(pod.spec.startup)
        if pod.deleting or pod.phase != "Running" or self.node_lost(pod):
            return
        pod.set_container_up(True)
        pod._reset_container()
        self._container_started(pod)
        if pod.spec.readinessProbe is None:
            self._set_ready(pod, True)
        self.env.process(self.prober.run(pod))

    def _container_started(self, pod) -> None:
        if self.containers_watch is not None:
            self.containers_watch.container_up(pod)

    def _set_ready(self, pod, ready: bool) -> None:
        if pod.ready == ready:
            return
        pod.ready = ready
        pod.ready_changed_at = self.env.now
        self.recorder.pod_event(self.env.now, self.name, pod.name, "Ready" if ready else "NotReady")
        if ready:
            self.env.process(self._propagate_endpoint(pod))
        else:
            self._remove_endpoint(pod)
        self._rollout_step()

    def _propagate_endpoint(self, pod):
        yield self.env.timeout(pod.spec.endpoint_delay)
        if pod.ready and not pod.deleting and pod.container_up:
            self._add_endpoint(pod)

    def _add_endpoint(self, pod) -> None:
        if not pod.serving:
            pod.serving = True
            self.endpoints.append(pod)
            if self.endpoints_changed:
                self.endpoints_changed()

    def _remove_endpoint(self, pod) -> None:
        if pod.serving:
            pod.serving = False
            self.endpoints.remove(pod)
            if self.endpoints_changed:
                self.endpoints_changed()

    # ---- failures ----------------------------------------------------------------------------
    def container_died(self, pod, reason: str) -> None:
        """OOMKill or liveness failure: everything in the container fails; it restarts with back-off."""
        if reason == "oom_killed":
            pod.oom_kills += 1
            self.oom_kills += 1
            self.recorder.pod_event(self.env.now, self.name, pod.name, "OOMKilled")
        pod.set_container_up(False)
        self._set_ready(pod, False)
        self._fail_tasks(pod, reason)
        pod.restarts += 1
        self.restarts += 1
        pod.phase = "Running" if not pod.deleting else pod.phase
        if not pod.deleting:
            self.env.process(self._restart(pod))

    @staticmethod
    def node_lost(pod) -> bool:
        return pod.node is not None and not pod.node.ready

    def lose_node_pod(self, pod) -> None:
        """The pod's node stopped: its container is gone, what it held fails (502 node_lost), and
        requests the load balancer still sends it fail at once (the connection is refused) until
        the endpoints drop it."""
        pod.set_container_up(False)
        self._fail_tasks(pod, "node_lost")
        env = self.env

        def unreachable(task, _pod=pod):
            task.pod = _pod
            call_later(env, 0.0, lambda _e: self._fail_one(task, "node_lost"))
            return True

        pod.refuse = unreachable

    def _fail_one(self, task, reason: str) -> None:
        if task.alive:
            task.alive = False
            self.on_task_failed(task, E502, REASON_CODE[reason])

    def node_back(self, pod) -> None:
        """The node is back: the kubelet restarts the pod's container (if the pod was not evicted)."""
        pod.refuse = None
        if not pod.deleting and pod.phase == "Running":
            pod.restarts += 1
            self.restarts += 1
            self.env.process(self._run_container(pod))

    def _restart(self, pod):
        ran_for = self.env.now - (pod.started_at or 0.0)
        if ran_for > BACKOFF_RESET_S:
            pod.crash_streak = 0
        streak = pod.crash_streak
        pod.crash_streak = streak + 1
        delay = min(BACKOFF_MAX_S, BACKOFF_START_S * 2**streak)
        self.recorder.pod_event(self.env.now, self.name, pod.name, "BackOff", f"{delay:g}s")
        yield self.env.timeout(delay)
        if pod.deleting or self.node_lost(pod):
            return
        yield from self._run_container(pod)

    def _fail_tasks(self, pod, reason: str) -> None:
        code = REASON_CODE[reason]
        procs = list(pod.procs)  # drop_all replaces them
        for task in pod.drop_all(reason):
            if not task.alive:
                continue
            task.alive = False
            self.on_task_failed(task, E502, code)
        if self.on_procs_gone is not None:
            self.on_procs_gone(procs)

    # ---- measurements --------------------------------------------------------------------------
    def live_pods(self) -> list:
        return [p for p in self.pods if p.phase != "Gone"]

    def ready_count(self) -> int:
        return sum(1 for p in self.pods if p.ready)

    def close(self, now: float) -> None:
        """Account pod-seconds of pods still alive at the end."""
        for pod in self.pods:
            if pod.phase != "Gone":
                self._account(pod, now)

    def _account(self, pod, now: float) -> None:
        """Add a pod's life (from its creation, or t = 0) to the pod-seconds and to its requests' integrals."""
        life = now - max(pod.created_at, 0.0)
        self.pod_seconds += life
        self.cpu_request_seconds += life * pod.cpu_request
        self.memory_request_seconds += life * pod.mem_request
