"""How a datastore fails a task: a 500 with a reason, and calls to a store that is down.

A datastore failure (pool timeout, refused connection, rate limit) ends the task:
``task.alive = False``, the deployment's ``on_task_failed(task, 500, reason)`` (the
client's answer), then the task's slot and memory in its pod are released.

During a ``datastore_outage`` event a store's ``down`` is ``(end, mode)``: a call fails
with 500 ``connection_refused`` at once (``refused``) or when the outage ends
(``timeout``, the client waiting on a dead host); queries already in service finish.
"""

from __future__ import annotations

from memstack_capacity.components.clock import call_later
from memstack_capacity.components.recorder import E500, REASON_CODE

REFUSED = REASON_CODE["connection_refused"]


def fail_task(task, reason: int) -> None:
    """A datastore error ends the task with 500 `reason`; its pod slot is freed."""
    if not task.alive:
        return
    task.alive = False
    pod = task.pod
    pod.runtime.on_task_failed(task, E500, reason)
    if task in pod.tasks:  # the request path (ingress.fail) does not release the pod slot itself
        pod.release(task)


def refuse_while_down(store, flow) -> bool:
    """Fail a call made to `store` while it is down; the step does not go on (returns False)."""
    end, mode = store.down
    task = flow.task
    delay = end - store.env.now if mode == "timeout" else 0.0
    call_later(store.env, max(0.0, delay), lambda _e: fail_task(task, REFUSED))
    return False
