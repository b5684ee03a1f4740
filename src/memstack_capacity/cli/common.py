"""Arguments and helpers the commands share: the scenario, --seed, --set, progress."""

from __future__ import annotations

import sys
import time

from memstack_capacity.scenario.load import load_scenario


def add_scenario_arguments(parser, replications: bool = True) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario YAML file")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
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


def load_from_args(args):
    overrides = {}
    if args.overrides:
        from memstack_capacity.scenario.overrides import parse_set_argument

        for item in args.overrides:
            key, value = parse_set_argument(item)
            overrides[key] = value
    return load_scenario(args.scenario, overrides or None)


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
