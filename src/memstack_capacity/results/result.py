"""The Result of one run: the summary and the frames, built lazily from the RunRecord.

Simulated time starts at 0. Where a wall clock is needed (the OpenMetrics export, a
``DatetimeIndex``), t = 0 sits at the *anchor*: :data:`DEFAULT_ANCHOR` unless told, a fixed
instant so that the same run writes the same bytes every time.
"""

from __future__ import annotations

import html
from datetime import datetime
from functools import cached_property

import pandas as pd

from memstack_capacity.engine.capabilities import TITLES
from memstack_capacity.results import frames
from memstack_capacity.results.alert_series import alert_summary
from memstack_capacity.results.summary import judge_targets, summarize


#: Where simulated t = 0 sits in wall-clock time unless told otherwise: midnight UTC on
#: 1 January 2026. Fixed, not "now", so outputs are the same bytes from run to run; set it to
#: the start of the real window a run is to be compared with (docs/reference/results.md).
DEFAULT_ANCHOR = "2026-01-01T00:00:00Z"


def anchor_timestamp(anchor: str | datetime | pd.Timestamp | float | None = None) -> pd.Timestamp:
    """The anchor as a UTC ``pd.Timestamp`` (whole seconds kept as given).

    ``None`` is :data:`DEFAULT_ANCHOR`; a number is Unix seconds; a string is ISO 8601; a
    value without a time zone is read as UTC.
    """
    value = DEFAULT_ANCHOR if anchor is None else anchor
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = pd.Timestamp(value, unit="s")
    else:
        stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise ValueError(f"anchor {anchor!r}: not a time")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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

    def series_at(self, anchor: str | datetime | pd.Timestamp | float | None = None) -> pd.DataFrame:
        """:attr:`series` with a pandas time index, for ``resample``, ``rolling("1min")`` and joins.

        Without ``anchor``: a ``TimedeltaIndex`` named ``t``, simulated time since the start
        (``result.series_at().resample("1min").mean()``). With one (see
        :func:`anchor_timestamp`; ``"default"`` for :data:`DEFAULT_ANCHOR`, the OpenMetrics
        export's): a UTC ``DatetimeIndex`` named ``time``, to line the run up with real data.
        Same columns and values as :attr:`series`; a new frame each call.
        """
        series = self.series
        elapsed = pd.to_timedelta(series.index.to_numpy(dtype="float64"), unit="s")
        if anchor is None:
            index = pd.TimedeltaIndex(elapsed, name="t")
        else:
            start = anchor_timestamp(None if anchor == "default" else anchor)
            index = pd.DatetimeIndex(start + elapsed, name="time")
        return series.set_axis(index, axis=0)

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

    def _repr_html_(self) -> str:
        """A small table for Jupyter: scenario, engine, verdict, the headline figures, the targets.

        Every name from the scenario is escaped; nothing is loaded from elsewhere.
        """
        return result_html(self)

    def __repr__(self) -> str:
        req = self.summary["requests"]
        return (
            f"<Result {self.scenario.name} seed={self.seed}: {req['completed']} ok, {req['failed']} failed, "
            f"{req['throughput_rps']:.1f} req/s>"
        )


def _figure(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _row(name: str, value: str) -> str:
    return f"<tr><th style=\"text-align:left\">{html.escape(name)}</th><td style=\"text-align:left\">{value}</td></tr>"


def result_html(result: Result) -> str:
    """The HTML of :meth:`Result._repr_html_` (a few rows; every scenario-given name escaped)."""
    summary, esc = result.summary, html.escape
    req, latency = summary["requests"], summary["requests"]["latency_s"]
    verdict = "all targets met" if summary["met"] else "a target missed"
    colour = "#1a7f37" if summary["met"] else "#cf222e"
    rows = [
        _row("scenario", f"<code>{esc(str(result.scenario.name))}</code>, seed {int(result.seed)}, "
                         f"{result.scenario.duration:g} s (warm-up {result.scenario.warmup:g} s)"),
        _row("engine", esc(TITLES.get(result.record.engine, str(result.record.engine)))),
        _row("verdict", f"<b style=\"color:{colour}\">{verdict}</b>"),
        _row("requests", f"{req['completed']:,} ok, {req['failed']:,} failed ({req['error_rate']:.2%}), "
                         f"{req['throughput_rps']:,.1f} req/s"),
        _row("latency", f"p50 {_figure(latency['p50'], '.3g')} s, p99 {_figure(latency['p99'], '.3g')} s"),
    ]
    for name, dep in summary["deployments"].items():
        replicas = dep["replicas"]
        rows.append(_row(f"{name} replicas", f"{_figure(replicas['min'], 'g')}–{_figure(replicas['max'], 'g')} "
                                             f"(mean {_figure(replicas['mean'], '.1f')}), OOMKills {dep['oom_kills']}, "
                                             f"restarts {dep['restarts']}"))
    for target in summary["targets"]:
        mark = "met" if target["met"] else "<b>missed</b>"
        rows.append(_row(f"target {target['name']}", f"{mark}: {_figure(target['value'], '.4g')} "
                                                     f"({esc(str(target['kind']))} {_figure(target['limit'], 'g')})"))
    return f"<table class=\"memstack-result\"><caption>memstack-capacity Result</caption>{''.join(rows)}</table>"
