"""The formats SREs and pandas users already read: OpenMetrics text, a Grafana dashboard,
Parquet frames, ``Result.series_at`` with a pandas time index, and ``Result._repr_html_``.

One short run of ``peak.yaml`` (API, worker, datastores, jobs) feeds every check.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from memstack_capacity import load_scenario, simulate
from memstack_capacity.outputs import files as files_mod
from memstack_capacity.outputs.files import GRAFANA_FILE, OPENMETRICS_FILE, parquet_frames, write_run
from memstack_capacity.outputs.grafana import dashboard_json
from memstack_capacity.outputs.openmetrics import DEPLOYMENT_GAUGES, families, metric_name, openmetrics_text
from memstack_capacity.results.result import DEFAULT_ANCHOR, anchor_timestamp, result_html

parser = pytest.importorskip("prometheus_client.openmetrics.parser")

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_S = pd.Timestamp(DEFAULT_ANCHOR).timestamp()
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@pytest.fixture(scope="module")
def result():
    scenario = load_scenario(ROOT / "scenarios" / "peak.yaml").with_overrides({"duration": "2m", "warmup": "30s"})
    return simulate(scenario, seed=1)


@pytest.fixture(scope="module")
def text(result):
    return openmetrics_text(result)


@pytest.fixture(scope="module")
def parsed(text):
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def _frame_series(result, component: str, metric: str) -> pd.DataFrame:
    ts = result.timeseries
    sel = ts[(ts["component"] == component) & (ts["metric"] == metric)].sort_values("t_s")
    return sel[["t_s", "value"]].reset_index(drop=True)


def _samples(family, **labels) -> tuple[np.ndarray, np.ndarray]:
    chosen = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return (np.array([float(s.timestamp) for s in chosen]), np.array([s.value for s in chosen], dtype=float))


# ---- OpenMetrics -------------------------------------------------------------------------------


def test_openmetrics_parses_with_the_names_an_sre_expects(parsed):
    for name in ("kube_deployment_spec_replicas", "kube_deployment_status_replicas",
                 "kube_deployment_status_replicas_ready", "container_memory_working_set_bytes",
                 "memstack_ingress_latency_seconds", "memstack_queue_size"):
        assert parsed[name].type == "gauge", name
    assert parsed["container_cpu_usage_seconds"].type == "counter"
    assert parsed["http_requests"].type == "counter"
    assert {s.labels["deployment"] for s in parsed["kube_deployment_status_replicas"].samples} == {"api", "worker"}
    assert {s.labels["status"] for s in parsed["http_requests"].samples} >= {"200", "503", "504"}


def test_openmetrics_gauges_equal_the_frames(result, parsed):
    for dep in result.scenario.deployments:
        for metric, (name, _help) in DEPLOYMENT_GAUGES.items():
            frame = _frame_series(result, dep, metric)
            t, v = _samples(parsed[name], deployment=dep)
            np.testing.assert_array_equal(v, frame["value"].to_numpy())
            np.testing.assert_allclose(t, ANCHOR_S + frame["t_s"].to_numpy(), rtol=0, atol=1e-6)
    frame = _frame_series(result, "ingress", "latency_p99_s")
    np.testing.assert_array_equal(_samples(parsed["memstack_ingress_latency_seconds"], quantile="0.99")[1],
                                  frame["value"].to_numpy())
    # Every other series under memstack_<metric>{component}, value for value.
    frame = _frame_series(result, "neo4j", "utilization")
    np.testing.assert_array_equal(_samples(parsed[metric_name("utilization")], component="neo4j")[1],
                                  frame["value"].to_numpy())
    frame = _frame_series(result, "worker", "jobs/running")
    np.testing.assert_array_equal(_samples(parsed["memstack_jobs_running"], component="worker")[1],
                                  frame["value"].to_numpy())


def test_openmetrics_counters_integrate_the_rates(result, parsed):
    dt = result.scenario.sample_interval
    cpu = _frame_series(result, "api", "cpu_cores")
    _t, used = _samples(parsed["container_cpu_usage_seconds"], deployment="api")
    np.testing.assert_allclose(np.diff(used, prepend=0.0) / dt, cpu["value"].to_numpy(), rtol=1e-9, atol=1e-9)
    ok = _frame_series(result, "ingress", "throughput_rps")
    _t, answered = _samples(parsed["http_requests"], status="200")
    np.testing.assert_allclose(np.diff(answered, prepend=0.0) / dt, ok["value"].to_numpy(), rtol=1e-9, atol=1e-9)


def test_every_frame_row_is_exported_once(result):
    """One line per row of the long frame: a gauge's value, or a counter's running total."""
    assert sum(len(f.lines) for f in families(result)) == len(result.timeseries)


def test_openmetrics_keeps_the_rules_promtool_enforces(text):
    """What the Python parser does not check but Prometheus' TSDB does: each series' samples in
    strictly increasing time, no series at one time twice, a family's lines together, ``_total``
    on counters, valid names, and ``# EOF`` last."""
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    declared, current, kinds = [], None, {}
    last: dict[str, float] = {}
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in kinds, f"family {name} declared twice"
            kinds[name], current = kind, name
            declared.append(name)
            continue
        if line.startswith("# HELP "):
            assert line.split(" ")[2] == current
            continue
        series, _value, stamp = line.rsplit(" ", 2)
        sample = series.split("{", 1)[0]
        assert NAME.fullmatch(sample), sample
        assert sample == current or sample == current + "_total", f"{sample} outside its family {current}"
        if kinds[current] == "counter":
            assert sample.endswith("_total")
        assert float(stamp) > last.get(series, -np.inf), f"{series}: time not increasing at {stamp}"
        last[series] = float(stamp)
    assert len(declared) == len(set(declared))


def test_the_anchor_sets_the_timestamps(result):
    first = _first_stamp(openmetrics_text(result, "2026-03-02T18:00:00+01:00"))
    assert first == pd.Timestamp("2026-03-02T17:00:00Z").timestamp() + result.scenario.sample_interval
    assert _first_stamp(openmetrics_text(result)) == ANCHOR_S + result.scenario.sample_interval
    assert anchor_timestamp(0) == pd.Timestamp("1970-01-01T00:00:00Z")
    assert anchor_timestamp("2026-05-01 12:00") == pd.Timestamp("2026-05-01T12:00:00Z")
    with pytest.raises(ValueError):
        anchor_timestamp("not a time")


def _first_stamp(text: str) -> float:
    return float(next(line for line in text.splitlines() if not line.startswith("#")).rsplit(" ", 1)[1])


# ---- Grafana -----------------------------------------------------------------------------------


def test_grafana_dashboard_is_a_valid_model_over_the_exported_names(result, parsed):
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads(dashboard_json(result))
    model = Dashboard.from_json(data)
    assert json.loads(JSONEncoder(sort_keys=True).encode(model)) == data, "a key the model does not know"
    titles = [p["title"] for p in data["panels"]]
    assert titles == ["Replicas", "CPU", "Memory", "Request rate", "Latency", "Errors"]
    assert data["time"] == {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:02:00Z"}
    assert data["templating"]["list"][0]["type"] == "datasource"
    names = {s.name for f in parsed.values() for s in f.samples}
    for panel in data["panels"]:
        assert panel["type"] == "timeseries" and panel["targets"]
        for target in panel["targets"]:
            used = set(re.findall(r"([a-z_:]+)\{", target["expr"]))
            assert used and used <= names, (panel["title"], used - names)
    assert len({(p["gridPos"]["x"], p["gridPos"]["y"]) for p in data["panels"]}) == 6


# ---- Parquet and the run directory ------------------------------------------------------------


def test_write_run_writes_parquet_equal_to_the_frames_and_to_the_csv_columns(result, tmp_path):
    out = write_run(result, tmp_path / "run", report=False)
    for stem, frame in parquet_frames(result).items():
        back = pd.read_parquet(out / f"{stem}.parquet")
        pd.testing.assert_frame_equal(back, frame)
        csv = out / (f"{stem}.csv.gz" if stem in ("requests", "jobs") else f"{stem}.csv")
        assert list(pd.read_csv(csv, nrows=1).columns) == list(frame.columns)
    assert "jobs" in parquet_frames(result) or not len(result.jobs)
    assert (out / OPENMETRICS_FILE).read_text(encoding="utf-8") == openmetrics_text(result)
    assert (out / GRAFANA_FILE).read_text(encoding="utf-8") == dashboard_json(result)
    marker = json.loads((out / ".memstack-run.json").read_text(encoding="utf-8"))
    assert {OPENMETRICS_FILE, GRAFANA_FILE, "timeseries.parquet"} <= set(marker["files"])


def test_a_failing_new_output_leaves_no_directory(result, tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("export failed")

    monkeypatch.setattr(files_mod, "dashboard_json", broken)
    with pytest.raises(RuntimeError):
        write_run(result, tmp_path / "run", report=False)
    assert list(tmp_path.iterdir()) == []


# ---- pandas and Jupyter ------------------------------------------------------------------------


def test_series_at_gives_a_time_index_pandas_resamples(result):
    plain, timed = result.series, result.series_at()
    assert isinstance(timed.index, pd.TimedeltaIndex) and timed.index.name == "t"
    assert list(timed.columns) == list(plain.columns)
    np.testing.assert_array_equal(timed.to_numpy(), plain.to_numpy())
    np.testing.assert_array_equal(timed.index.total_seconds(), plain.index.to_numpy(dtype=float))
    per_minute = timed["api/replicas_desired"].resample("1min").max()
    assert per_minute.max() == plain["api/replicas_desired"].max()
    assert timed["ingress/throughput_rps"].rolling("30s").mean().notna().all()
    dated = result.series_at("default")
    assert isinstance(dated.index, pd.DatetimeIndex) and str(dated.index.tz) == "UTC"
    assert dated.index[0] == pd.Timestamp(DEFAULT_ANCHOR) + pd.Timedelta(seconds=result.scenario.sample_interval)
    assert result.series_at("2026-06-01T00:00:00Z").index[0].month == 6
    assert isinstance(result.series.index, pd.Index) and result.series.index.dtype == float  # unchanged


def test_repr_html_names_scenario_engine_and_verdict(result):
    page = result._repr_html_()
    assert "<code>peak</code>" in page and "the compiled data plane" in page
    assert ("all targets met" in page) == result.summary["met"]
    assert "api replicas" in page and "target latency_p99" in page
    assert len(page) < 4000


def test_repr_html_escapes_every_name(result):
    summary = json.loads(json.dumps(result.summary))
    summary["deployments"] = {"<img src=x onerror=alert(1)>": summary["deployments"]["api"]}
    summary["targets"] = [dict(summary["targets"][0], name="<script>t</script>", kind="<b>")]
    fake = SimpleNamespace(summary=summary, seed=1, record=SimpleNamespace(engine="<i>engine</i>"),
                           scenario=SimpleNamespace(name="<script>alert(1)</script>", duration=60.0, warmup=0.0))
    page = result_html(fake)
    for raw in ("<script", "<img", "<i>"):
        assert raw not in page, raw
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x", "&lt;i&gt;engine", "(&lt;b&gt; "):
        assert escaped in page, escaped


PROMTOOL = __import__("shutil").which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_promtool_turns_the_export_into_tsdb_blocks(text, tmp_path):
    """The real consumer: ``promtool tsdb create-blocks-from openmetrics`` reads the file and writes
    blocks, and ``promtool tsdb analyze`` counts in them exactly the series the export holds."""
    import subprocess

    source, blocks = tmp_path / "openmetrics.txt", tmp_path / "data"
    source.write_text(text, encoding="utf-8")
    made = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    assert [p for p in blocks.iterdir() if (p / "meta.json").is_file()], "no block written"
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    series = {line[: line.rindex("}") + 1] if "}" in line else line.split(" ", 1)[0] for line in samples}
    analyzed = subprocess.run([PROMTOOL, "tsdb", "analyze", str(blocks)], capture_output=True, text=True, timeout=120)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    assert re.search(r"^Series: (\d+)$", analyzed.stdout, re.M).group(1) == str(len(series))
