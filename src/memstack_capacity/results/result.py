"""The Result of one run: the summary and the frames, built lazily from the RunRecord."""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from memstack_capacity.results import frames
from memstack_capacity.results.alert_series import alert_summary
from memstack_capacity.results.summary import judge_targets, summarize


class Result:
    """What :func:`memstack_capacity.simulate` returns.

    ``summary`` is a JSON-serialisable dict (the contract's ``summary.json``);
    ``requests``, ``timeseries``, ``scaling``, ``pods`` and ``jobs`` are DataFrames.
    """

    def __init__(self, record):
        self.record = record
        self.scenario = record.scenario
        self.seed = record.seed

    @cached_property
    def requests(self) -> pd.DataFrame:
        return frames.log_frame(self.record.recorder.requests, [c.name for c in self.scenario.workload.requests])

    @cached_property
    def jobs(self) -> pd.DataFrame:
        return frames.log_frame(self.record.recorder.jobs, [j.name for j in self.scenario.workload.jobs])

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        return frames.timeseries_frame(self.record.recorder.samples)

    @cached_property
    def series(self) -> pd.DataFrame:
        """The time series wide: one column per ``component/metric``, indexed by ``t_s``."""
        return frames.wide(self.timeseries)

    @cached_property
    def scaling(self) -> pd.DataFrame:
        return frames.scaling_frame(self.record.recorder.scaling)

    @cached_property
    def pods(self) -> pd.DataFrame:
        return frames.pods_frame(self.record.recorder.pod_events)

    @cached_property
    def summary(self) -> dict:
        summary = summarize(self.record, self.requests, self.timeseries)
        summary["alerts"] = alert_summary(self)
        verdicts = judge_targets(summary, self.scenario.targets)
        summary["targets"] = verdicts
        summary["met"] = all(v["met"] for v in verdicts)
        return summary

    def __repr__(self) -> str:
        req = self.summary["requests"]
        return (
            f"<Result {self.scenario.name} seed={self.seed}: {req['completed']} ok, {req['failed']} failed, "
            f"{req['throughput_rps']:.1f} req/s>"
        )
