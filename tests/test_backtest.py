"""``backtest``: the metrics on hand-made series, and the round trip simulate → export → calibrate → backtest.

The round trip's recording is ``small.yaml`` given an HPA (1–10 pods at 50 % of ``requests.cpu``,
scale-down window 60 s) and stepped 20 → 120 → 200 → 40 users over 10 min, so the API scales
1 → 3 → 5–6 → 1 pods; it is exported as Prometheus answers (outputs/prometheus_export.py),
calibrated, and the calibrated scenario backtested against it with another seed.

Bounds, measured over six recording seeds (11–16, the backtest's seed each + 100):
- replicas within ±1 pod 95.0–100 % of the samples, mean absolute error 0.08–0.40 pods
  (the HPA's decisions fall in other 15 s syncs from run to run, so a jump 1 → 3 is ±1 for a sample);
- latency MAPE of the per-window mean 0.066–0.085 with the scenario's true parameters: the
  sampling noise of means over 100–1000 requests per 5 s window (cv ≈ 1 gives 3–10 % per
  window, and the difference of two such means about 1.13× that); 0.069–0.095 calibrated: the
  noise plus calibration's bias of +1.6 to +6.2 % (docs/calibration.md, "Not yet": waits at low
  load the model does not add by itself land in the call times). Asserted: ≤ 0.10 true, ≤ 0.12
  calibrated; a CPU ×2 calibration gives 1.28–1.83 (fails a 0.20 gate) and 1.86–2.32 pods (fails 1.0).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from memstack_capacity import load_scenario, simulate
from memstack_capacity.cli import main
from memstack_capacity.outputs.prometheus_export import write_query_range
from memstack_capacity.results import backtest as bt

ROOT = Path(__file__).parents[1]
PROFILE = [{"at": 0, "users": 20}, {"at": 120, "users": 20}, {"at": 121, "users": 120}, {"at": 300, "users": 120},
           {"at": 301, "users": 200}, {"at": 420, "users": 200}, {"at": 421, "users": 40}]
HPA = {"minReplicas": 1, "maxReplicas": 10,
       "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                              "averageUtilization": 50}}}],
       "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}


# ---- the metrics on hand-made series -----------------------------------------------------------


def test_replica_errors_by_hand():
    rec = [1, 1, 3, 3, 5, np.nan]
    sim = [1, 2, 1, 3, 5, 4]
    # |diff| over the 5 known samples: 0, 1, 2, 0, 0 → MAE 3/5; within ±1: 4 of 5.
    assert bt.replica_errors(rec, sim) == {"mae_pods": pytest.approx(0.6), "within_1_pod": pytest.approx(0.8),
                                           "samples": 5}


def test_mape_and_bias_by_hand():
    rec = [10.0, 20.0, 0.0, 40.0, np.nan]
    sim = [11.0, 15.0, 5.0, 40.0, 3.0]
    # windows 0, 1, 3 (rec 0 and NaN left out): +0.10, −0.25, 0 → MAPE 0.35/3, bias −0.15/3.
    got = bt.mape(rec, sim)
    assert got["mape"] == pytest.approx(0.35 / 3)
    assert got["bias"] == pytest.approx(-0.05)
    assert got["windows"] == 3
    assert bt.mape([0.0], [1.0]) == {"mape": None, "bias": None, "windows": 0}


def test_scale_events_merge_runs_and_match_in_order():
    t = [0, 5, 10, 15, 20, 25, 30, 35, 40]
    rec = [1, 1, 2, 4, 4, 3, 1, 1, 2]  # up at 10 (1→4 over two samples), down at 25 (4→1), up at 40
    sim = [1, 3, 3, 3, 3, 3, 2, 2, 1]  # up at 5, down at 30 (3→2), down at 40 (2→1)
    ev_rec = bt.scale_events(t, rec)
    assert ev_rec == [{"t_s": 10.0, "direction": "up", "from": 1.0, "to": 4.0},
                      {"t_s": 25.0, "direction": "down", "from": 4.0, "to": 1.0},
                      {"t_s": 40.0, "direction": "up", "from": 1.0, "to": 2.0}]
    matched = bt.match_events(ev_rec, bt.scale_events(t, sim))
    up, down = matched["up"], matched["down"]
    assert (up["recorded"], up["simulated"], up["unmatched"]) == (2, 1, 1)
    assert [p["difference_s"] for p in up["pairs"]] == [-5.0]  # 5 − 10
    assert (down["recorded"], down["simulated"], down["unmatched"]) == (1, 2, 1)
    assert [p["difference_s"] for p in down["pairs"]] == [5.0]  # 30 − 25
    assert down["mean_abs_difference_s"] == 5.0


def test_mean_figures_and_gate():
    runs = [{"replicas": {"api": {"mae_pods": 0.5, "within_1_pod": 1.0, "samples": 10, "scale_events": {
        "up": {"pairs": [1], "recorded": 1}}}}, "latency": {"mean": {"mape": 0.1}, "p95": "not recorded"},
        "throughput": {"mape": 0.2}},
        {"replicas": {"api": {"mae_pods": 1.5, "within_1_pod": 0.5, "samples": 10, "scale_events": {
            "up": {"pairs": [2], "recorded": 3}}}}, "latency": {"mean": {"mape": 0.3}, "p95": "not recorded"},
         "throughput": {"mape": 0.4}}]
    mean = bt.mean_figures(runs)
    assert mean["replicas"]["api"]["mae_pods"] == 1.0
    assert mean["replicas"]["api"]["scale_events"]["up"] == {"recorded": 2.0}  # lists stay in the runs
    assert mean["latency"] == {"mean": {"mape": pytest.approx(0.2)}, "p95": "not recorded"}
    gates = bt.gate(mean, max_replica_error=0.9, max_latency_error=0.25)
    assert [(g["met"], g["value"], g["limit"]) for g in gates] == [(False, 1.0, 0.9), (True, pytest.approx(0.2), 0.25)]


# ---- the round trip ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backtest")
    data = yaml.safe_load((ROOT / "scenarios" / "small.yaml").read_text())
    data["name"] = "small-hpa"
    data["deployments"]["api"].update(replicas=1, hpa=HPA)
    scenario_file = tmp / "scenario.yaml"
    scenario_file.write_text(yaml.safe_dump(data))
    truth = load_scenario(scenario_file).with_overrides({"duration": "10m", "workload.users.profile": PROFILE})
    prom = write_query_range(simulate(truth, seed=11), tmp / "prom")
    code = main(["calibrate", "--scenario", str(scenario_file), "--prometheus", str(prom), "--mapping",
                 str(prom / "mapping.yaml"), "--out", str(tmp / "cal"), "--seed", "1"])
    assert code == 0
    return tmp, scenario_file, prom


def _backtest(recorded, name, *extra):
    tmp, scenario_file, prom = recorded
    out = tmp / f"bt-{name}"
    code = main(["backtest", str(scenario_file), "--prometheus", str(prom), "--mapping", str(prom / "mapping.yaml"),
                 "--out", str(out), "--seed", "111", *extra])
    return code, out


def test_true_parameters_replay_the_recording_within_its_sampling_noise(recorded):
    code, out = _backtest(recorded, "truth")
    assert code == 0
    data = json.loads((out / "backtest.json").read_text())
    assert data["latency"]["mean"]["mape"] <= 0.10
    assert data["replicas"]["api"]["within_1_pod"] >= 0.95
    # Replayed: the recorded users at their change points, and the recorded first pod count, for
    # 595 s: the scrapes at 5 … 600 s stamp each window with its end, so the windows' time 0 (the
    # replay's start) is the first scrape's, and the last window ends 595 s later.
    assert data["replay"]["duration"] == 595.0
    assert [p["users"] for p in data["replay"]["workload.users.profile"]][::2] == [20, 120, 200, 40]
    assert data["replay"]["deployments.api.replicas"] == 1


def test_calibrated_scenario_reproduces_the_recording(recorded, capsys):
    tmp = recorded[0]
    code, out = _backtest(recorded, "cal", "--calibration", str(tmp / "cal" / "calibration.yaml"),
                          "--max-replica-error", "1", "--max-latency-error", "20%")
    assert code == 0, capsys.readouterr()
    data = json.loads((out / "backtest.json").read_text())
    api = data["replicas"]["api"]
    assert api["within_1_pod"] >= 0.95
    assert api["mae_pods"] <= 0.5
    assert data["latency"]["mean"]["mape"] <= 0.12
    assert data["latency"]["p95"]["windows"] > 100 and data["latency"]["p99"]["mape"] is not None
    assert api["scale_events"]["up"]["recorded"] >= 2 and api["scale_events"]["down"]["recorded"] >= 2
    assert data["passed"] is True and [g["met"] for g in data["gates"]] == [True, True]
    assert data["calibration"][0]["file"] == "calibration.yaml"
    md = (out / "backtest.md").read_text()
    assert "| replicas of api: within ±1 pod |" in md and "**PASS**" in md
    for name in ("replicas", "latency", "throughput"):
        assert (out / "plots" / f"backtest-{name}.png").stat().st_size > 20_000


def test_cpu_doubled_fails_the_gate_with_exit_1(recorded, capsys):
    tmp = recorded[0]
    text = (tmp / "cal" / "calibration.yaml").read_text()
    doubled = re.sub(r'("workload\.requests\[\w+\]\.steps\[\d+\]\.cpu\.mean"): ([0-9.e-]+)',
                     lambda m: f"{m[1]}: {2 * float(m[2])}", text)
    assert doubled != text
    (tmp / "wrong.yaml").write_text(doubled)
    capsys.readouterr()
    code, out = _backtest(recorded, "wrong", "--calibration", str(tmp / "wrong.yaml"),
                          "--max-replica-error", "1", "--max-latency-error", "0.2")
    assert code == 1
    said = capsys.readouterr().out
    assert re.search(r"MISSED: replica error of api \(mean absolute pods\) [0-9.]+, limit 1", said), said
    assert re.search(r"MISSED: latency error \(MAPE of the mean latency per window\) [0-9.]+%, limit 20.0%", said)
    data = json.loads((out / "backtest.json").read_text())
    assert data["replicas"]["api"]["mae_pods"] > 1.5
    assert "**FAIL**" in (out / "backtest.md").read_text()


def test_bad_input_exits_2_naming_the_file_and_writes_nothing(recorded, tmp_path, capsys):
    _, scenario_file, prom = recorded
    bad = tmp_path / "prom"
    bad.mkdir()
    for f in prom.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "replicas.json").write_text('{"status": "success", "data": {"resultType": "vector", "result": []}}')
    out = tmp_path / "out"
    code = main(["backtest", str(scenario_file), "--prometheus", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "replicas.json" in err and "data.resultType" in err and "Traceback" not in err
    assert not out.exists()
    code = main(["backtest", str(scenario_file), "--prometheus", str(prom), "--out", str(out),
                 "--max-latency-error", "15"])
    assert code == 2 and "write 15% for a percentage" in capsys.readouterr().err
    assert not out.exists()


def test_locust_recording_has_no_replicas_and_the_gate_on_them_is_bad_input(tmp_path, capsys):
    """A Locust history (hand-made, Locust's columns): users and latency are there, pods are not; without
    --csv-full-history (Aggregated rows only) its percentile columns are the whole test's, so not compared."""
    rows = ["Timestamp,User Count,Type,Name,Requests/s,Failures/s,95%,99%,Total Request Count,"
            "Total Average Response Time"]
    total, mean = 0, 0.0
    rows.append(f"{1_700_000_000},10,,Aggregated,0,0,N/A,N/A,0,N/A")
    for s in range(1, 61):  # 60 s: 10 users, then 20 after 30 s; 10 requests/s at 10 ms, then 20 at 12 ms
        users, rate, ms = (10, 10, 10.0) if s <= 30 else (20, 20, 12.0)
        mean = (mean * total + ms * rate) / (total + rate)
        total += rate
        rows.append(f"{1_700_000_000 + s},{users},,Aggregated,{rate},0,{ms * 2},{ms * 3},{total},{mean}")
    prefix = tmp_path / "run"
    Path(f"{prefix}_stats_history.csv").write_text("\n".join(rows) + "\n")
    Path(f"{prefix}_stats.csv").write_text("Type,Name,Request Count,Failure Count,Average Response Time,Requests/s\n"
                                           f"GET,read,{total},0,11,15\n,Aggregated,{total},0,11,15\n")
    from memstack_capacity.calibration import measurements, recording

    scenario = load_scenario(ROOT / "scenarios" / "small.yaml").with_overrides({"workload.requests[write].weight": 0})
    rec = recording.read(scenario, locust=str(prefix), mapping=measurements.Mapping())
    assert rec.replicas == {} and rec.kind == "locust"
    # Window k is (t0 + 10k, t0 + 10k + 10]: the first holds seconds 1–10 (10 req/s at 10 ms), the fourth 31–40.
    assert rec.throughput[:3].tolist() == [10.0, 10.0, 10.0] and rec.throughput[3] == pytest.approx(20.0)
    assert rec.latency_mean[0] == pytest.approx(0.010) and rec.latency_mean[4] == pytest.approx(0.012)
    assert rec.latency_p95 is None and rec.latency_p99 is None
    assert any("--csv-full-history" in n for n in rec.notes)
    assert [p["users"] for p in rec.replay["workload.users.profile"]] == [10, 10, 20]
    figures = bt.compare(rec, {"throughput": rec.throughput, "latency_mean": rec.latency_mean,
                               "latency_p95": rec.latency_p95, "latency_p99": rec.latency_p99, "replicas": {}})
    assert figures["replicas"] == "not recorded" and figures["throughput"]["mape"] == 0.0
    out = tmp_path / "out"
    code = main(["backtest", str(ROOT / "scenarios" / "small.yaml"), "--locust", str(prefix), "--out", str(out),
                 "--max-replica-error", "1"])
    assert code == 2 and "replicas are not recorded" in capsys.readouterr().err and not out.exists()
    code = main(["backtest", str(ROOT / "scenarios" / "small.yaml"), "--set", "workload.requests[write].weight=0",
                 "--locust", str(prefix), "--out", str(out), "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "backtest.json").read_text())
    assert data["replicas"] == "not recorded" and data["latency"]["p99"] == "not recorded"
    assert data["latency"]["mean"]["windows"] == 6
    assert "| replicas | not recorded |" in (out / "backtest.md").read_text()
    assert (out / "plots" / "backtest-replicas.png").exists()


def test_simulated_windows_follow_the_recordings_windows_across_a_gap():
    """Prometheus windows ending at 10, 20 and 40 s (the scrape at 30 s missing): (0, 10], (10, 20],
    (30, 40]. One request a second, answered at 1, 2, …, 40 s: 10 in each window, 1 req/s — the
    requests of (20, 30] belong to none (they were counted into the third, which read 2 req/s)."""
    from types import SimpleNamespace

    import pandas as pd

    t_end = np.arange(1.0, 41.0)
    result = SimpleNamespace(requests=pd.DataFrame({"t_end_s": t_end, "latency_s": t_end / 1000}),
                             summary={"requests": {"log_every": 1}},
                             series=pd.DataFrame({"api/pods": [1.0, 2.0, 3.0, 4.0, 5.0]},
                                                 index=[0.0, 10.0, 20.0, 30.0, 40.0]))
    recording = SimpleNamespace(start=np.array([0.0, 10.0, 30.0]), end=np.array([10.0, 20.0, 40.0]),
                                replicas={"api": np.array([2.0, 3.0, 5.0])})
    sim = bt.simulated_windows(result, recording)
    assert sim["throughput"].tolist() == [1.0, 1.0, 1.0]
    # The mean latency of (30, 40]: answers at 31..40 s, latency t/1000 → 35.5 ms.
    assert sim["latency_mean"].tolist() == pytest.approx([0.0055, 0.0155, 0.0355])
    assert sim["replicas"]["api"].tolist() == [2.0, 3.0, 5.0]
