"""Scheduling a plain callback on the simpy clock, without a process or a Timeout per call.

The data plane (requests, CPU completions) runs on raw simpy events with callbacks:
no generator, no process object, no ``Resource`` request per request. The control plane
(HPA, scrapes, lifecycles) uses ordinary simpy processes.
"""

from __future__ import annotations

from simpy.core import Environment
from simpy.events import NORMAL, Event


def call_later(env: Environment, delay: float, callback) -> Event:
    """Run ``callback(event)`` after `delay` simulated seconds."""
    event = Event(env)
    event._ok = True
    event._value = None
    event.callbacks.append(callback)
    env.schedule(event, NORMAL, delay)
    return event
