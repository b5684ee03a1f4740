"""The windows every estimate reads, and the helpers the parsers share.

A parser turns a file into :class:`Raw`: per measured name (a Locust ``Name``, a k6 ``name``
tag, a Prometheus label value) the throughput and mean response time in each window, and the
series that are not per name (users, CPU cores, memory, replicas, in-flight requests). A
:class:`Mapping` says which measured name is which scenario request class; :func:`to_windows`
applies it and gives :class:`Windows`, the one shape the estimators read. Times are Unix
seconds at the window's start; rates are per second; response times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memstack_capacity.errors import MeasurementError, Problem

#: The series a source may give besides the per-name ones.
#: ``users_steady`` is 1 in a window where the user count did not change, 0 where it did.
SERIES = ("users", "users_steady", "cpu_cores", "memory_bytes", "replicas", "in_flight")

#: The largest measurement file read (a k6 CSV of a long test is large, but not this large).
MAX_BYTES = 2 * 1024**3


@dataclass
class Raw:
    """What one source measured, per window (index: window start, Unix seconds).

    ``throughput`` and ``response_s`` have one column per measured name; ``series`` the
    columns of :data:`SERIES` the source has. ``totals`` is the whole test per name
    (``count``, ``mean_response_s``) when the source has it (Locust's stats, k6's summary).
    ``window_s`` is the width of a window; ``one_window`` is True for a source that has
    only the whole test (k6's summary), which nothing fitted across windows can use.
    ``stamped_at_end`` is True where each window is stamped with its end (a Prometheus rate over
    (t − w, t] is stamped t), False where with its start (the load tests' own windows).
    """

    source: str
    window_s: float
    throughput: pd.DataFrame
    response_s: pd.DataFrame
    series: pd.DataFrame
    totals: pd.DataFrame | None = None
    one_window: bool = False
    notes: list[str] = field(default_factory=list)
    stamped_at_end: bool = False


@dataclass(frozen=True)
class Windows:
    """The measurements in scenario terms: one row per window, one column per request class.

    ``throughput`` (req/s) and ``response_s`` (mean seconds, NaN where the window had none)
    have the scenario's class names as columns; ``series`` holds the columns of
    :data:`SERIES` that were measured. ``t`` is seconds from the first window. ``recording`` is
    each window's recording (0, 1, … in the order given) when several were combined
    (:func:`combine`), None for one.
    """

    sources: tuple[str, ...]
    window_s: float
    t: np.ndarray
    throughput: pd.DataFrame
    response_s: pd.DataFrame
    series: pd.DataFrame
    totals: pd.DataFrame | None
    one_window: bool
    notes: tuple[str, ...]
    ignored: tuple[str, ...]
    recording: np.ndarray | None = None
    stamped_at_end: bool = False  # as the base source's windows (:class:`Raw`)

    @property
    def recordings(self) -> int:
        """How many recordings the windows come from."""
        return 1 if self.recording is None or len(self.recording) == 0 else int(self.recording.max()) + 1

    def has(self, name: str) -> bool:
        """Whether the series ``name`` (users, cpu_cores, …) was measured in some window."""
        return name in self.series.columns and bool(self.series[name].notna().any())


@dataclass(frozen=True)
class Mapping:
    """How measured names and files map onto the scenario (a small YAML file, ``--mapping``).

    ``classes``: measured name → scenario request class (several names may map to one class);
    ``ignore``: measured names left out without a note; ``deployment``: the scenario deployment
    whose CPU and memory were measured (default ``api``); ``window_s``: the width of a window when
    a source has single samples (k6's CSV, Locust's per-second history); ``prometheus``: the
    file of each quantity in a ``--prometheus`` directory, the label that names the request
    class, label values the CPU and memory series must have, and the latency unit.
    """

    classes: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    deployment: str = "api"
    window_s: float = 10.0
    prometheus: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


_MAPPING_KEYS = {"classes", "ignore", "deployment", "window", "prometheus"}
PROMETHEUS_FILES = {"cpu": "cpu.json", "memory": "memory.json", "replicas": "replicas.json",
                    "requests": "requests.json", "latency": "latency.json", "users": "users.json",
                    "in_flight": "in_flight.json", "latency_p95": "latency_p95.json",
                    "latency_p99": "latency_p99.json"}  # fmt: skip
_PROMETHEUS_KEYS = {"files", "class_label", "select", "latency_unit"}


def load_mapping(path: str | Path | None) -> Mapping:
    """The mapping file at ``path`` (YAML), or the defaults; MeasurementError naming each bad key."""
    if path is None:
        return Mapping()
    from memstack_capacity.scenario import safe_yaml
    from memstack_capacity.scenario.quantities import parse_duration

    source = str(path)
    text = read_text(path, safe_yaml.MAX_BYTES)
    try:
        data = safe_yaml.load_text(text)
    except Exception as exc:  # noqa: BLE001 - YAML's and the size limits' errors alike are bad input
        raise MeasurementError([Problem("", f"not valid YAML: {getattr(exc, 'problem', None) or exc}")],
                               source) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise MeasurementError([Problem("", "expected a mapping with keys " + ", ".join(sorted(_MAPPING_KEYS)))],
                               source)
    problems = [Problem(str(k), f"unknown key; allowed: {', '.join(sorted(_MAPPING_KEYS))}")
                for k in data if k not in _MAPPING_KEYS]
    classes = data.get("classes") or {}
    if not isinstance(classes, dict) or not all(isinstance(v, str) for v in classes.values()):
        problems.append(Problem("classes", "expected a mapping of measured name → scenario class name"))
        classes = {}
    ignore = data.get("ignore") or []
    if not isinstance(ignore, list):
        problems.append(Problem("ignore", "expected a list of measured names"))
        ignore = []
    deployment = data.get("deployment", "api")
    if not isinstance(deployment, str):
        problems.append(Problem("deployment", "expected a deployment's name", deployment, True))
        deployment = "api"
    window = 10.0
    if "window" in data:
        try:
            window = parse_duration(data["window"])
            if window <= 0:
                raise ValueError("must be above zero")
        except ValueError as exc:
            problems.append(Problem("window", f"expected a duration above zero such as 10s ({exc})",
                                    data["window"], True))
    prom = data.get("prometheus") or {}
    if not isinstance(prom, dict):
        problems.append(Problem("prometheus", "expected a mapping with keys " + ", ".join(sorted(_PROMETHEUS_KEYS))))
        prom = {}
    problems += [Problem(f"prometheus.{k}", f"unknown key; allowed: {', '.join(sorted(_PROMETHEUS_KEYS))}")
                 for k in prom if k not in _PROMETHEUS_KEYS]
    files = prom.get("files") or {}
    if not isinstance(files, dict):
        problems.append(Problem("prometheus.files", "expected a mapping of quantity → file name"))
        files = {}
    problems += [Problem(f"prometheus.files.{k}", f"unknown quantity; allowed: {', '.join(PROMETHEUS_FILES)}")
                 for k in files if k not in PROMETHEUS_FILES]
    problems += [Problem(f"prometheus.files.{k}", "expected a file name inside the --prometheus directory (no "
                                                  "folder, no '..')", v, True)
                 for k, v in files.items() if not isinstance(v, str) or v in ("", ".", "..") or "/" in v or "\\" in v]
    if prom.get("latency_unit", "s") not in ("s", "ms"):
        problems.append(Problem("prometheus.latency_unit", "expected s or ms", prom.get("latency_unit"), True))
    if not isinstance(prom.get("select") or {}, dict):
        problems.append(Problem("prometheus.select", "expected a mapping of label → value"))
    if problems:
        raise MeasurementError(problems, source)
    return Mapping(classes={str(k): v for k, v in classes.items()}, ignore=tuple(str(i) for i in ignore),
                   deployment=deployment, window_s=float(window), prometheus=prom, source=source)


def read_bytes(path: str | Path, limit: int = MAX_BYTES, *, unpack: bool = True, hint: str = "") -> bytes:
    """A measurement file's bytes (``.gz`` unpacked when ``unpack``), at most ``limit`` of them.

    Only a regular file is read (``/dev/zero``, a pipe or a socket would never end), and at most
    one byte beyond ``limit``, after unpacking: a small ``.gz`` that unpacks to gigabytes is
    refused like a large file. ``hint`` is added to the message of a missing file.
    MeasurementError naming the file otherwise.
    """
    import gzip
    import stat
    import zlib

    path = Path(path)
    source = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise MeasurementError([Problem("", "is a directory; expected a file")], source)
        if not stat.S_ISREG(info.st_mode):
            raise MeasurementError([Problem("", "is not a regular file (a device, pipe or socket); expected a "
                                                "file")], source)
        if info.st_size > limit:
            raise MeasurementError([Problem("", f"larger than {limit:,} bytes; not read")], source)
        opener = gzip.open if unpack and path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise MeasurementError([Problem("", "no such file" + (f"; {hint}" if hint else ""))], source) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise MeasurementError([Problem("", f"cannot be read: {getattr(exc, 'strerror', None) or exc}")],
                               source) from None
    if len(raw) > limit:
        raise MeasurementError([Problem("", f"larger than {limit:,} bytes unpacked; not read")], source)
    return raw


def read_text(path: str | Path, limit: int = MAX_BYTES) -> str:
    """A measurement file's text (see :func:`read_bytes`): UTF-8, a leading byte-order mark
    (which editors on Windows add) dropped; MeasurementError when it cannot be read."""
    raw = read_bytes(path, limit)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MeasurementError([Problem("", f"cannot be read as UTF-8 text: {exc}")], str(path)) from None


def read_csv(path: str | Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    """A CSV file as text cells, with its ``required`` columns checked; rows keep their line numbers
    (the index is the line in the file, the header being line 1)."""
    import io

    text = read_text(path)
    if not text.strip():
        raise MeasurementError([Problem("line 1", f"the file is empty; expected {what} with a header row")], str(path))
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise MeasurementError([Problem("", f"not a CSV table ({' '.join(str(exc).split())}); expected {what}")],
                               str(path)) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MeasurementError([Problem("line 1", f"the header lacks {', '.join(repr(c) for c in missing)}; "
                                                  f"expected {what} with the columns {', '.join(required)}")], str(path))
    frame.index = np.arange(2, len(frame) + 2)
    return frame


def numbers(frame: pd.DataFrame, column: str, path, *, allow_na: bool = False, non_negative: bool = True) -> pd.Series:
    """A column of text cells as floats; MeasurementError at the first bad cell's line.

    ``N/A`` and empty cells (what Locust writes before a name has a request) are NaN when
    ``allow_na``; anything else that is not a finite number is an error.
    """
    cells = frame[column].str.strip()
    values = pd.to_numeric(cells, errors="coerce")
    blank = cells.isin(["", "N/A", "NaN", "nan"])
    bad = values.isna() & ~(blank if allow_na else False)
    bad |= ~np.isfinite(values.fillna(0.0))
    if non_negative:
        bad |= values < 0
    if bad.any():
        line = int(bad.idxmax())
        expected = "a number of zero or more" if non_negative else "a number"
        expected += " (or N/A)" if allow_na else ""
        raise MeasurementError([Problem(f"line {line}, column {column!r}", f"expected {expected}",
                                        frame.at[line, column], True)], str(path))
    return values.astype(float)


def class_names(scenario) -> list[str]:
    return [r.name for r in scenario.workload.requests]


def _resolve(name: str, mapping: Mapping, classes: list[str]) -> str | None:
    """The scenario class a measured name stands for: the mapping's, the same name, or the last
    path segment of a URL-like name (``GET /v1/search`` → ``search``); None when none fits."""
    if name in mapping.classes:
        return mapping.classes[name]
    if name in classes:
        return name
    tail = name.split()[-1].rstrip("/").rsplit("/", 1)[-1].split("?")[0].lower() if name.strip() else ""
    lowered = {c.lower(): c for c in classes}
    return lowered.get(tail)


def to_windows(raws: list[Raw], mapping: Mapping, scenario) -> Windows:
    """The sources joined on their windows and their names mapped to the scenario's classes.

    The first source with per-name throughput sets the windows (give Prometheus first: the CPU
    it measured refers to its windows); every other source's windows are matched to the nearest
    within half a window. Throughput comes from that first source, response times from the first
    source that has them, each other series from the first that has it. Throughput of names
    mapped to one class adds up; their response times are averaged weighted by throughput. A
    mapping that names a class the scenario lacks, or measurements where no name fits any
    class, is an error naming both sides.
    """
    classes = class_names(scenario)
    unknown = sorted({c for c in mapping.classes.values() if c not in classes})
    if unknown:
        raise MeasurementError([Problem("classes", f"maps to {', '.join(unknown)}, which the scenario "
                                                   f"{scenario.name} lacks (its classes: {', '.join(classes)})")],
                               mapping.source)
    base = next((r for r in raws if not r.throughput.empty), raws[0])
    index = base.throughput.index if not base.throughput.empty else base.series.index
    step = base.window_s
    aligned = [_align(raw, index, step, raw is base) for raw in raws]
    ignored: set[str] = set()

    def by_class(x: pd.DataFrame, r: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        rate = pd.DataFrame(0.0, index=index, columns=classes)
        weight = pd.DataFrame(0.0, index=index, columns=classes)
        timed = pd.DataFrame(0.0, index=index, columns=classes)
        for name in x.columns:
            target = _resolve(str(name), mapping, classes)
            if target is None:
                if name not in mapping.ignore:
                    ignored.add(str(name))
                continue
            xs = x[name].fillna(0.0)
            rate[target] += xs
            if r is not None and name in r.columns:
                ok = r[name].notna() & (xs > 0)
                timed[target] += (r[name].where(ok, 0.0) * xs.where(ok, 0.0))
                weight[target] += xs.where(ok, 0.0)
        return rate, (timed / weight.where(weight > 0)).astype(float)

    throughput, response = by_class(aligned[raws.index(base)]["x"], aligned[raws.index(base)]["r"])
    if not response.notna().any().any():
        for raw, frames in zip(raws, aligned):
            if raw is not base and not frames["r"].empty and frames["r"].notna().any().any():
                response = by_class(frames["x"], frames["r"])[1]
                break
    series = pd.DataFrame(index=index, columns=list(SERIES), dtype=float)
    for frames in aligned:
        for column in frames["series"].columns:
            if not series[column].notna().any():
                series[column] = frames["series"][column]
    totals = next((_map_totals(r.totals, mapping, classes) for r in raws if r.totals is not None), None)
    names = sorted({str(n) for r in raws for n in r.throughput.columns} |
                   {str(n) for r in raws if r.totals is not None for n in r.totals.index})
    has_windows = float(throughput.to_numpy().sum()) > 0
    if not has_windows and not (totals is not None and totals["count"].sum() > 0):
        raise MeasurementError([Problem("names", f"no measured name fits a request class of scenario "
                                                 f"{scenario.name} (classes: {', '.join(classes)}; measured: "
                                                 f"{', '.join(names) or 'none'}); map them with --mapping "
                                                 "(classes: {measured name: class})")],
                               " + ".join(r.source for r in raws))
    if totals is not None:
        ignored |= {n for n in totals.attrs.get("unmatched", ()) if n not in mapping.ignore}
    notes = [n for r in raws for n in r.notes]
    if ignored:
        notes.append(f"measured names that fit no request class, left out: {', '.join(sorted(ignored))}")
    t = np.asarray(index, dtype=float)
    return Windows(sources=tuple(r.source for r in raws), window_s=float(step), t=t - (t[0] if len(t) else 0.0),
                   throughput=throughput.reset_index(drop=True), response_s=response.reset_index(drop=True),
                   series=series.reset_index(drop=True).astype(float), totals=totals,
                   one_window=all(r.one_window for r in raws), notes=tuple(notes), ignored=tuple(sorted(ignored)),
                   stamped_at_end=base.stamped_at_end)


def combine(recordings: list[Windows]) -> Windows:
    """Several recordings' windows as one set, each window marked with its recording.

    For recordings of the same system under different loads, such as one load test per mix of
    endpoints: classes whose shares never change within one test can be told apart across tests
    (docs/calibration.md). The windows follow one another in the order given; ``t`` runs on,
    each recording starting one window after the previous one ends. Every recording must have
    the same window width (the estimators turn rates into counts with it): a mismatch is an
    error naming both. The whole-test totals are added when every recording has them.
    """
    if len(recordings) == 1:
        return recordings[0]
    summaries = [s for w in recordings if w.one_window for s in w.sources]
    if summaries:
        raise MeasurementError([Problem("", "a whole-test summary (one window) cannot be combined with other "
                                            "recordings; give its windows (k6's CSV, Locust's history)")],
                               " + ".join(summaries))
    widths = sorted({w.window_s for w in recordings})
    if len(widths) > 1:
        raise MeasurementError([Problem("window", "the recordings have windows of "
                                        + " and ".join(f"{w:g} s" for w in widths)
                                        + "; combine recordings of one window width (set the mapping's window, or "
                                          "Prometheus' step, alike)")],
                               " + ".join(s for w in recordings for s in w.sources))
    step = widths[0]
    t, offset = [], 0.0
    for w in recordings:
        t.append(w.t + offset)
        offset += (float(w.t[-1]) if len(w.t) else -step) + 2 * step
    totals = None
    if all(w.totals is not None for w in recordings):
        counts = sum(w.totals["count"].fillna(0.0) for w in recordings)
        time = sum((w.totals["count"] * w.totals["mean_response_s"]).fillna(0.0) for w in recordings)
        totals = pd.DataFrame({"count": counts, "mean_response_s": time / counts.where(counts > 0)})
    notes = [f"recording {k + 1} ({', '.join(w.sources)}): {n}" for k, w in enumerate(recordings) for n in w.notes]
    return Windows(sources=tuple(s for w in recordings for s in w.sources), window_s=step, t=np.concatenate(t),
                   throughput=pd.concat([w.throughput for w in recordings], ignore_index=True),
                   response_s=pd.concat([w.response_s for w in recordings], ignore_index=True),
                   series=pd.concat([w.series for w in recordings], ignore_index=True),
                   totals=totals, one_window=all(w.one_window for w in recordings), notes=tuple(notes),
                   ignored=tuple(sorted({i for w in recordings for i in w.ignored})),
                   recording=np.concatenate([np.full(len(w.t), k) for k, w in enumerate(recordings)]))


def _align(raw: Raw, index: pd.Index, step: float, same: bool) -> dict[str, pd.DataFrame]:
    """``raw``'s frames on ``index``: as they are when it is the base, else each window matched to
    the nearest of ``raw``'s within half a window (NaN where none is that near)."""
    if same:
        return {"x": raw.throughput, "r": raw.response_s, "series": raw.series}

    def near(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty and len(frame.columns) == 0:
            return pd.DataFrame(index=index)
        frame = frame.sort_index()
        return frame.reindex(index, method="nearest", tolerance=max(step, raw.window_s) / 2)

    return {"x": near(raw.throughput), "r": near(raw.response_s), "series": near(raw.series)}


def _map_totals(totals: pd.DataFrame, mapping: Mapping, classes: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=classes, columns=["count", "time"])
    unmatched = []
    for name, row in totals.iterrows():
        target = _resolve(str(name), mapping, classes)
        if target is None:
            unmatched.append(str(name))
            continue
        if not math.isfinite(row["count"]):
            continue
        out.at[target, "count"] += row["count"]
        if math.isfinite(row.get("mean_response_s", float("nan"))):
            out.at[target, "time"] += row["count"] * row["mean_response_s"]
    out["mean_response_s"] = out["time"] / out["count"].where(out["count"] > 0)
    out = out[["count", "mean_response_s"]]
    out.attrs["unmatched"] = tuple(unmatched)
    return out
