"""Hostile and careless measurement files: each is read as its tool wrote it or refused with the
file, the place and what was expected (exit 2, no traceback, no output directory).

The formats are those of the tools' own writers (cited in each parser's docstring): a byte-order
mark is what editors on Windows put before a file's text, and is not part of the data; a device,
a pipe or a file that unpacks to more than the limit would be read until memory runs out.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from memstack_capacity.calibration import k6, measurements, overlay, prometheus
from memstack_capacity.cli import main
from memstack_capacity.errors import MeasurementError

DATA = Path(__file__).parent / "data" / "calibration"
SCENARIO = DATA / "scenario.yaml"
BOM = b"\xef\xbb\xbf"


def test_a_summary_export_with_a_byte_order_mark_is_read_as_the_summary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_bytes(BOM + (DATA / "k6_summary.json").read_bytes())
    raw = k6.read(path, window_s=10.0)
    # The same figures as without the mark: 400 requests at 10/s, a 40 s test (test_calibration_parsers).
    assert raw.one_window and raw.window_s == 40.0


def test_a_query_range_answer_with_a_byte_order_mark_is_read(tmp_path):
    for f in (DATA / "prometheus").iterdir():
        (tmp_path / f.name).write_bytes((BOM if f.suffix == ".json" else b"") + f.read_bytes())
    mapping = measurements.load_mapping(tmp_path / "mapping.yaml")
    raw = prometheus.read(tmp_path, mapping)
    assert raw.throughput["/v1/search"].tolist() == [10, 20, 30, 40]


def test_a_gz_that_unpacks_beyond_the_limit_is_refused(tmp_path):
    path = tmp_path / "k6.csv.gz"
    path.write_bytes(gzip.compress(b"metric_name,timestamp,metric_value\n" + b"vus,1,1\n" * 5000))
    assert path.stat().st_size < 1000
    with pytest.raises(MeasurementError, match="larger than 1,000 bytes unpacked"):
        measurements.read_text(path, limit=1000)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_before_it_is_read(tmp_path, capsys):
    with pytest.raises(MeasurementError, match="not a regular file"):
        overlay.load("/dev/zero")
    code = main(["calibrate", "--scenario", str(SCENARIO), "--k6", "/dev/zero", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "/dev/zero" in err and "not a regular file" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _history(rows_per_second) -> str:
    """A Locust history in the column order of Locust's stats.py (stats_history_csv_columns, the
    default percentiles), from ``[(second, [(type, name, users, p95_ms, p99_ms, total, mean_ms)])]``."""
    head = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
            "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
            "Total Min Response Time,Total Max Response Time,Total Average Content Size")
    lines = [head]
    for second, rows in rows_per_second:
        for typ, name, users, p95, p99, total, mean in rows:
            pct = ["N/A"] * 11 if not total else [p95] * 5 + [p95, p99, p99, p99, p99, p99]
            lines.append(",".join(str(v) for v in [1_700_000_000 + second, users, typ, name, "1.000000", "0.000000",
                                                     *pct, total, 0, mean, mean, mean, mean, 100]))
    return "\n".join(lines) + "\n"


def test_locust_full_history_gives_the_windows_percentiles(tmp_path):
    """With --csv-full-history (a row per endpoint, then Aggregated) the percentile columns are
    Locust's current window, compared per window: the Aggregated row last in each window."""
    from memstack_capacity.calibration import recording
    from memstack_capacity.scenario.load import load_scenario

    seconds = []
    for s in range(0, 21):  # 20 s, 10 search requests a second at 40 ms; p95 30 ms in the first 10 s, 50 after
        total = 10 * s
        p95 = 30 if s <= 10 else 50
        seconds.append((s, [("GET", "/v1/search", 10, p95, p95 + 5, total, 40.0),
                            ("", "Aggregated", 10, p95, p95 + 5, total, 40.0)]))
    prefix = tmp_path / "full"
    Path(f"{prefix}_stats_history.csv").write_text(_history(seconds))
    rec = recording.read(load_scenario(SCENARIO), locust=str(prefix),
                         mapping=measurements.Mapping(window_s=10.0))
    assert rec.latency_p95.tolist() == pytest.approx([0.030, 0.050])
    assert rec.latency_p99.tolist() == pytest.approx([0.035, 0.055])


def test_locust_windows_are_whole_the_last_row_on_an_edge_or_inside_one(tmp_path):
    """Rows every second at 10 requests a second. To 20 s: windows (0, 10], (10, 20], no third (a row
    on an edge opens none, and an empty third window read 0 req/s). To 25 s: still two — the
    history stops inside (20, 30], whose 50 requests over 10 s would read 5 req/s, half the load."""
    from memstack_capacity.calibration import locust

    for last in (20, 25):
        seconds = [(s, [("GET", "/v1/search", 10, 30, 35, 10 * s, 40.0), ("", "Aggregated", 10, 30, 35, 10 * s, 40.0)])
                   for s in range(0, last + 1)]
        prefix = tmp_path / f"to{last}"
        Path(f"{prefix}_stats_history.csv").write_text(_history(seconds))
        raw = locust.read(prefix, window_s=10.0)
        assert raw.throughput["/v1/search"].tolist() == [10.0, 10.0], last
        assert raw.series["users"].tolist() == [10.0, 10.0], last


def test_calibrate_replaces_its_directory_whole_and_refuses_a_foreign_one(tmp_path, capsys):
    """One recording writes replay.yaml (its load to replay); two recordings write none. Calibrating
    twice into one directory must leave the second's files only — a replay.yaml left from the first
    would replay a test the calibration no longer describes."""
    out = tmp_path / "cal"
    prefix = str(DATA / "locust")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("window: 2s\n")
    common = ["calibrate", "--scenario", str(SCENARIO), "--mapping", str(mapping), "--locust", prefix]
    assert main([*common, "--out", str(out)]) == 0
    assert (out / "replay.yaml").exists()
    assert main([*common, "--locust", prefix, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["calibration.md",
                                                                                   "calibration.yaml"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    capsys.readouterr()
    code = main([*common, "--out", str(foreign)])
    err = capsys.readouterr().err
    assert code == 2 and "not a previous run's outputs" in err and "Traceback" not in err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_a_mapping_file_name_must_stay_inside_the_prometheus_directory(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("prometheus:\n  files: {cpu: /etc/hostname, memory: ../memory.json, users: users.json}\n")
    with pytest.raises(MeasurementError) as info:
        measurements.load_mapping(mapping)
    text = str(info.value)
    assert "prometheus.files.cpu" in text and "prometheus.files.memory" in text and str(mapping) in text
    assert "prometheus.files.users" not in text
