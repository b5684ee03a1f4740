"""Write this directory's recording: a 10-minute load test of a known system, as Prometheus answers.

The recording is simulated, not measured: ``../small-hpa.yaml`` with the service times the "real"
system is given here (TRUTH: more CPU per request and more base memory than the scenario assumes),
the users stepped like a Locust test (20 → 120 → 200 → 40 over 10 min), simulated with seed 11 and
exported as ``/api/v1/query_range`` answers (``outputs/prometheus_export.py``: cpu.json, memory.json,
replicas.json, requests.json, latency*.json, users.json, in_flight.json and mapping.yaml). Knowing
the truth lets notebooks/07-calibrate-and-backtest.ipynb say how close calibration comes.

    .venv/bin/python notebooks/data/small-hpa-loadtest/make.py      # or with PYTHONPATH=src

The same code and seed write the same bytes. Importing this file only defines TRUTH and TEST (the
notebook reads them to compare the estimates with the truth).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

#: What the recorded system really does, where it differs from small-hpa.yaml's assumptions.
TRUTH = {"workload.requests[read].steps[1].cpu.mean": "7ms",     # assumed 5ms
         "workload.requests[write].steps[1].cpu.mean": "12ms",   # assumed 8ms
         "deployments.api.memory_base": "400Mi"}                 # assumed 300Mi
#: The load test: users stepped up and down (Locust's LoadTestShape), 10 minutes.
TEST = {"duration": "10m",
        "workload.users.profile": [{"at": 0, "users": 20}, {"at": 120, "users": 20}, {"at": 121, "users": 120},
                                   {"at": 300, "users": 120}, {"at": 301, "users": 200}, {"at": 420, "users": 200},
                                   {"at": 421, "users": 40}]}
SEED = 11
#: The recording's first sample (a fixed time, so the files do not depend on when they were made).
ANCHOR = "2026-03-02T10:00:00Z"


def main() -> None:
    from memstack_capacity import load_scenario, simulate
    from memstack_capacity.outputs.prometheus_export import write_query_range

    truth = load_scenario(HERE.parent / "small-hpa.yaml").with_overrides({**TRUTH, **TEST})
    write_query_range(simulate(truth, seed=SEED), HERE, anchor=ANCHOR)
    print(f"wrote {', '.join(sorted(p.name for p in HERE.glob('*.json')))} and mapping.yaml to {HERE}")


if __name__ == "__main__":
    main()
