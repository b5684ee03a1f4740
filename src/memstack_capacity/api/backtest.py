"""``backtest``: replay a recorded test through a (calibrated) scenario and compare with the recording.

The scenario given (with its ``--calibration`` overlays and ``--set`` already applied) is made to
replay the recording (:func:`replay_scenario`): the load profile and duration ``replay.yaml``
would set, and each deployment whose pods were recorded starting with the recorded count (held
within its HPA's bounds), so that the first minutes are not spent catching up with a start the
recording did not have. It is then simulated ``replications`` times (seeds seed, seed+1, …, in
this process: each run's request log is needed) and each run compared with the recording
(:mod:`memstack_capacity.results.backtest`).

:func:`backtest` is the public entry (``memstack_capacity.backtest``): it reads the recording from
its files, as ``backtest SCENARIO --prometheus DIR | --locust PREFIX [--mapping M]`` does, and
calls :func:`replay_and_compare`, which the CLI calls with the recording it has read.

>>> from memstack_capacity import backtest, calibrate, load_scenario
>>> scenario = load_scenario("scenarios/small.yaml")
>>> cal = calibrate(scenario, prometheus="prom/", mapping="prom/mapping.yaml")
>>> bt = backtest(scenario, calibration=cal, prometheus="prom/", mapping="prom/mapping.yaml", seed=2)
>>> bt.table()       # replica error, scale events, latency and throughput MAPE, as backtest.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memstack_capacity.results import backtest as metrics


@dataclass
class Backtest:
    """What :func:`backtest` found: the figures (``figures``, one run's or the means), each run's,
    the limits checked, and the series for the plots (recorded, and simulated per run)."""

    scenario: str
    recording: object
    seed: int
    replications: int
    replay: dict
    figures: dict
    runs: list[dict]
    simulated: list[dict]
    gates: list[dict] = field(default_factory=list)
    engine: str = ""
    calibration: list | None = None  # what calibrated the scenario, when backtest() was given it

    @property
    def passed(self) -> bool:
        """Every limit given is met (True when none was given)."""
        return all(g["met"] for g in self.gates)

    def table(self):
        """The figures as rows (backtest.md's): ``metric``, ``value`` (pods, seconds or a fraction),
        ``unit``, ``over`` (samples, events or windows compared) and ``note``; a quantity the
        recording lacks has value None and the note "not recorded"."""
        import pandas as pd

        f, rows = self.figures, []
        if isinstance(f["replicas"], str):
            rows.append(("replicas", None, "pods", "", f["replicas"]))
        else:
            for name, figs in f["replicas"].items():
                rows.append((f"replicas of {name}: mean absolute error", figs["mae_pods"], "pods",
                             f"{figs['samples']:g} samples", ""))
                rows.append((f"replicas of {name}: within ±1 pod", figs["within_1_pod"], "fraction",
                             f"{figs['samples']:g} samples", ""))
                for direction in ("up", "down"):
                    ev = figs["scale_events"][direction]
                    pairs = ", ".join(f"{p['difference_s']:+g} s" for p in ev.get("pairs") or [])
                    rows.append((f"scale-{direction}s of {name}: mean time difference", ev["mean_abs_difference_s"],
                                 "s", f"{ev['recorded']:g} recorded, {ev['simulated']:g} simulated",
                                 f"simulated − recorded, in order: {pairs}" if pairs else ""))
        for key in ("mean", "p95", "p99"):
            figs = f["latency"][key]
            if isinstance(figs, str):
                rows.append((f"latency ({key}): MAPE", None, "fraction", "", figs))
            else:
                rows.append((f"latency ({key}): MAPE", figs["mape"], "fraction", f"{figs['windows']:g} windows",
                             "" if figs["bias"] is None else f"bias {figs['bias']:+.1%}"))
        tp = f["throughput"]
        rows.append(("throughput: MAPE", tp["mape"], "fraction", f"{tp['windows']:g} windows",
                     "" if tp["bias"] is None else f"bias {tp['bias']:+.1%}"))
        return pd.DataFrame(rows, columns=["metric", "value", "unit", "over", "note"]).set_index("metric")

    def to_dict(self) -> dict:
        """backtest.json's content (without the overlays' record, which only the CLI knows)."""
        return self.as_dict()

    def as_dict(self, calibration: list | None = None) -> dict:
        calibration = calibration or self.calibration
        rec = self.recording
        out = {"scenario": self.scenario, "seed": self.seed, "replications": self.replications,
               "engine": self.engine,
               "recording": {"source": rec.source, "kind": rec.kind, "windows": int(len(rec.end)),
                             "window_s": rec.window_s, "duration_s": rec.duration_s, "notes": list(rec.notes)},
               "replay": self.replay}
        if calibration:
            out["calibration"] = calibration
        out.update(self.figures)
        if self.replications > 1:
            out["runs"] = [{"seed": self.seed + i, **r} for i, r in enumerate(self.runs)]
        out["gates"] = self.gates
        out["passed"] = self.passed
        return out


def replay_scenario(scenario, recording):
    """``scenario`` replaying ``recording``: its profile and duration, and the recorded initial pods."""
    settings = dict(recording.replay)
    for name, pods in recording.replicas.items():
        known = pods[np.isfinite(pods)]
        if not len(known):
            continue
        first = int(round(float(known[0])))
        hpa = scenario.deployments[name].hpa
        if hpa is not None:
            first = min(max(first, hpa.minReplicas or 1), hpa.maxReplicas)
        settings[f"deployments.{name}.replicas"] = max(first, 1)
    return scenario.with_overrides(settings, source=f"{scenario.name} replaying {recording.source}",
                                   label=lambda p: f"the recording {recording.source}: {p}"), settings


def replay_and_compare(scenario, recording, seed: int | None = None, replications: int = 1, engine: str = "auto",
                       max_replica_error: float | None = None, max_latency_error: float | None = None,
                       progress=None) -> Backtest:
    """Replay ``recording`` through ``scenario`` ``replications`` times and compare (module docstring)."""
    from memstack_capacity.api.simulation import simulate

    replayed, settings = replay_scenario(scenario, recording)
    seed = replayed.seed if seed is None else seed
    runs, simulated, used = [], [], ""
    for i in range(replications):
        result = simulate(replayed, seed=seed + i, engine=engine, progress=progress)
        used = result.record.engine
        sim = metrics.simulated_windows(result, recording)
        simulated.append(sim)
        runs.append(metrics.compare(recording, sim))
    figures = metrics.mean_figures(runs)
    return Backtest(scenario=scenario.name, recording=recording, seed=seed, replications=replications,
                    replay=settings, figures=figures, runs=runs, simulated=simulated,
                    gates=metrics.gate(figures, max_replica_error, max_latency_error), engine=used)


def backtest(scenario, *, calibration=None, prometheus: str | Path | None = None, locust: str | Path | None = None,
             mapping: str | Path | None = None, seed: int | None = None, replications: int = 1, engine: str = "auto",
             max_replica_error: float | None = None, max_latency_error: float | None = None,
             progress=None) -> Backtest:
    """Replay the recording in ``prometheus`` (a directory of query_range answers) or ``locust`` (a
    ``--csv`` prefix) through ``scenario`` and compare, as the CLI's ``backtest`` does. ``calibration``
    (a :class:`~memstack_capacity.calibration.estimates.Calibration`) is applied to ``scenario`` first,
    as ``--calibration calibration.yaml`` is, and named in the figures. ``max_replica_error`` (pods) and ``max_latency_error``
    (a fraction) are the limits :attr:`Backtest.passed` judges; a limit on a quantity the recording
    lacks, or bad input, raises :class:`~memstack_capacity.errors.MeasurementError`."""
    from memstack_capacity.calibration import measurements, recording as recording_mod
    from memstack_capacity.errors import MeasurementError, Problem

    if engine == "fluid":
        raise MeasurementError([Problem("engine", "a backtest compares each window's requests, and the flow model "
                                                  "keeps no request log; use auto or des", engine, True)])
    for name, value in (("max_replica_error", max_replica_error), ("max_latency_error", max_latency_error)):
        if value is not None and not value >= 0:
            raise MeasurementError([Problem(name, "expected a number 0 or more", value, True)])
    if calibration is not None:
        scenario = calibration.apply(scenario)
    rec = recording_mod.read(scenario, locust=locust, prometheus=prometheus,
                             mapping=measurements.load_mapping(mapping))
    if max_replica_error is not None and not rec.replicas:
        raise MeasurementError([Problem("max_replica_error", "replicas are not recorded (no pod count in the "
                                                             "recording); leave the limit out")], rec.source)
    if max_latency_error is not None and rec.latency_mean is None:
        raise MeasurementError([Problem("max_latency_error", "latency is not recorded in the recording; leave "
                                                             "the limit out")], rec.source)
    bt = replay_and_compare(scenario, rec, seed=seed, replications=replications, engine=engine,
                            max_replica_error=max_replica_error, max_latency_error=max_latency_error,
                            progress=progress)
    if calibration is not None:
        names = ", ".join(Path(s).name for s in calibration.sources)
        bt.calibration = [{"file": f"calibrate(seed={calibration.seed}) of {names}",
                           "keys": len(calibration.settings("service"))}]
    return bt
