"""The datastores as the events see them on the compiled data plane.

The general engine's :class:`memstack_capacity.components.events.EventRunner` slows a store
down with ``store.slowdown(factor)`` and takes it down with ``begin_outage`` / ``end_outage``
on the run's datastores (components/datastores). On the compiled data plane the stores live
in the loop's arrays, so the plane hands the event runner this view instead: the same three
calls, written into the loop at the event's instant (the loop has been played up to it).
A Redis that no step calls (the capability table keeps called ones off this plane) is only
sampled, idle: its slowdowns and outages change nothing, as in the general engine.
"""

from __future__ import annotations

from memstack_capacity.engine.fast import loop

_MODES = {"refused": loop.DOWN_REFUSED, "timeout": loop.DOWN_TIMEOUT}


class _Server:
    """A PostgreSQL or Neo4j server of the loop (row ``s`` of the ``sv_`` / ``st_`` arrays)."""

    def __init__(self, plane, s: int):
        self.plane, self.s = plane, s

    def slowdown(self, factor: float) -> None:
        loop.server_speed(self.plane.st, self.plane.env.now, self.s, 1.0 / factor)

    def down(self, mode: int, end: float) -> None:
        self.plane.nt.st_down[self.s] = mode
        self.plane.nt.st_down_end[self.s] = end


class _External:
    """An external API of the loop (row ``x`` of the ``ex_`` arrays)."""

    def __init__(self, plane, x: int):
        self.plane, self.x = plane, x

    def slowdown(self, factor: float) -> None:
        self.plane.nt.ex_factor[self.x] = factor

    def down(self, mode: int, end: float) -> None:
        self.plane.nt.ex_down[self.x] = mode
        self.plane.nt.ex_down_end[self.x] = end


class _Idle:
    """A store no step calls: nothing to slow down or take down."""

    def slowdown(self, factor: float) -> None:
        pass

    def down(self, mode: int, end: float) -> None:
        pass


class LoopStores:
    """``stores[name]``, ``begin_outage`` and ``end_outage`` of the run's datastores, over the loop."""

    def __init__(self, plane, stores):
        self.stores = {}
        for name in stores.specs:
            if name in stores.pooled:
                self.stores[name] = _Server(plane, stores.pooled.index(name))
            elif name in stores.external:
                self.stores[name] = _External(plane, stores.external.index(name))
            else:
                self.stores[name] = _Idle()
        self.ends: dict = {}

    def begin_outage(self, name: str, end: float, mode: str) -> None:
        """Calls to `name` fail until `end` (components/datastores/runtime.py ``begin_outage``)."""
        self.ends[name] = end
        self.stores[name].down(_MODES[mode], end)

    def end_outage(self, name: str, end: float) -> None:
        """The outage that was to end at `end` is over (a later one that overlaps it goes on)."""
        if self.ends.get(name) == end:
            del self.ends[name]
            self.stores[name].down(loop.DOWN_NONE, 0.0)
