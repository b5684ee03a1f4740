"""The command line: ``python -m memstack_capacity COMMAND``.

Each command lives in its own module with a ``register(subparsers)`` function;
commands parse, call the library, print, and return an exit code. This module
maps every exception to an exit code at its edge: 2 for bad input, 3 for a Dask scheduler
that cannot be reached, 1 for a simulation error or an internal error (a bug: one line saying what failed and where to report it),
130 for Ctrl-C; a traceback only with ``--debug`` or ``MEMSTACK_DEBUG=1``. It may import
every layer; nothing in the package imports it but ``__main__``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from memstack_capacity.cli.common import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, SchedulerUnavailable,
                                          argument_problem)
from memstack_capacity.errors import MemstackCapacityError, ScenarioError

#: Command modules, in the order `--help` lists them.
COMMAND_MODULES = ("run", "check", "sweep", "capacity", "recommend", "calibrate", "backtest", "manifests",
                   "scenario_commands")

#: Set to 1 to print the traceback of an internal error, as --debug does.
DEBUG_VARIABLE = "MEMSTACK_DEBUG"

#: Where an internal error asks to be reported.
REPORT_TO = "the memstack-capacity issue tracker"

DEBUG_HELP = f"on an internal error, print the traceback (also ${DEBUG_VARIABLE}=1)"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with the contract's bad-input code (2) and says why."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


class _TopParser(_Parser):
    """The top-level parser: an argument no parser knows is reported with the usage of the
    command it was given to (argparse's own parse_args reports it with the top-level usage)."""

    commands: dict = {}

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse hook
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.commands.get(getattr(parsed, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _TopParser(
        prog="python -m memstack_capacity",
        description="Capacity planning for MemStack on Kubernetes: simulate, judge targets, emit manifests.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"memstack_capacity.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"memstack_capacity.cli.{name}":
                raise
            continue
        module.register(subparsers)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    for command in subparsers.choices.values():
        # SUPPRESS: a command's default must not undo `--debug` given before the command.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    parser.commands = dict(subparsers.choices)
    return parser


def debugging(args) -> bool:
    """Whether --debug was given or $MEMSTACK_DEBUG is set (to anything but empty or 0)."""
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def internal_error_line(exc: BaseException, command: str) -> str:
    """One line for an unexpected exception: what failed, where in the code, and where to report it."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}memstack_capacity{os.sep}" in f.filename] or frames
    where = ""
    if ours:
        frame = ours[-1]
        path = frame.filename.split(f"{os.sep}memstack_capacity{os.sep}")[-1]
        where = f" at memstack_capacity/{path}:{frame.lineno} in {frame.name}"
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    if isinstance(exc, MemoryError):
        return (f"error: `{command}` ran out of memory{where}; see the limits on scale (docs/reference/limits.md) "
                f"or rerun with --debug for the traceback")
    return (f"internal error in `{command}`: {type(exc).__name__}: {text}{where}. This is a bug: please report it "
            f"to {REPORT_TO} with the command and the scenario; rerun with --debug (or {DEBUG_VARIABLE}=1) "
            f"for the traceback")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = argument_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SchedulerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except MemstackCapacityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly; point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the edge: a bug becomes one line and exit 1, never a traceback
        if debugging(args):
            traceback.print_exc()
        print(internal_error_line(exc, args.command), file=sys.stderr)
        return EXIT_FAILED
