"""Writing a run's outputs to a directory, all or nothing.

Everything is written into a hidden sibling directory first and renamed into place at
the end, so an interrupted or failed run never leaves a directory that looks complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from memstack_capacity.outputs.csv_text import write_csv
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.report_files import write_report

#: gzip at level 1: a third of level 9's time for a file ~15 % larger; mtime 0 keeps the
#: bytes the same from run to run (deterministic outputs).
GZIP = {"method": "gzip", "mtime": 0, "compresslevel": 1}


def write_run(result, out_dir: str | Path, report: bool = True, summary: dict | None = None, replications=None) -> Path:
    """Write summary.json, timeseries.csv, requests.csv.gz, scaling.csv, the report and manifests.

    With replications, pass the combined ``summary`` (means and 95 % intervals) and the list
    of Results: the frames are the first replication's, the report covers them all.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        (staging / "summary.json").write_text(summary_json(summary or result.summary), encoding="utf-8")
        result.timeseries.to_csv(staging / "timeseries.csv", index=False, float_format="%.6g")
        write_csv(result.requests, staging / "requests.csv.gz", decimals=6, compression=GZIP)
        result.scaling.to_csv(staging / "scaling.csv", index=False)
        if len(result.jobs):
            write_csv(result.jobs, staging / "jobs.csv.gz", decimals=6, compression=GZIP)
        result.pods.to_csv(staging / "pods.csv", index=False)
        if report:
            write_report(replications if replications else result, staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
