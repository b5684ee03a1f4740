"""Writing a run's outputs to a directory, all or nothing.

Everything is written into a hidden sibling directory first, with the marker that makes it
a run's outputs written last, and swapped into place atomically (:mod:`.rundir`), so an
interrupted or failed run leaves the previous outputs complete and never a half-written
directory.
"""

from __future__ import annotations

from pathlib import Path

from memstack_capacity.outputs.csv_text import write_csv
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.report_files import write_report
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in

#: gzip at level 1: a third of level 9's time for a file ~15 % larger; mtime 0 keeps the
#: bytes the same from run to run (deterministic outputs).
GZIP = {"method": "gzip", "mtime": 0, "compresslevel": 1}


def write_run(result, out_dir: str | Path, report: bool = True, summary: dict | None = None, replications=None) -> Path:
    """Write summary.json, timeseries.csv, requests.csv.gz, scaling.csv, the report and manifests.

    With replications, pass the combined ``summary`` (means and 95 % intervals) and the list
    of Results: the frames are the first replication's, the report covers them all.
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
        if report:
            write_report(replications if replications else result, staging)
        swap_in(staging, out_dir)
    except BaseException:
        discard_staging(staging)
        raise
    return out_dir
