"""The run report: report.md and one self-contained report.html.

The report is built once as a list of blocks (headings, paragraphs, tables, lists,
figures) and rendered to Markdown or HTML, so both say the same thing. Order:
verdict first (targets met or missed, by how much; a tier whose pods were never Ready), then
the binding constraint (its ceiling, what the target load needs, the change that lifts it,
from the summary's one list of ceilings), the run, headline figures (with 95 %
confidence intervals when given replications), the guide's capacity table beside
the simulation, the cost (:mod:`~memstack_capacity.outputs.report_cost`), findings
(:mod:`~memstack_capacity.outputs.findings`), alerts, the run's inputs, figures.

Every report function accepts one Result or a list of Results (replications of one
scenario): figures and alerts come from the first, headline numbers from all.
Functions return ``str``; :mod:`~memstack_capacity.outputs.report_files` writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from memstack_capacity.outputs import bottleneck
from memstack_capacity.outputs import findings as findings_mod
from memstack_capacity.outputs.report_cost import cost_blocks
from memstack_capacity.outputs.units import percent, rps, seconds
from memstack_capacity.results import alert_series
from memstack_capacity.results.replications import mean_half_width, t975

__all__ = ["as_list", "margin", "mean_ci", "verdict", "build_blocks", "render_markdown", "t_quantile_975"]

#: The 0.975 quantile of Student's t (two-sided 95 %), the one summary.json's intervals use.
t_quantile_975 = t975


def as_list(results) -> list:
    """One Result or a sequence of them as a non-empty list."""
    out = list(results) if isinstance(results, Sequence) else [results]
    if not out:
        raise ValueError("no results to report")
    return out


def mean_ci(values) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95 % t-interval (``None`` with fewer than two values), missing values left out."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return mean_half_width(vals)


def _fmt(name: str, value) -> str:
    if value is None:
        return "n/a"
    if "latency" in name or name.endswith("_s"):
        return seconds(value)
    if "error_rate" in name or "utilization" in name or "fraction" in name:
        return percent(value)
    if "rps" in name:
        return rps(value)
    return f"{value:.3g}"


def _dur(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:.3g} min"


def margin(kind: str, value: float, limit: float) -> str:
    """How far a value sits from its limit, in words a reader compares at a glance."""
    if limit == 0:
        return "at the limit" if value == 0 else "over the limit"
    ratio = value / limit
    if kind == "min":
        return f"{percent(1 - ratio)} short" if ratio < 1 else f"{percent(ratio - 1)} above the minimum"
    if ratio > 1:
        return f"{ratio:.1f}× the limit" if ratio >= 2 else f"{percent(ratio - 1)} over"
    return "" if value == 0 else f"{percent(ratio)} of the limit"


def never_ran_sentence(results) -> str:
    """The headline's warning for each deployment whose pods were Ready < 1 % of the time ('' when none)."""
    r0 = as_list(results)[0]
    parts = []
    for name, f in bottleneck.never_ran(r0.scenario, r0.summary):
        d = r0.summary["deployments"][name]
        kills = d.get("oom_kills") or 0
        why = f" (OOMKilled {kills:g} times, crash-looping)" if kills else f" (restarted {d.get('restarts') or 0:g} times)"
        parts.append(f"**`{name}` never ran**: its pods were Ready {percent(f)} of the time{why}, so its "
                     f"figures describe a tier that did not work.")  # fmt: skip
    return " ".join(parts)


def verdict(results) -> str:
    """The report's first line: every target met or missed, with the margin of each, and any tier that never ran."""
    results = as_list(results)
    per_target: dict[str, list] = {}
    for r in results:
        for v in r.summary.get("targets", []):
            per_target.setdefault(f"{v['name']}|{v['kind']}", []).append(v)
    warn = never_ran_sentence(results)
    if not per_target:
        return " ".join(x for x in ("No targets set: nothing to judge (add `targets:` to the scenario).", warn) if x)
    parts, missed = [], 0
    for verdicts in per_target.values():
        v0 = verdicts[0]
        mean, _ = mean_ci(v["value"] for v in verdicts)
        met_n = sum(v["met"] for v in verdicts)
        limit, op = v0["limit"], "≥" if v0["kind"] == "min" else "≤"
        how_far = "no value" if mean is None else margin(v0["kind"], mean, limit)
        ok = met_n == len(verdicts)
        missed += not ok
        reps = f", met in {met_n}/{len(verdicts)} runs" if len(verdicts) > 1 else ""
        parts.append(f"{v0['name']} {_fmt(v0['name'], mean)} vs {op} {_fmt(v0['name'], limit)} "
                     f"({', '.join(x for x in ('met' if ok else 'MISSED', how_far) if x)}{reps})")  # fmt: skip
    head = "Targets met" if not missed else f"Targets MISSED ({missed} of {len(per_target)})"
    return f"**{head}**: " + "; ".join(parts) + "." + (f" {warn}" if warn else "")


def _headline_rows(results) -> list[list[str]]:
    rows = []

    def add(label, key, values):
        mean, half = mean_ci(values)
        rows.append([label, _fmt(key, mean), "" if half is None else f"± {_fmt(key, half)}"])

    reqs = [r.summary["requests"] for r in results]
    add("throughput (OK answers)", "rps", [q["throughput_rps"] for q in reqs])
    add("error rate", "error_rate", [q["error_rate"] for q in reqs])
    for stat in ("mean", "p50", "p95", "p99"):
        add(f"latency {stat}", "latency", [q["latency_s"][stat] for q in reqs])
    for name in results[0].summary.get("deployments", {}):
        deps = [r.summary["deployments"][name] for r in results]
        add(f"{name} replicas (max)", "count", [d["replicas"]["max"] for d in deps])
        add(f"{name} replicas (mean)", "count", [d["replicas"]["mean"] for d in deps])
        add(f"{name} CPU (mean, of request)", "utilization", [d["cpu_utilization"]["mean"] for d in deps])
    jobs = [r.summary.get("jobs") for r in results if r.summary.get("jobs")]
    if jobs:
        add("job latency p99", "latency", [(j.get("latency_s") or {}).get("p99") for j in jobs])
    return rows


def _series_peak(result, metric: str) -> float | None:
    s = result.series
    cols = [f"{d}/{metric}" for d in result.scenario.deployments if f"{d}/{metric}" in s.columns]
    return float(s[cols].sum(axis=1).max()) if cols else None


def _capacity_rows(results) -> list[list[str]]:
    r0 = results[0]
    sc, deps = r0.scenario, r0.scenario.deployments
    worker = next((n for n, d in deps.items() if d.consumes), None)
    wl = sc.workload
    if wl.users is not None:
        load = f"closed model, peak {max(p.users for p in wl.users.profile)} users"
    else:
        load = f"open model, peak {max(p.rps for p in wl.arrivals.profile):g} req/s"
    met = sum(bool(r.summary.get("met")) for r in results)
    met_txt = f"targets met in {met}/{len(results)} run(s)"

    def measured_max(name):
        vals = [r.summary["deployments"][name]["replicas"]["max"] for r in results]
        return f"{max(v for v in vals if v is not None)} reached" if any(v is not None for v in vals) else "n/a"

    pods = {n: d.max_replicas for n, d in deps.items()}
    cpu_lim = sum((d.resources.limits.cpu or 0) * pods[n] for n, d in deps.items())
    cpu_use = sum(d.cpu_capacity * pods[n] for n, d in deps.items())
    mem_lim = sum((d.resources.limits.memory or 0) * pods[n] for n, d in deps.items())
    peak_cores, peak_mem = _series_peak(r0, "cpu_cores"), _series_peak(r0, "memory_bytes")
    thr = mean_ci([r.summary["requests"]["throughput_rps"] for r in results])[0]
    target = getattr(sc.targets.throughput_rps, "min", None) if sc.targets.throughput_rps else None
    return [
        ["Concurrent users", "1000+", load, met_txt],
        ["Max API Pods", "20", str(pods["api"]), measured_max("api")],
        ["Max Worker Pods", "15", str(pods[worker]) if worker else "no worker", measured_max(worker) if worker else "—"],
        ["Total CPU Capacity", "70 cores (2000m x 35)", f"{cpu_lim:g} cores of limits; {cpu_use:g} usable by the processes",
         "n/a" if peak_cores is None else f"peak {peak_cores:.1f} cores used"],
        ["Total Memory Capacity", "70 Gi (2Gi x 35)", f"{mem_lim / 2**30:g} Gi of limits",
         "n/a" if peak_mem is None else f"peak {peak_mem / 2**30:.2f} Gi used"],
        ["Expected Throughput", "~1000 req/sec", f"target ≥ {target:g} req/s" if target else "no throughput target",
         f"{thr:.1f} req/s (OK answers, mean)"],
        ["Sustainable throughput", "not stated", bottleneck.sustainable_throughput(sc, r0.summary, r0.series),
         f"{thr:.1f} req/s measured at this scenario's load"],
    ]  # fmt: skip


def _alert_rows(result) -> list[list[str]]:
    rows = []
    for a in alert_series.attach_alerts(result):
        end = "still firing at the end" if a.get("end_s") is None else f"{a['end_s'] / 60:.1f} min"
        rows.append([a.get("alert") or a["name"], a.get("severity", ""), f"{a.get('pending_since_s', a['start_s']) / 60:.1f} min",
                     f"{a['start_s'] / 60:.1f} min", end])  # fmt: skip
    return rows


def _input_rows(scenario) -> list[list[str]]:
    rows = []
    for name, d in scenario.deployments.items():
        hpa = d.hpa
        rng = f"{hpa.minReplicas}–{hpa.maxReplicas} (HPA)" if hpa is not None else f"{d.replicas} (fixed)"
        targets = ", ".join(f"{k} {percent(v)}" for k, v in findings_mod.hpa_targets(d).items()) or "—"
        req, lim = d.resources.requests, d.resources.limits

        def q(cpu, mem):
            return f"{'—' if cpu is None else f'{cpu:g}'} CPU / {'—' if mem is None else f'{mem / 2**20:.0f}Mi'}"

        rows.append([name, f"{d.replicas} at start", rng, targets, f"{d.processes} × {d.concurrency}",
                     q(req.cpu, req.memory), q(lim.cpu, lim.memory)])  # fmt: skip
    return rows


def build_blocks(results, figure_names: Sequence[str] = (), manifest_note: str | None = None) -> list[tuple]:
    """The report as blocks: ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
    ``("list", items)``, ``("fig", name, caption)``."""
    results = as_list(results)
    r0 = results[0]
    sc = r0.scenario
    k = len(results)
    seeds = ", ".join(str(r.seed) for r in results)
    # Decisions first: the verdict, then the binding constraint and what lifts it.
    blocks: list[tuple] = [("h", 1, f"Capacity report: {sc.name}"), ("p", verdict(results)),
                           ("h", 2, bottleneck.binding_heading(sc, r0.summary))]
    blocks += [("p", text) for text in bottleneck.binding_text(sc, r0.summary, r0.series)]
    about = (f"{sc.description} " if sc.description else "") + (
        f"Simulated {_dur(sc.duration)} (first {_dur(sc.warmup)} warm-up, excluded from the statistics), "
        f"{k} run(s), seed(s) {seeds}.")  # fmt: skip
    blocks += [("h", 2, "The run"), ("p", about)]
    ci_note = " ± is the half-width of a 95 % t-interval over the runs." if k > 1 else ""
    blocks += [("h", 2, "Headline figures"), ("p", f"Measured after the warm-up.{ci_note}"),
               ("table", ["figure", "value", "95 % CI"][: 3 if k > 1 else 2],
                [row[: 3 if k > 1 else 2] for row in _headline_rows(results)])]  # fmt: skip
    blocks += [("h", 2, "The guide's capacity table beside the simulation"),
               ("table", ["", "guide (k8s/README.md)", "this scenario", "simulated"], _capacity_rows(results))]
    blocks += cost_blocks(results)
    found = findings_mod.findings(sc, r0.summary, r0.series, alert_series.alert_frame(r0))
    blocks.append(("h", 2, "Findings"))
    blocks.append(("list", [f"**{f.title}.** {f.text}" for f in found]) if found
                  else ("p", "Nothing in this run points at a limit: no rule fired."))  # fmt: skip
    blocks.append(("h", 2, "Alerts"))
    rows = _alert_rows(r0)
    not_ready = findings_mod.deployed_alert(sc, "APINotReady")
    blocks.append(("p", "The deployment's PrometheusRule evaluated on the simulated series with its `for:` durations, "
                        f"assuming the pods serve `/metrics` (as deployed nothing listens on :9090, so {not_ready} "
                        "would fire 2 min after start and the other API alerts never could)."))  # fmt: skip
    blocks.append(("table", ["alert", "severity", "pending from", "fired at", "resolved"], rows) if rows
                  else ("p", "No alert would have fired."))  # fmt: skip
    blocks.append(("h", 2, "Inputs"))
    blocks.append(("table", ["deployment", "replicas", "range", "HPA targets", "processes × concurrency",
                             "requests", "limits"], _input_rows(sc)))  # fmt: skip
    if manifest_note:
        blocks.append(("p", manifest_note))
    if figure_names:
        blocks.append(("h", 2, "Figures"))
        for name in figure_names:
            blocks.append(("fig", name, name.replace("_", " ").capitalize()))
    return blocks


#: What a Markdown renderer would take as raw HTML or a character reference (CommonMark: ``<``
#: before a letter, ``/``, ``!`` or ``?``; ``&name;``, ``&#123;``), e.g. from a scenario's description.
_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")


def md_text(text) -> str:
    """``text`` for report.md, shown as written: what would be HTML is escaped, the rest untouched."""
    return _MD_HTML.sub(lambda m: "&lt;" if m[0] == "<" else "&amp;", str(text))


def _md_table(header, rows) -> list[str]:
    def cell(x):
        return md_text(x).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def render_markdown(results, figure_names: Sequence[str] = (), manifest_note: str | None = None) -> str:
    """report.md: figures referenced as ``plots/<name>.png``; text that would be HTML is escaped."""
    lines: list[str] = []
    for block in build_blocks(results, figure_names, manifest_note):
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + md_text(block[2]), ""]
        elif kind == "p":
            lines += [md_text(block[1]), ""]
        elif kind == "table":
            lines += _md_table(block[1], block[2]) + [""]
        elif kind == "list":
            lines += [f"- {md_text(item)}" for item in block[1]] + [""]
        elif kind == "fig":
            lines += [f"![{md_text(block[2])}](plots/{block[1]}.png)", ""]
    return "\n".join(lines).rstrip() + "\n"
