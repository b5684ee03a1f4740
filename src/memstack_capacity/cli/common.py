"""Arguments and helpers the commands share: the exit codes, the scenario, --seed, --set, progress."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from memstack_capacity.errors import Problem, ScenarioError
from memstack_capacity.scenario.load import load_scenario

#: The contract's exit codes: 0 done (targets met, a load found), 1 the simulation failed or its
#: answer is no (a target missed, no load passes), 2 bad input (nothing was simulated).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


#: The environment variable that picks the engine when --engine is not given.
ENGINE_VARIABLE = "MEMSTACK_ENGINE"
ENGINE_CHOICES = ("auto", "des", "hybrid", "kernel", "fluid")


def add_scenario_arguments(parser, replications: bool = True, seed: bool = True) -> None:
    """SCENARIO, --set, and for a command that simulates --seed, --engine (and --replications)."""
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario YAML file")
    if seed:
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
        parser.add_argument("--engine", default=None, metavar="ENGINE",
                            help=f"{', '.join(ENGINE_CHOICES)} (default: ${ENGINE_VARIABLE}, else auto: the fastest "
                                 "engine that models everything the scenario uses; docs/performance.md)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value by dotted path, e.g. deployments.api.hpa.maxReplicas=30 (repeatable)",
    )
    if replications:
        parser.add_argument("--replications", type=int, default=1, metavar="K", help="independent runs (seeds seed..seed+K-1)")


def load_from_args(args, simulates: bool = True):
    """The scenario the arguments name, with its --set overrides; for a command that simulates,
    also settles ``args.engine`` (--engine, else $MEMSTACK_ENGINE, else auto) and checks that
    engine can run the scenario, saying on stderr when auto has to take the slow general engine."""
    overrides = {}
    if args.overrides:
        from memstack_capacity.scenario.overrides import parse_set_argument

        for item in args.overrides:
            key, value = parse_set_argument(item)
            overrides[key] = value
    scenario = load_scenario(args.scenario, overrides or None)
    if simulates:
        settle_engine(args, scenario)
    return scenario


def settle_engine(args, scenario) -> None:
    """``args.engine`` from --engine (or run's --mode fluid), else the environment, else auto; checked."""
    from memstack_capacity.engine.capabilities import choose, fallback_note

    source = str(args.scenario)
    field, requested = "--engine", getattr(args, "engine", None)
    if getattr(args, "mode", None) == "fluid":
        if requested not in (None, "fluid"):
            raise ScenarioError([Problem("--mode", "fluid contradicts --engine (give one of them)", requested, True)],
                                source)
        requested = "fluid"
    if requested is None and os.environ.get(ENGINE_VARIABLE):
        field, requested = ENGINE_VARIABLE, os.environ[ENGINE_VARIABLE]
    requested = requested or "auto"
    if requested not in ENGINE_CHOICES:
        hint = " (an environment variable; unset it for auto)" if field == ENGINE_VARIABLE else ""
        raise ScenarioError([Problem(field, f"must be one of {', '.join(ENGINE_CHOICES)}{hint}", requested, True)],
                            source)
    try:
        choice = choose(scenario, requested)
    except ScenarioError as exc:
        raise ScenarioError([Problem(field, p.message, p.value, p.has_value) for p in exc.problems], source) from None
    note = fallback_note(choice)
    if note:
        print(note, file=sys.stderr)
    args.engine = requested


def output_dir_problem(out: Path) -> str | None:
    """Why ``out`` cannot take a run's outputs, or None; before anything is simulated.

    A directory is replaced only when it is new, empty, or a previous run's outputs holding
    nothing but what the run wrote (its marker lists it); what a killed run left beside it
    is finished first (:func:`memstack_capacity.outputs.rundir.prepare`).
    """
    from memstack_capacity.outputs.rundir import prepare

    return prepare(out)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and after the first seconds."""

    def __init__(self, label: str, delay_s: float = 2.0, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()
        self.delay_s = delay_s
        self.shown = False

    def __call__(self, done: float, total: float) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < self.delay_s and done < total:
            return
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac:6.1%} sim {done:,.0f}/{total:,.0f}s eta {eta:4.0f}s")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
