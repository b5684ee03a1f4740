"""``calibrate``: a scenario's service times estimated from a recorded test, as ``calibrate`` does.

>>> from memstack_capacity import calibrate, load_scenario
>>> scenario = load_scenario("scenarios/small.yaml")
>>> cal = calibrate(scenario, prometheus="prom/", mapping="prom/mapping.yaml", seed=1)
>>> cal.table()                 # each estimate, its 95 % interval, whether the data identify it
>>> calibrated = cal.apply(scenario)                 # the service times (calibration.yaml's keys)
>>> replayed = cal.apply(scenario, replay=True)      # and the recorded load (replay.yaml's too)

The files are read by the same parsers and the same mapping as the CLI's ``calibrate --scenario S
--prometheus DIR [--locust PREFIX | --k6 FILE] [--mapping M] --seed N`` (:func:`read_windows`), and
the estimates are the same (``cli/calibrate.py`` calls this module), so ``cal.apply(scenario)`` is the
scenario ``run S --calibration calibration.yaml`` simulates. Each source may be one path or a list
of them, one per recording (several recordings are fitted together; docs/calibration.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from memstack_capacity.calibration import estimates, measurements
from memstack_capacity.calibration.estimates import Calibration
from memstack_capacity.errors import MeasurementError, Problem

__all__ = ["calibrate", "read_windows", "Calibration"]

Paths = Union[str, Path, Sequence[Union[str, Path]], None]


def _paths(value: Paths) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def read_windows(scenario, *, prometheus: Paths = None, locust: Paths = None, k6: Paths = None,
                 mapping: str | Path | measurements.Mapping | None = None) -> measurements.Windows:
    """The measured windows of every recording given, mapped onto ``scenario``'s classes and combined.

    With ``prometheus`` and a load test (``locust`` or ``k6``) both, the k-th Prometheus directory
    goes with the k-th load test. Bad input raises :class:`~memstack_capacity.errors.MeasurementError`
    naming the file and what was expected.
    """
    proms, locusts, k6s = _paths(prometheus), _paths(locust), _paths(k6)
    if locusts and k6s:
        raise MeasurementError([Problem("", "give one load test, locust or k6 (with prometheus beside it if you "
                                            "have it)")])
    tests = locusts or k6s
    if not (proms or tests):
        raise MeasurementError([Problem("", "give the measurements: locust (a --csv prefix), k6 (a file) or "
                                            "prometheus (a directory of query_range answers)")])
    if proms and tests and len(proms) != len(tests):
        raise MeasurementError([Problem("", f"prometheus given {len(proms)} recording(s) and "
                                            f"{'locust' if locusts else 'k6'} {len(tests)}: with both, give one of "
                                            "each per recording, in the same order")])
    parsed = mapping if isinstance(mapping, measurements.Mapping) else measurements.load_mapping(mapping)
    recordings = []
    for k in range(max(len(proms), len(tests))):
        raws = []
        if proms:
            from memstack_capacity.calibration import prometheus as prom_mod

            raws.append(prom_mod.read(proms[k], parsed, requests_needed=not tests))
        if locusts:
            from memstack_capacity.calibration import locust as locust_mod

            raws.append(locust_mod.read(tests[k], parsed.window_s))
        if k6s:
            from memstack_capacity.calibration import k6 as k6_mod

            raws.append(k6_mod.read(tests[k], parsed.window_s))
        recordings.append(measurements.to_windows(raws, parsed, scenario))
    return measurements.combine(recordings)


def calibrate(scenario, *, prometheus: Paths = None, locust: Paths = None, k6: Paths = None,
              mapping: str | Path | None = None, seed: int = 0) -> Calibration:
    """Every estimate (CPU per request, non-CPU time, memory, think time, mix, load profile) for
    ``scenario`` from the recordings given; the bootstrap is seeded by ``seed`` (the same data and
    seed give the same estimates). The deployment measured is the mapping's (default ``api``)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise MeasurementError([Problem("seed", "expected a whole number 0 or more", seed, True)])
    parsed = measurements.load_mapping(mapping)
    windows = read_windows(scenario, prometheus=prometheus, locust=locust, k6=k6, mapping=parsed)
    return estimates.calibrate(windows, scenario, parsed.deployment, seed=seed)
