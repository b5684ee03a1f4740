"""Progress of batches of runs (replications, sweeps): one updating line on a terminal or in Jupyter.

Nothing is shown off a terminal (CI logs, pipes) or for batches that finish within a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

#: ``progress(done, total)``, called as runs finish; while a run goes on in this process, also with
#: ``done`` plus the share of that run simulated so far (a float), so a display can keep moving.
ProgressFn = Callable[[float, int], None]


class TerminalProgress:
    """``label [#####     ] 5/12 runs`` on one line of stderr, only on a terminal."""

    def __init__(self, label: str, stream=None, delay_s: float = 1.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.delay_s = delay_s
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (time.perf_counter() - self.start < self.delay_s and done < total):
            return
        frac = done / total if total else 1.0
        self.stream.write(f"\r{self.label} [{'#' * int(frac * 30):<30}] {done}/{total} runs")
        self.stream.flush()
        self.shown = True
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


class NotebookProgress:
    """The same line in a Jupyter output cell, updated in place through IPython.display."""

    def __init__(self, label: str):
        from IPython.display import Pretty, display

        self.label = label
        self._pretty = Pretty
        self.handle = display(Pretty(f"{label}: starting"), display_id=True)

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        self.handle.update(self._pretty(f"{self.label} [{'#' * int(frac * 30):<30}] {done}/{total} runs"))


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
