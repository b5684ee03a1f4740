"""Writing a run's outputs to a directory, all or nothing.

Everything is written into a hidden sibling directory first, with the marker that makes it
a run's outputs written last, and swapped into place atomically (:mod:`.rundir`), so an
interrupted or failed run leaves the previous outputs complete and never a half-written
directory.

Beside the CSV files every frame is also written as Parquet (the same columns, with the
frames' dtypes: categories stay categories), and the series as OpenMetrics text with a
Grafana dashboard for them (:mod:`.openmetrics`, :mod:`.grafana`), timestamped from the
anchor (:data:`~memstack_capacity.results.result.DEFAULT_ANCHOR` unless given).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from memstack_capacity.outputs.csv_text import write_csv
from memstack_capacity.outputs.grafana import dashboard_json
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.openmetrics import openmetrics_text
from memstack_capacity.outputs.report_files import write_report
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in

#: gzip at level 1: a third of level 9's time for a file ~15 % larger; mtime 0 keeps the
#: bytes the same from run to run (deterministic outputs).
GZIP = {"method": "gzip", "mtime": 0, "compresslevel": 1}
#: Parquet with snappy, pyarrow's default: half zstd's time on peak.yaml's 1.4 M requests for a
#: file ~10 % larger (measured: 1.6 s against 3.0 s).
PARQUET = {"engine": "pyarrow", "index": False, "compression": "snappy"}
OPENMETRICS_FILE, GRAFANA_FILE = "openmetrics.txt", "grafana-dashboard.json"


def write_run(result, out_dir: str | Path, report: bool = True, summary: dict | None = None, replications=None,
              anchor=None) -> Path:
    """Write summary.json, the frames (CSV and Parquet), the series as OpenMetrics with a Grafana
    dashboard, the report and manifests.

    With replications, pass the combined ``summary`` (means and 95 % intervals) and the list
    of Results: the frames are the first replication's, the report covers them all. ``anchor``
    is the wall-clock time of simulated t = 0 in the OpenMetrics file and the dashboard.
    """
    out_dir = Path(out_dir)
    staging = new_staging(out_dir)
    try:
        (staging / "summary.json").write_text(summary_json(summary or result.summary), encoding="utf-8")
        result.timeseries.to_csv(staging / "timeseries.csv", index=False, float_format="%.6g")
        write_csv(result.requests, staging / "requests.csv.gz", decimals=6, compression=GZIP)
        result.scaling.to_csv(staging / "scaling.csv", index=False)
        if len(result.jobs):
            write_csv(result.jobs, staging / "jobs.csv.gz", decimals=6, compression=GZIP)
        result.pods.to_csv(staging / "pods.csv", index=False)
        write_parquet(result, staging)
        (staging / OPENMETRICS_FILE).write_text(openmetrics_text(result, anchor), encoding="utf-8")
        (staging / GRAFANA_FILE).write_text(dashboard_json(result, anchor), encoding="utf-8")
        if report:
            write_report(replications if replications else result, staging)
        swap_in(staging, out_dir)
    except BaseException:
        discard_staging(staging)
        raise
    return out_dir


def parquet_frames(result) -> dict[str, pd.DataFrame]:
    """The frames written as Parquet, by file stem: those of the CSV files (``jobs`` when any finished)."""
    frames = {"timeseries": result.timeseries, "requests": result.requests, "scaling": result.scaling,
              "pods": result.pods}
    if len(result.jobs):
        frames["jobs"] = result.jobs
    return frames


def write_parquet(result, directory: Path) -> None:
    """``<frame>.parquet`` for every frame of :func:`parquet_frames`; ``pd.read_parquet`` gives it back equal."""
    for stem, frame in parquet_frames(result).items():
        frame.to_parquet(directory / f"{stem}.parquet", **PARQUET)
