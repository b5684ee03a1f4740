"""``backtest``: replay a recorded test through a (calibrated) scenario and compare with the recording.

The scenario given (with its ``--calibration`` overlays and ``--set`` already applied) is made to
replay the recording (:func:`replay_scenario`): the load profile and duration ``replay.yaml``
would set, and each deployment whose pods were recorded starting with the recorded count (held
within its HPA's bounds), so that the first minutes are not spent catching up with a start the
recording did not have. It is then simulated ``replications`` times (seeds seed, seed+1, …, in
this process: each run's request log is needed) and each run compared with the recording
(:mod:`memstack_capacity.results.backtest`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    @property
    def passed(self) -> bool:
        return all(g["met"] for g in self.gates)

    def as_dict(self, calibration: list | None = None) -> dict:
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


def backtest(scenario, recording, seed: int | None = None, replications: int = 1, engine: str = "auto",
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
