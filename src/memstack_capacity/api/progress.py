"""Progress of batches of runs (replications, sweeps): one updating line on a terminal (rich) or in Jupyter.

Nothing is shown off a terminal (CI logs, pipes) or for batches that finish within a second.
The capacity search, whose loads take minutes each, says instead one plain line per load
tried (:class:`TrialLines`), on a terminal or not, so a CI log shows where the search is.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

#: ``progress(done, total)``, called as runs finish; while a run goes on in this process, also with
#: ``done`` plus the share of that run simulated so far (a float), so a display can keep moving.
ProgressFn = Callable[[float, int], None]


class RichBar:
    """A progress bar on a terminal stream, drawn by rich: ``label ━━━━━╺━━━━ 42% 5/12 runs 0:00:31``.

    rich sizes the bar to the terminal, redraws it in place and estimates the time left
    from the rate so far, which the hand-drawn ``[####    ]`` it replaces did not. It is
    redrawn only when called (no refresh thread): ``count`` is the text after the
    percentage (``5/12 runs``, ``sim 1,512/3,600 s``).
    """

    def __init__(self, label: str, stream):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        console = Console(file=stream, force_terminal=True, highlight=False)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TextColumn("{task.fields[count]}"), TimeRemainingColumn(), console=console,
                            auto_refresh=False)
        self.task = self.bar.add_task(label, total=None, count="")
        self.started = False

    def update(self, done: float, total: float, count: str) -> None:
        self.bar.update(self.task, completed=done, total=total, count=count)
        if not self.started:
            self.bar.start()
            self.started = True
        self.bar.refresh()

    def close(self) -> None:
        if self.started:
            self.bar.stop()
            self.started = False


class TerminalProgress:
    """``label ━━━━━━━━━━╺━━━━━━━━━ 42% 5/12 runs`` on stderr (:class:`RichBar`), only on a terminal."""

    def __init__(self, label: str, stream=None, delay_s: float = 1.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.delay_s = delay_s
        self.bar: RichBar | None = None

    def __call__(self, done: float, total: int) -> None:
        if not self.enabled or (time.perf_counter() - self.start < self.delay_s and done < total):
            return
        if self.bar is None:
            self.bar = RichBar(self.label, self.stream)
        self.bar.update(done, total, f"{int(done)}/{total} runs")
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NotebookProgress:
    """The same line in a Jupyter output cell, updated in place through IPython.display."""

    def __init__(self, label: str):
        from IPython.display import Pretty, display

        self.label = label
        self._pretty = Pretty
        self.handle = display(Pretty(f"{label}: starting"), display_id=True)

    def __call__(self, done: float, total: int) -> None:
        frac = done / total if total else 1.0
        self.handle.update(self._pretty(f"{self.label} [{'#' * int(frac * 30):<30}] {int(done)}/{total} runs"))


def _in_notebook() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def auto_progress(label: str, progress) -> ProgressFn | None:
    """``progress`` as given; for ``None``: a notebook line, a terminal line, or nothing; ``False``: nothing."""
    if progress is False:
        return None
    if progress is not None:
        return progress
    if _in_notebook():
        try:
            return NotebookProgress(label)
        except ImportError:
            return None
    bar = TerminalProgress(label)
    return bar if bar.enabled else None


#: Set to 0 to silence the progress lines written when stderr is not a terminal.
PROGRESS_VARIABLE = "MEMSTACK_PROGRESS"

#: What the engines are called in the progress lines.
_ENGINE_WORDS = {"fluid": "fluid screen", "des": "general engine", "fast": "compiled data plane",
                 "hybrid": "batched data plane",
                 "kernel": "per-pod kernel"}


def trial_line(label: str, trial) -> str:
    """``capacity peak: ×0.5 = 600.0 on the general engine → 0/1 runs met every target; missed: latency_p99 (1/1)``.

    A target judged on the screen's stand-in says so: ``latency_p99 on mean × ln(100) (1/1)``.
    """
    def missed(t: dict) -> str:
        on = f" on {t['stand_in'].split(' (')[0]}" if t.get("stand_in") else ""
        return f"{t['name']}{on} ({t['missed_runs']}/{trial.runs})"

    engine = getattr(trial, "engine", None)
    where = f" on the {_ENGINE_WORDS.get(engine, engine)}" if engine else ""
    text = ", ".join(missed(t) for t in trial.missed)
    return (f"{label}: ×{trial.multiplier:.3g} = {trial.load:,.1f}{where} → {trial.passed_runs}/{trial.runs} runs met "
            "every target" + (f"; missed: {text}" if text else ""))


class TrialLines:
    """``progress(trial)`` for the capacity search: one plain line per load tried (:func:`trial_line`).

    Written on a terminal and off one alike (a line per load is not noise in a CI log: loads
    take seconds to minutes); ``MEMSTACK_PROGRESS=0`` silences it off a terminal, as it does
    the commands' heartbeat lines.
    """

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = tty or os.environ.get(PROGRESS_VARIABLE, "") != "0"

    def __call__(self, trial) -> None:
        if self.enabled:
            self.stream.write(trial_line(self.label, trial) + "\n")
            self.stream.flush()


def auto_trial_progress(label: str, progress):
    """``progress`` as given; ``None``: :class:`TrialLines` on stderr; ``False``: nothing."""
    if progress is False:
        return None
    return TrialLines(label) if progress is None else progress
