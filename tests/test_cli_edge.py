"""The command line at its edges: internal errors, bad flags, special files, names a plot
cannot parse, limits on scale, and the progress line off a terminal."""

from __future__ import annotations

from pathlib import Path

import yaml

from memstack_capacity.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

#: A deployment and a datastore whose names are mathtext that matplotlib cannot parse.
MATH = r"$\frac$"


def tiny_scenario(**changes) -> dict:
    """Five closed users for 40 s on one API pod with a PostgreSQL pool: a run of a second or two."""
    data = {
        "name": "tiny",
        "duration": "40s",
        "warmup": "5s",
        "sample_interval": "5s",
        "workload": {
            "users": {"profile": [{"at": 0, "users": 5}], "think_time": {"dist": "exponential", "mean": "1s"}},
            "requests": [{"name": "read", "weight": 1, "steps": [
                {"call": "postgres", "time": {"dist": "exponential", "mean": "1ms"}},
                {"cpu": {"dist": "exponential", "mean": "5ms"}}]}],
        },
        "deployments": {"api": {"replicas": 1, "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                                             "limits": {"cpu": 1, "memory": "1Gi"}}}},
        "datastores": {"postgres": {"kind": "postgresql", "max_connections": 100, "pool": {"pool_size": 5}}},
    }
    data.update(changes)
    return data


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- names a plot cannot parse


def test_a_run_with_mathtext_names_writes_every_plot(tmp_path, capsys):
    data = tiny_scenario()
    data["workload"]["requests"][0]["steps"][0]["call"] = MATH
    data["datastores"] = {MATH: data["datastores"]["postgres"]}
    data["deployments"][MATH] = data["deployments"]["api"]
    out = tmp_path / "out"
    assert main(["run", write(tmp_path, data), "--out", str(out)]) == 0, capsys.readouterr().err
    assert {"datastores.png", "replicas.png", "utilisation.png"} <= {p.name for p in (out / "plots").iterdir()}
    assert MATH in (out / "report.md").read_text(encoding="utf-8")
