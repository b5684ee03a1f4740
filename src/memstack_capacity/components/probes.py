"""Readiness and liveness probes, run through the pod's own event loop.

A probe is a small CPU task (the ``/health`` handler's Python work) on the pod's
least-loaded process, so under saturation it waits behind the load like any request and
times out: ``failureThreshold`` misses take a pod out of the endpoints (readiness) or
restart its container (liveness) — the overload death spiral. Probing follows the
kubelet: the first probe ``initialDelaySeconds`` after the container starts, then every
``periodSeconds``; ``successThreshold`` passes to become Ready.
"""

from __future__ import annotations

from memstack_capacity.components.flows import Flow, Task

PROBE_CPU_S = 0.0005  # the /health handler's Python work


class Prober:
    """Probes every container incarnation of one deployment's pods."""

    def __init__(self, runtime):
        self.runtime = runtime

    def run(self, pod):
        """Readiness and liveness probing of one container incarnation."""
        runtime, env = self.runtime, self.runtime.env
        incarnation = pod.restarts
        ready_spec, live_spec = pod.spec.readinessProbe, pod.spec.livenessProbe
        started = pod.started_at
        next_ready = started + ready_spec.initialDelaySeconds if ready_spec else None
        next_live = started + live_spec.initialDelaySeconds if live_spec else None
        successes = failures = live_failures = 0
        while True:
            upcoming = [t for t in (next_ready, next_live) if t is not None]
            if not upcoming:
                return
            wait = max(0.0, min(upcoming) - env.now)
            yield env.timeout(wait)
            if pod.deleting or pod.restarts != incarnation or pod.phase != "Running" or runtime.node_lost(pod):
                return
            now = env.now
            if next_ready is not None and now >= next_ready:
                next_ready = now + ready_spec.periodSeconds
                ok = yield from self.probe_once(pod, ready_spec.timeoutSeconds)
                if pod.deleting or pod.restarts != incarnation:
                    return  # the kubelet stops probing a terminating pod or a dead container
                if ok:
                    successes, failures = successes + 1, 0
                    if not pod.ready and successes >= ready_spec.successThreshold:
                        runtime._set_ready(pod, True)
                else:
                    successes, failures = 0, failures + 1
                    if pod.ready and failures >= ready_spec.failureThreshold:
                        runtime._set_ready(pod, False)
            if pod.restarts != incarnation or pod.deleting:
                return
            if next_live is not None and env.now >= next_live:
                next_live = env.now + live_spec.periodSeconds
                ok = yield from self.probe_once(pod, live_spec.timeoutSeconds)
                live_failures = 0 if ok else live_failures + 1
                if live_failures >= live_spec.failureThreshold and pod.restarts == incarnation and not pod.deleting:
                    runtime.recorder.pod_event(env.now, runtime.name, pod.name, "Unhealthy", "liveness probe failed")
                    runtime.container_died(pod, "container_restarted")
                    return

    def probe_once(self, pod, timeout_s: float):
        """Send one probe through the pod's event loop; True if it answers within the timeout."""
        env = self.runtime.env
        if not pod.container_up:
            yield env.timeout(0)
            return False
        answered = env.event()
        task = Task("probe", -1, env.now, answered, 0, ())
        task.pod = pod
        proc = min(pod.procs, key=lambda p: len(p.heap))
        task.proc = proc
        pod.cpu_start(proc, Flow(task, (), None), PROBE_CPU_S)
        result = yield answered | env.timeout(timeout_s)
        return answered in result
