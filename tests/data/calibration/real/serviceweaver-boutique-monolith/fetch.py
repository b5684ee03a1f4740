"""Download the ServiceWeaver Online Boutique monolith recording (pinned commit) and split it in time.

The recording is not copied into this repository: its repository states no licence. This
script fetches the four files at the pinned commit, checks their SHA-256, and writes

- ``source/``: the files as downloaded;
- ``part_a/``: the first half of the test, for ``calibrate`` — Locust's ``boutique_stats.csv``
  and ``boutique_stats_history.csv`` (history rows before the split), and ``prometheus/`` with
  ``cpu.json`` (only the samples whose 5-minute rate covers the loaded test alone, see README)
  and ``replicas.json``, as ``/api/v1/query_range`` answers;
- ``part_b/``: the second half, held out — the same files for the rows and samples from the split on.

    python tests/data/calibration/real/serviceweaver-boutique-monolith/fetch.py            # from GitHub
    python …/fetch.py --from-git /path/to/clone/.git                                           # from a clone

Same inputs, same bytes out. Exit 2 with a message when a file cannot be had or its hash differs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = "pserey/monolito-vs-microsservicos"
COMMIT = "bc1b51a158d96e01438d7797fef51f05bc48fe35"
FILES = {  # path in the source repository → (local name, SHA-256)
    "results/monolith/locust/monolith_run_stats.csv":
        ("monolith_run_stats.csv", "ab35c839bb3e06387aa9e731a8ae7997cdf61193aeff29a8d18d586d9f0ca6be"),
    "results/monolith/locust/monolith_run_stats_history.csv":
        ("monolith_run_stats_history.csv", "4eee4a63c33e6d32e62de919acfea35fb14ee4c3bc337297b3cbe8c86651dc05"),
    "results/monolith/cpu_hpa/cpu_deployment.csv":
        ("cpu_deployment.csv", "c27ed7e5aea291ef2b1874d5492994213df1a4932750755f14a2abdcd49defe0"),
    "results/monolith/cpu_hpa/hpa_current.csv":
        ("hpa_current.csv", "9e77ed25767c3cb18d66239f9edb1f06f92325a672614456124bbf41ee61ee5c"),
}
#: The split: this many seconds after the first history row (the test ran 900 s; half of it).
SPLIT_S = 450.0
#: The CPU series is ``sum(rate(container_cpu_usage_seconds_total[5m]))``: a sample tells the
#: load test's CPU alone only once its 5-minute window lies wholly after the users were all started.
RATE_WINDOW_S = 300.0
USERS = 200  # locust -u 200 (the source's README)
HERE = Path(__file__).resolve().parent


def fetch(path: str, from_git: str | None) -> bytes:
    if from_git:
        return subprocess.run(["git", f"--git-dir={from_git}", "show", f"{COMMIT}:{path}"], check=True,
                              capture_output=True).stdout
    url = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/{path}"
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 - a fixed https URL
        return answer.read()


def matrix(rows: list[tuple[float, float]], metric: dict) -> str:
    """A query_range answer with one series."""
    values = [[t, repr(v)] for t, v in rows]
    return json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                     "result": [{"metric": metric, "values": values}]}}, indent=None)


def two_columns(text: str) -> list[tuple[float, float]]:
    reader = csv.reader(io.StringIO(text))
    next(reader)
    return [(float(t), float(v)) for t, v in reader if v != ""]


def prepare(source: Path, out: Path) -> dict:
    history = (source / "monolith_run_stats_history.csv").read_text(encoding="utf-8").splitlines()
    header, rows = history[0], [r for r in history[1:] if r.strip()]
    stamps = [float(r.split(",", 1)[0]) for r in rows]
    users = [int(r.split(",")[1]) for r in rows]
    t0 = stamps[0]
    full = next(t for t, n in zip(stamps, users) if n >= USERS)
    split = t0 + SPLIT_S
    cpu = two_columns((source / "cpu_deployment.csv").read_text(encoding="utf-8"))
    pods = two_columns((source / "hpa_current.csv").read_text(encoding="utf-8"))
    stats = (source / "monolith_run_stats.csv").read_text(encoding="utf-8")
    deployment = {"deployment": "onlineboutique-monolith-a1bad42f-31f4c553"}
    parts = {"part_a": (lambda t: t < split, lambda t: full + RATE_WINDOW_S <= t < split, lambda t: t < split),
             "part_b": (lambda t: t >= split, lambda t: t >= split, lambda t: t >= split)}
    for name, (keep_row, keep_cpu, keep_pods) in parts.items():
        target = out / name
        (target / "prometheus").mkdir(parents=True, exist_ok=True)
        (target / "boutique_stats.csv").write_text(stats, encoding="utf-8")
        kept = [r for r, t in zip(rows, stamps) if keep_row(t)]
        (target / "boutique_stats_history.csv").write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
        (target / "prometheus" / "cpu.json").write_text(
            matrix([(t, v) for t, v in cpu if keep_cpu(t)], deployment) + "\n", encoding="utf-8")
        (target / "prometheus" / "replicas.json").write_text(
            matrix([(t, v) for t, v in pods if keep_pods(t)], deployment) + "\n", encoding="utf-8")
    return {"t0": t0, "all_users_at": full, "split": split}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from-git", metavar="GIT_DIR", help="read the files from a clone's git directory")
    parser.add_argument("--out", default=str(HERE), help="where to write source/, part_a/, part_b/")
    args = parser.parse_args(argv)
    out = Path(args.out)
    source = out / "source"
    source.mkdir(parents=True, exist_ok=True)
    for path, (name, digest) in FILES.items():
        try:
            data = fetch(path, args.from_git)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: cannot get {REPO}@{COMMIT[:7]}:{path}: {exc}", file=sys.stderr)
            return 2
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            print(f"error: {path}: SHA-256 {got}, expected {digest}", file=sys.stderr)
            return 2
        (source / name).write_bytes(data)
    times = prepare(source, out)
    print(f"wrote {source}, {out / 'part_a'}, {out / 'part_b'} (split at {times['split']:.0f}, "
          f"{SPLIT_S:g} s after {times['t0']:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
