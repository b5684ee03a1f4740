"""Requests and jobs as step programs, and the executor that walks them.

A request class's steps are compiled once into a tuple of operations; each request
(or job) then walks its program. A step that takes time hands the walk to the
component serving it (the pod's CPU, a connection pool, an external API) and that
component calls :meth:`Executor.advance` when the step is done. ``parallel`` runs
branches and resumes when all have finished.

Contract for step handlers: ``handler(flow, op) -> bool``. Return True when the step
finished synchronously (the walk continues), False when the handler will call
``executor.advance(flow)`` later. If the task dies meanwhile (``task.alive`` False,
e.g. its pod was OOMKilled), ``advance`` does nothing: the handler must still release
whatever it holds (a connection, a semaphore slot) before calling it.
"""

from __future__ import annotations

from memstack_capacity.components.sampling import Sampler
from memstack_capacity.scenario.workload import (
    CallStep,
    CpuStep,
    EnqueueStep,
    ExternalStep,
    ParallelStep,
    RepeatStep,
)

CPU, CALL, EXTERNAL, PARALLEL, ENQUEUE = "cpu", "call", "external", "parallel", "enqueue"


class Task:
    """A request or a job in flight: where it runs and whether it still matters."""

    __slots__ = ("kind", "cls", "t0", "owner", "pod", "proc", "mem", "alive", "done", "client_gone", "flow", "attempt")

    def __init__(self, kind: str, cls: int, t0: float, owner, mem: int, prog: tuple):
        self.kind = kind  # "request" | "job" | "probe"
        self.cls = cls
        self.t0 = t0
        self.owner = owner
        self.pod = None
        self.proc = None
        self.mem = mem
        self.alive = True
        self.done = False
        self.client_gone = False
        self.flow = Flow(self, prog, None)
        self.attempt = 1


class Flow:
    """One sequential walk through a program: the task's main line or a parallel branch."""

    __slots__ = ("task", "prog", "pc", "parent", "pending")

    def __init__(self, task: Task, prog: tuple, parent: "Flow | None"):
        self.task = task
        self.prog = prog
        self.pc = 0
        self.parent = parent
        self.pending = 0


def compile_steps(steps: list, streams, path: str) -> tuple:
    """Compile validated steps into operations, each with its own named random stream."""
    ops: list = []
    for i, step in enumerate(steps):
        where = f"{path}/{i}"
        if isinstance(step, RepeatStep):
            block = compile_steps(step.steps, streams, where)
            ops.extend(block * step.repeat)
            continue
        if isinstance(step, CpuStep):
            op = (CPU, Sampler(step.cpu, streams(where)))
        elif isinstance(step, CallStep):
            sampler = Sampler(step.time, streams(where)) if step.time is not None else None
            miss = compile_steps(step.miss, streams, where + "/miss") if step.miss else None
            op = (CALL, step.call, sampler, step, miss)
        elif isinstance(step, ExternalStep):
            op = (EXTERNAL, step.external)
        elif isinstance(step, EnqueueStep):
            op = (ENQUEUE, step.enqueue)
        elif isinstance(step, ParallelStep):
            branches = tuple(compile_steps([s], streams, f"{where}/{j}") for j, s in enumerate(step.parallel))
            op = (PARALLEL, branches)
        else:  # pragma: no cover - the scenario models admit no other step
            raise TypeError(f"unknown step {step!r}")
        ops.extend([op] * step.repeat)
    return tuple(ops)


class Executor:
    """Walks step programs; components register the handlers for the steps they serve."""

    def __init__(self):
        self.handlers: dict = {}
        self.on_task_done = None  # set by the engine: called with the task when its program ends
        # Handlers by target name (op[1]): register ``self.route`` as a kind's handler and the
        # targets in ``routes``; advance then calls ``routes[op[1]]`` without the extra frame.
        self.routes: dict = {}
        self.route = self._route

    def _route(self, flow: Flow, op: tuple) -> bool:
        """The handler of the op's target (``routes[op[1]]``)."""
        return self.routes[op[1]](flow, op)

    def start(self, task: Task) -> None:
        self.advance(task.flow)

    def advance(self, flow: Flow) -> None:
        task = flow.task
        if not task.alive:
            return
        prog = flow.prog
        n = len(prog)
        pc = flow.pc
        handlers, route = self.handlers, self.route
        while pc < n:
            op = prog[pc]
            pc += 1
            flow.pc = pc  # before the handler: it may resume this flow itself
            kind = op[0]
            if kind == CPU:
                sampler = op[1]  # Sampler.__call__ inlined while its block lasts
                i = sampler._i
                if i != sampler._n:
                    sampler._i = i + 1
                    work = sampler._buf[i]
                else:
                    work = sampler()
                task.pod.cpu_start(task.proc, flow, work)
                return
            if kind == PARALLEL:
                branches = op[1]
                flow.pending = len(branches) + 1  # +1 holds the walk until every branch has started
                for branch in branches:
                    self.advance(Flow(task, branch, flow))
                flow.pending -= 1
                if flow.pending:
                    return
                pc = flow.pc
                continue
            handler = handlers[kind]
            if handler is route:
                handler = self.routes[op[1]]
            if not handler(flow, op):
                return
            pc = flow.pc
        parent = flow.parent
        if parent is None:
            self.on_task_done(task)
        else:
            parent.pending -= 1
            if parent.pending == 0 and task.alive:
                self.advance(parent)

    def unsupported_kinds(self, programs: list[tuple]) -> set[str]:
        """Step kinds used by `programs` that no component serves."""
        missing: set[str] = set()

        def visit(prog: tuple) -> None:
            for op in prog:
                if op[0] == PARALLEL:
                    for branch in op[1]:
                        visit(branch)
                elif op[0] != CPU and op[0] not in self.handlers:
                    missing.add(op[0])
                if op[0] == CALL and op[4]:
                    visit(op[4])

        for prog in programs:
            visit(prog)
        return missing
