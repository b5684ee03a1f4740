"""The command line: ``python -m memstack_capacity COMMAND``.

Each command lives in its own module with a ``register(subparsers)`` function;
commands parse, call the library, print, and return an exit code. This module
maps the package's errors to exit codes: 2 for bad input, 1 for a simulation
error, and never shows a traceback for either. It may import every layer; nothing in the
package imports it but ``__main__``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from memstack_capacity.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from memstack_capacity.errors import MemstackCapacityError, ScenarioError

#: Command modules, in the order `--help` lists them.
COMMAND_MODULES = ("run", "check", "sweep", "capacity", "manifests", "scenario_commands")


class _Parser(argparse.ArgumentParser):
    """argparse that exits with the contract's bad-input code (2) and says why."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemstackCapacityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly; point stdout at devnull so the
        # interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
