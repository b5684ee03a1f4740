"""Events in time: what happens to the running system at ``at`` (model.md §9).

* **node_failure** (involuntary; PodDisruptionBudgets do not apply). At ``at`` the node
  stops: its pods' containers are gone, what they hold fails with 502 ``node_lost``, and
  the requests the load balancer still sends them fail at once. After
  ``cluster.node_monitor_grace_period`` (kube-controller-manager
  ``--node-monitor-grace-period``: 40 s; 50 s from Kubernetes 1.32, kubernetes#121793)
  the node lifecycle controller marks the node NotReady and its pods unready, so the
  endpoints controller drops them: traffic to them stops. ``cluster.not_ready_toleration``
  later (the default ``node.kubernetes.io/not-ready``/``unreachable`` NoExecute tolerations
  with ``tolerationSeconds: 300``, added by the DefaultTolerationSeconds admission plugin)
  the taint manager evicts them and the ReplicaSet creates replacements on the other
  nodes. Nodes are chosen by name, or those with the most API pods first.
* **pod_kill** and **drain** (voluntary): evictions through the Eviction API, refused while
  the PodDisruptionBudget has no disruption to spare, retried every 5 s as ``kubectl
  drain`` does. ``drain`` cordons the node first.
* **rolling_update**: a new ReplicaSet (:mod:`.rollout`).
* **config_change**: prepared at build time (``engine/des/events.py``); HPA fields give the
  controller a new spec and keep its state, pod-template fields start a rollout.
* **datastore_slowdown**: service times × ``factor`` for ``duration`` (server speed
  ``1/factor``; for an external API its latency).
* **datastore_outage**: calls to the store fail with 500 ``connection_refused`` for
  ``duration`` — at once (``refused``) or when the outage ends (``timeout``, the client
  waiting on a dead host); queries already in service finish.
* **cache_flush**: Redis loses every key. With the exact LRU the cache is emptied; with
  Che's approximation the hit ratio restarts from zero and grows as the cache refills:
  after ``n`` lookups key ``k`` is cached with probability ``1 - exp(-p_k min(n, t_C))``
  (it has been asked for at least once), ``t_C`` being Che's characteristic time.
* **traffic_spike** is folded into the workload profile at build time.
"""

from __future__ import annotations

import numpy as np

from memstack_capacity.components.clock import call_later

#: kubectl drain retries a refused eviction after this long.
EVICTION_RETRY_S = 5.0
#: The Che warm-up after a cache flush is re-evaluated this often.
CACHE_REFILL_STEP_S = 1.0


class EventRunner:
    """Schedules the scenario's events on the running system.

    `hpa` maps each autoscaled deployment to its controller, `datastores` is the run's
    :class:`.datastores.runtime.Datastores` (None without datastores), `config_actions`
    maps an event's index to its ``[(action, deployment, value)]``.
    """

    def __init__(self, env, events: list, cluster, runtimes: dict, recorder, *, hpa: dict, datastores,
                 config_actions: dict):
        self.env = env
        self.events = events
        self.cluster = cluster
        self.runtimes = runtimes
        self.recorder = recorder
        self.hpa = hpa
        self.datastores = datastores
        self.config_actions = config_actions

    def start(self) -> None:
        for i, event in enumerate(self.events):
            if event.kind == "traffic_spike":
                continue
            handler = getattr(self, f"_{event.kind}")
            call_later(self.env, event.at, lambda _e, h=handler, ev=event, i=i: self._fire(h, ev, i))

    def _fire(self, handler, event, index: int) -> None:
        self.recorder.pod_event(self.env.now, "cluster", "", "Event", event.kind)
        handler(event.payload, index)

    # ---- nodes ------------------------------------------------------------------------------------
    def _pick_nodes(self, names: list, count: int) -> list:
        if names:
            return [self.cluster.node(n) for n in names if self.cluster.node(n) is not None]
        return self.cluster.nodes_by_api_pods(count, self.runtimes["api"])

    def _node_failure(self, spec, _index: int) -> None:
        cluster = self.cluster.spec
        for node in self._pick_nodes(spec.nodes, spec.count):
            pods = self.cluster.fail_node(node)
            for pod in pods:
                pod.runtime.lose_node_pod(pod)
            grace = float(cluster.node_monitor_grace_period)
            call_later(self.env, grace, lambda _e, n=node, ps=pods: self._node_not_ready(n, ps))
            evict_at = grace + float(cluster.not_ready_toleration)
            call_later(self.env, evict_at, lambda _e, n=node, ps=pods: self._evict_lost(n, ps))
            if spec.recover_after is not None:
                call_later(self.env, spec.recover_after, lambda _e, n=node, ps=pods: self._node_recovered(n, ps))

    def _node_not_ready(self, node, pods) -> None:
        if node.ready:
            return
        self.recorder.pod_event(self.env.now, "cluster", node.name, "NodeNotReady")
        for pod in pods:
            if pod.node is node and not pod.deleting:
                pod.runtime._set_ready(pod, False)

    def _evict_lost(self, node, pods) -> None:
        if node.ready:
            return
        for pod in pods:
            if pod.node is node and not pod.deleting:
                self.recorder.pod_event(self.env.now, pod.runtime.name, pod.name, "TaintManagerEviction", node.name)
                pod.runtime.delete_pod(pod, "node_lost")
        for runtime in {p.runtime for p in pods}:
            runtime.reconcile()

    def _node_recovered(self, node, pods) -> None:
        self.cluster.recover_node(node)
        for pod in pods:
            if pod.node is node:
                pod.runtime.node_back(pod)

    def _drain(self, spec, _index: int) -> None:
        nodes = [self.cluster.node(spec.node)] if spec.node else self._pick_nodes([], spec.count)
        for node in nodes:
            self.cluster.cordon(node)
            for pod in sorted(node.pods, key=lambda p: p.name):
                self.env.process(self._evict_until_done(pod))

    # ---- pods -------------------------------------------------------------------------------------
    def _pod_kill(self, spec, _index: int) -> None:
        runtime = self.runtimes[spec.deployment]
        victims = [p for p in sorted(runtime.pods, key=lambda p: p.index) if not p.deleting and p.phase == "Running"]
        for pod in victims[: spec.count]:
            if spec.respect_pdb:
                self.env.process(self._evict_until_done(pod))
            else:
                runtime.delete_pod(pod)
                runtime.reconcile()

    def _evict_until_done(self, pod):
        while not pod.runtime.evict(pod):
            yield self.env.timeout(EVICTION_RETRY_S)

    def _rolling_update(self, spec, _index: int) -> None:
        self.runtimes[spec.deployment].rolling_update()

    def _config_change(self, _spec, index: int) -> None:
        for action, dep, value in self.config_actions.get(index, []):
            runtime = self.runtimes[dep]
            detail = f"{action} on {dep}"
            if action == "hpa":
                self.hpa[dep].change_spec(value)
            elif action == "scale":
                runtime.scale_to(int(value))
            elif action == "spec":  # strategy or PDB: the Deployment object, no new pods
                runtime.spec = value
                runtime.pdb = value.pdb
            elif action == "rollout":
                runtime.rolling_update(value)
            self.recorder.pod_event(self.env.now, dep, "", "ConfigChanged", detail)

    # ---- datastores -------------------------------------------------------------------------------
    def _store(self, name: str):
        return self.datastores.stores[name]

    def _datastore_slowdown(self, spec, _index: int) -> None:
        store = self._store(spec.datastore)
        store.slowdown(float(spec.factor))
        call_later(self.env, spec.duration, lambda _e: store.slowdown(1.0))

    def _datastore_outage(self, spec, _index: int) -> None:
        end = self.env.now + spec.duration
        self.datastores.begin_outage(spec.datastore, end, spec.mode)
        call_later(self.env, spec.duration, lambda _e: self.datastores.end_outage(spec.datastore, end))

    def _cache_flush(self, name, _index: int) -> None:
        store = self._store(name)
        store.flush()
        if store.lru or not store.sites:
            return
        from memstack_capacity.theory.queueing import che_characteristic_time

        sites = list(store.sites.values())
        total = sum(s.share for s in sites) or 1.0
        parts = [s.p * (s.share / total) for s in sites]
        p_all = np.concatenate(parts)
        if store.capacity >= p_all.size:
            t_c = float("inf")
        else:
            t_c = che_characteristic_time(p_all, store.capacity)
        steady = [s.hit_ratio for s in sites]
        for s in sites:
            s.hit_ratio = 0.0
        self.env.process(self._refill(store, sites, parts, steady, t_c))

    def _refill(self, store, sites, parts, steady, t_c):
        seen, last = 0, store.lookups
        while True:
            yield self.env.timeout(CACHE_REFILL_STEP_S)
            now_count = store.lookups
            seen += now_count - last if now_count >= last else now_count  # the warm-up resets the counter
            last = now_count
            if seen >= t_c or seen >= sum(p.size for p in parts) * 50:
                for s, h in zip(sites, steady):
                    s.hit_ratio = h
                return
            for s, part in zip(sites, parts):
                s.hit_ratio = float(s.p @ -np.expm1(-part * seen))
