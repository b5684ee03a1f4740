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
