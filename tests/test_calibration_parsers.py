"""The calibration parsers on small hand-written files of each format (tests/data/calibration/).

Every expected number is worked out by hand from the fixture (the comments in
``locust_stats_history.csv``'s test say how): Locust's windows from its cumulative columns, k6's
from its samples, Prometheus' from the series summed over pods. Malformed files must give a
MeasurementError naming the file, the line or series and what was expected, and the CLI exit 2
without a traceback.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from memstack_capacity.calibration import k6, locust, measurements, overlay, prometheus
from memstack_capacity.cli import main
from memstack_capacity.errors import MeasurementError
from memstack_capacity.scenario.load import load_scenario

from pathlib import Path

DATA = Path(__file__).parent / "data" / "calibration"
SCENARIO = DATA / "scenario.yaml"


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(SCENARIO)


def test_locust_windows_from_the_cumulative_columns(scenario):
    # Window 2 s: (0, 2], (2, 4], (4, 6] after the first row. /v1/search's Total Request Count
    # is 0, 9, 20, 30 at the edges, so 9, 11, 10 requests (4.5, 5.5, 5 req/s); its Total Average
    # Response Time × count is 0, 360, 820, 1260 ms, so means of 360/9 = 40, 460/11 = 41.82 and
    # 440/10 = 44 ms. /v1/items: 0, 3, 8, 10 requests and 0, 180, 500, 640 ms: 1.5, 2.5, 1 req/s at
    # 60, 64, 70 ms. Users 10, 10, 10 | 20, 20 | 20 (the row at an edge belongs to the window it ends).
    raw = locust.read(DATA / "locust", window_s=2.0)
    w = measurements.to_windows([raw], measurements.Mapping(), scenario)
    np.testing.assert_allclose(w.throughput["search"], [4.5, 5.5, 5.0])
    np.testing.assert_allclose(w.throughput["items"], [1.5, 2.5, 1.0])
    np.testing.assert_allclose(w.response_s["search"], [0.040, 0.460 / 11, 0.044])
    np.testing.assert_allclose(w.response_s["items"], [0.060, 0.064, 0.070])
    np.testing.assert_allclose(w.series["users"], [10, 20, 20])
    np.testing.assert_allclose(w.series["users_steady"], [1, 1, 1])
    np.testing.assert_allclose(w.t, [0, 2, 4])
    # _stats.csv: the whole test, Average Response Time in ms.
    assert w.totals.loc["search"].tolist() == pytest.approx([30, 0.042])
    assert w.totals.loc["items"].tolist() == pytest.approx([10, 0.064])


def test_locust_mapping_names_classes_and_unmatched_names_are_noted(scenario, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("classes: {/v1/items: search}\n")
    raw = locust.read(DATA / "locust", window_s=2.0)
    w = measurements.to_windows([raw], measurements.load_mapping(mapping), scenario)
    # Both endpoints now count as search (the mapping wins over the name), items has none.
    np.testing.assert_allclose(w.throughput["search"], [6.0, 8.0, 6.0])
    np.testing.assert_allclose(w.throughput["items"], [0, 0, 0])


def test_k6_csv_windows(scenario):
    # Window 2 s from 1700000000: search (name tag) at 0, 1 | 2 → 1.0, 0.5 req/s at (40+60)/2 = 50
    # and 30 ms; items (no name tag: the URL /v1/items) at 1 | 3 → 0.5, 0.5 req/s at 100, 80 ms;
    # vus 5, 5 | 8, 8. http_req_blocked is not read.
    raw = k6.read(DATA / "k6.csv", window_s=2.0)
    w = measurements.to_windows([raw], measurements.Mapping(), scenario)
    np.testing.assert_allclose(w.throughput["search"], [1.0, 0.5])
    np.testing.assert_allclose(w.throughput["items"], [0.5, 0.5])
    np.testing.assert_allclose(w.response_s["search"], [0.050, 0.030])
    np.testing.assert_allclose(w.response_s["items"], [0.100, 0.080])
    np.testing.assert_allclose(w.series["users"], [5, 8])
    assert w.totals.loc["search", "count"] == 3 and w.totals.loc["items", "count"] == 2
    assert w.totals.loc["search", "mean_response_s"] == pytest.approx(130 / 3 / 1000)


def test_k6_timestamps_in_milliseconds_and_rfc3339_read_the_same(scenario, tmp_path):
    text = (DATA / "k6.csv").read_text()
    millis = tmp_path / "ms.csv"
    millis.write_text(text.replace(",1700000000,", ",1700000000000,").replace(",1700000001,", ",1700000001000,")
                      .replace(",1700000002,", ",1700000002000,").replace(",1700000003,", ",1700000003000,"))
    a = measurements.to_windows([k6.read(DATA / "k6.csv", 2.0)], measurements.Mapping(), scenario)
    b = measurements.to_windows([k6.read(millis, 2.0)], measurements.Mapping(), scenario)
    np.testing.assert_allclose(a.throughput, b.throughput)


def test_k6_summary_is_one_window(scenario):
    # 400 requests at 10/s: a 40 s test; search 300 → 7.5 req/s at 40 ms, items 100 → 2.5 req/s at 60 ms.
    raw = k6.read(DATA / "k6_summary.json", window_s=10.0)
    assert raw.one_window and raw.window_s == 40.0
    w = measurements.to_windows([raw], measurements.Mapping(), scenario)
    assert w.throughput.loc[0].tolist() == pytest.approx([7.5, 2.5])
    assert w.response_s.loc[0].tolist() == pytest.approx([0.040, 0.060])
    assert w.series.loc[0, "users"] == 5


def test_prometheus_sums_pods_filters_by_label_and_reads_nan(scenario):
    mapping = measurements.load_mapping(DATA / "prometheus" / "mapping.yaml")
    raw = prometheus.read(DATA / "prometheus", mapping)
    w = measurements.to_windows([raw], mapping, scenario)
    assert w.window_s == 15.0
    np.testing.assert_allclose(w.throughput["search"], [10, 20, 30, 40])
    np.testing.assert_allclose(w.throughput["items"], [5, 5, 10, 10])
    # Two api pods summed; the istio-proxy container (1 core) is left out by select.
    np.testing.assert_allclose(w.series["cpu_cores"], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(w.series["memory_bytes"], [6e8] * 4)
    np.testing.assert_allclose(w.series["replicas"], [2] * 4)
    assert np.isnan(w.response_s["items"][0]) and w.response_s["items"][1] == pytest.approx(0.1)


def _problem(exc: MeasurementError) -> str:
    return str(exc)


@pytest.mark.parametrize("call, where, what", [
    (lambda: locust.read(DATA / "bad_history", 2.0), "line 12, column 'Total Request Count'", "expected a number"),
    (lambda: locust.read(DATA / "bad_header", 2.0), "line 1", "'Request Count'"),
    (lambda: k6.read(DATA / "k6_bad_value.csv", 2.0), "line 13, column 'metric_value'", "zero or more"),
    (lambda: k6.read(DATA / "k6_summary_bad.json", 2.0), "metrics.http_reqs.count", "expected a number"),
    (lambda: prometheus.read(DATA / "prometheus_bad", measurements.Mapping()), "data.resultType", "matrix"),
    (lambda: measurements.load_mapping(DATA / "bad_mapping.yaml"), "windw", "unknown key"),
])
def test_malformed_files_name_the_file_the_place_and_what_was_expected(call, where, what):
    with pytest.raises(MeasurementError) as info:
        call()
    text = str(info.value)
    assert where in text and what in text, text
    assert str(DATA) in text, text


def test_prometheus_bad_points_name_the_series(tmp_path):
    (tmp_path / "requests.json").write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"handler": "search"}, "values": [[1, "2"], [2, "lots"]]}]}}))
    with pytest.raises(MeasurementError) as info:
        prometheus.read(tmp_path, measurements.Mapping())
    assert 'data.result[0].values[1] (series {handler="search"})' in str(info.value)
    assert "expected [unix_time, \"number\"]" in str(info.value)
    (tmp_path / "requests.json").write_text(json.dumps({"status": "error", "errorType": "bad_data", "error": "parse"}))
    with pytest.raises(MeasurementError, match="bad_data: parse"):
        prometheus.read(tmp_path, measurements.Mapping())


def test_a_mapping_to_a_class_the_scenario_lacks_is_refused(scenario, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("classes: {/v1/search: nosuch}\n")
    raw = locust.read(DATA / "locust", 2.0)
    with pytest.raises(MeasurementError, match="nosuch, which the scenario calfixture lacks"):
        measurements.to_windows([raw], measurements.load_mapping(mapping), scenario)


def test_names_that_fit_no_class_are_an_error_naming_both_sides(tmp_path):
    other = load_scenario(Path(__file__).parents[1] / "scenarios" / "small.yaml")
    with pytest.raises(MeasurementError, match=r"classes: read, write; measured: /v1/items, /v1/search"):
        measurements.to_windows([locust.read(DATA / "locust", 2.0)], measurements.Mapping(), other)


def test_cli_exit_2_on_malformed_input_without_a_traceback(tmp_path, capsys):
    code = main(["calibrate", "--scenario", str(SCENARIO), "--k6", str(DATA / "k6_bad_value.csv"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "k6_bad_value.csv" in err and "line 13" in err and "Traceback" not in err
    code = main(["calibrate", "--scenario", str(SCENARIO), "--out", str(tmp_path / "out")])
    assert code == 2 and "--locust PREFIX, --k6 FILE or --prometheus DIR" in capsys.readouterr().err


def test_overlay_file_errors(tmp_path):
    bad = tmp_path / "cal.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(MeasurementError, match="expected a mapping of dotted scenario keys"):
        overlay.load(bad)
    with pytest.raises(MeasurementError, match="no such file"):
        overlay.load(tmp_path / "missing.yaml")


def test_k6_a_last_window_the_test_ended_inside_is_left_out_of_the_windows_not_the_totals(scenario, tmp_path):
    """k6 stamps samples with their second: samples at 0 … 4 s cover [0, 5). With 2 s windows that
    is [0, 2) and [2, 4) whole and [4, 6) one second in: counted over its 2 s it would read half
    the rate, so it is left out; the whole test's totals keep every request."""
    rows = ["metric_name,timestamp,metric_value,name,url"]
    rows += [f"http_reqs,{1700000000 + s},1,search,http://api/v1/search" for s in range(5)]
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    w = measurements.to_windows([k6.read(path, window_s=2.0)], measurements.Mapping(), scenario)
    np.testing.assert_allclose(w.throughput["search"], [1.0, 1.0])
    assert w.totals.loc["search", "count"] == 5


def test_k6_summary_a_sub_metric_of_more_tags_is_a_part_of_the_class_not_the_class(scenario, tmp_path):
    """A threshold on `http_reqs{name:search,status:200}` exports that sub-metric too: it counts
    only search's 200s, so it must not replace `http_reqs{name:search}`, whichever comes last."""
    data = json.loads((DATA / "k6_summary.json").read_text())
    data["metrics"]["http_reqs{name:search,status:200}"] = {"count": 290, "rate": 7.25}
    data["metrics"]["http_req_duration{name:search,status:200}"] = {"avg": 39.0, "min": 1, "max": 90}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    w = measurements.to_windows([k6.read(path, window_s=10.0)], measurements.Mapping(), scenario)
    assert w.throughput.loc[0].tolist() == pytest.approx([7.5, 2.5])
    assert w.response_s.loc[0].tolist() == pytest.approx([0.040, 0.060])
