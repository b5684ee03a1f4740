"""The output directory of ``recommend``, all or nothing (staged and swapped in by :mod:`.rundir`).

- ``recommend.json``: the search's document (:meth:`Recommendation.to_dict`), byte for byte the
  same for the same inputs and seed;
- ``recommend.md``: the recommendation, why each change from the input was needed (the
  constraint its neighbour misses), a requests/limits table per deployment in the manner of
  KRR (input → recommended, with what the confirmed runs used), and the ranked table;
- ``manifests/``: the Kubernetes manifests of the recommended configuration (the writer ``run`` uses);
- ``manifests.diff``: a unified diff from the input scenario's manifests to those, file by file
  (as ``kubectl diff`` shows a change; empty when nothing differs);
- ``pareto.png``: cost against p99 and throughput (:mod:`.recommend_plot`).

When no configuration passes, the directory holds recommend.json, recommend.md (what bounds the
space) and pareto.png, and no manifests. It reads the document; it never recomputes a figure.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.manifests.files import build_manifests, render_manifests
from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario
from memstack_capacity.outputs.rundir import discard_staging, new_staging, swap_in
from memstack_capacity.scenario.quantities import format_cpu, format_memory

FILES = ("recommend.json", "recommend.md", "manifests.diff", "pareto.png")


def manifest_texts(scenario) -> dict[str, str] | None:
    """The manifests' YAML per file for a scenario; None when its layout cannot be written as manifests."""
    try:
        return render_manifests(build_manifests(inputs_from_scenario(scenario)))
    except ScenarioError:
        return None


def manifests_diff(old: dict[str, str], new: dict[str, str]) -> str:
    """``diff -u -N`` of two sets of manifest files, input against recommended, one file after another."""
    out = []
    for name in sorted(set(old) | set(new), key=lambda n: (list(new) + list(old)).index(n)):
        a, b = old.get(name, ""), new.get(name, "")
        if a == b:
            continue
        out.append(f"diff -u -N input/{name} recommended/{name}\n")
        out += difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                    fromfile=f"input/{name}", tofile=f"recommended/{name}")
    return "".join(out)


def target_value_text(value, name: str) -> str:
    """A target's figure for people: latencies in ms or s, an error rate in %, else 4 digits; ``n/a`` for None."""
    if value is None:
        return "n/a"
    if name.startswith("latency") or name.startswith("job_latency"):
        return f"{value * 1000:.4g} ms" if value < 1 else f"{value:.4g} s"
    if name == "error_rate":
        return f"{value:.3%}"
    return f"{value:.4g}"


def _money(x) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _config(row_or_rec: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in row_or_rec["configuration"].items())


def krr_table(doc: dict, base, recommended) -> list[str]:
    """Per deployment: requests and limits, input → recommended, and what the confirmed runs used."""
    rec_row = next((r for r in doc["ranked"] if r["recommended"]), None)
    lines = ["| deployment | CPU requests | CPU limits | memory requests | memory limits | replicas | "
             "CPU used (mean / max of requests) | memory used (max of requests) |", "|---|---|---|---|---|---|---|---|"]

    def change(a, b, fmt):
        a_text = "–" if a is None else fmt(a)
        b_text = "–" if b is None else fmt(b)
        return a_text if a_text == b_text else f"{a_text} → **{b_text}**"

    for name, dep in recommended.deployments.items():
        old = base.deployments.get(name)
        used = []
        for scen in (rec_row or {}).get("scenarios", {}).values():
            d = (scen.get("figures") or {}).get("deployments", {}).get(name)
            if d:
                used.append(d)
        cpu_used = (" / ".join(f"{u['cpu_utilization_mean']:.0%} / {u['cpu_utilization_max']:.0%}" for u in used
                               if u["cpu_utilization_mean"] is not None) or "n/a")
        mem_used = ", ".join(f"{u['memory_utilization_max']:.0%}" for u in used) or "n/a"
        reps = ", ".join(f"{u['replicas_max']:g} max" for u in used) or "n/a"
        r_old, r_new = (old.resources if old else None), dep.resources
        replicas = change(old.replicas if old else None, dep.replicas, lambda v: f"{v:g}") + f" ({reps})"
        lines.append(
            f"| {name} | {change(r_old and r_old.requests.cpu, r_new.requests.cpu, format_cpu)} "
            f"| {change(r_old and r_old.limits.cpu, r_new.limits.cpu, format_cpu)} "
            f"| {change(r_old and r_old.requests.memory, r_new.requests.memory, format_memory)} "
            f"| {change(r_old and r_old.limits.memory, r_new.limits.memory, format_memory)} "
            f"| {replicas} | {cpu_used} | {mem_used} |")
    return lines


def ranked_table(doc: dict) -> list[str]:
    names = doc["scenarios"]
    head = "| rank | configuration | status | cost per month | " + " | ".join(
        f"{n}: targets (mean [95 % interval])" for n in names) + " | binding |"
    lines = [head, "|---|---|---|---|" + "---|" * len(names) + "---|"]
    for row in doc["ranked"]:
        cells = []
        for n in names:
            scen = row["scenarios"].get(n) or {}
            if scen.get("confirmed"):
                parts = []
                for t in scen["targets"]:
                    ci = t["ci95"]
                    interval = f" [{target_value_text(ci[0], t['name'])}, {target_value_text(ci[1], t['name'])}]" if ci else ""
                    ok = "✓" if t["met_runs"] == scen["runs"] else f"✗ {t['met_runs']}/{scen['runs']}"
                    parts.append(f"{t['name']} {target_value_text(t['mean'], t['name'])}{interval} {ok}")
                cells.append("<br>".join(parts))
            elif scen.get("screen"):
                s = scen["screen"]
                if s["verdict"] == "unscreened":
                    cells.append("not run")
                elif s["engine"] == "bound":
                    cells.append("utilisation law: " + ", ".join(f"{f['name']} ≤ {target_value_text(f['value'], f['name'])} ✗"
                                                                 for f in s["figures"]))
                else:
                    cells.append("flow model: " + ", ".join(f"{f['name']} ≈ {target_value_text(f['value'], f['name'])}"
                                                            f"{' ✗' if f['verdict'] == 'miss' else ''}"
                                                            for f in s["figures"]))
            else:
                cells.append("not run")
        b = row.get("binding")
        binding = f"{b['target']} ({b['scenario']}, {b['headroom']:+.0%})" if b else "–"
        mark = " ★" if row["recommended"] else ""
        cost = _money(row["cost_per_month"]) + ("" if row["cost_source"] == "simulation" else f" ({row['cost_source']})")
        lines.append(f"| {row['rank']}{mark} | {_config(row)} | {row['status']} | {cost} | " + " | ".join(cells)
                     + f" | {binding} |")
    return lines


def report_text(doc: dict, base, recommended) -> str:
    """recommend.md."""
    n = doc["counts"]
    lines = ["# Recommendation", ""]
    lines.append(f"Scenarios: {', '.join(doc['scenarios'])}; space `{doc['space']['source']}`, "
                 f"{n['points']} configurations, taken in increasing cost floor. {n.get('ruled_out_by_bound', 0)} were "
                 f"ruled out by the servers' throughput bound (the utilisation law: no run of them can meet the "
                 f"throughput target); the flow model screened the others as they came (a point is dropped only when "
                 f"a figure misses its target by more than {doc['screen']['margin']:.0%}, or a p99 stood in for from "
                 f"the mean by more than {doc['screen']['stand_in_margin']:.0%}: "
                 f"{n['screened_out'] - n.get('ruled_out_by_bound', 0)} dropped); "
                 f"{n['confirmed']} were confirmed by simulation in {n['runs']} runs, {doc['replications']} per "
                 f"scenario with the same seeds for every configuration, each stopping at its first failed run.")
    lines.append("")
    rec = doc["recommended"]
    if rec is None:
        lines += ["**No configuration in the space meets every target in every scenario.**", "",
                  "What bounds it:", ""]
        lines += [f"- {b}" for b in doc["bounds"]]
    else:
        lines.append(f"**Recommended: {_config(rec)}, at {_money(rec['cost_per_month'])} per month.**")
        lines.append("")
        lines.append(f"Every run of every scenario met every target: a run meets them with probability "
                     f"≥ {rec['confidence']:.2f} (95 % one-sided Clopper–Pearson bound from "
                     f"{doc['replications']}/{doc['replications']} runs per scenario; more `--replications` tighten it).")
        b = rec["binding"]
        if b:
            ceiling = b.get("ceiling")
            text = (f"Binding constraint: {b['target']} in {b['scenario']}, {target_value_text(b['mean'], b['target'])} against "
                    f"{target_value_text(b['limit'], b['target'])} ({b['headroom']:.0%} headroom)")
            if ceiling:
                text += f"; the lowest throughput ceiling is {ceiling['name']}, ≈ {ceiling['rps']:,.0f} req/s ({ceiling['how']})"
            lines += ["", text + "."]
        lines += ["", "## Why each change", ""]
        if doc["why"]:
            for w in doc["why"]:
                lines.append(f"- `{w['key']}`: {w['from']} → {w['to']}. {w['text'][0].upper()}{w['text'][1:]}.")
        else:
            lines.append("- The input scenario's values are the cheapest that pass: nothing changes.")
        lines += ["", "## Requests and limits", ""]
        lines += krr_table(doc, base, recommended)
        lines += ["", "Used: the deployment's CPU and memory over its pods' requests, as the HPA sees them "
                      "(means over the runs of each scenario, in the order of the scenarios)."]
        lines += ["", "Manifests: `manifests/`; the change against the input's manifests: `manifests.diff`."]
    lines += ["", "## Ranked configurations", ""]
    lines += ranked_table(doc)
    lines += ["", "Status: *passed*/*failed* were simulated; *not confirmed* could not be cheaper than the "
                  "recommendation (its cost floor is above it), so it was passed over; *screened out* cannot meet "
                  "the throughput target by the utilisation law, or missed a target by more than the margin in the "
                  "flow model. Costs not simulated are the flow model's or the floor.",
              "", "![cost against p99 and throughput](pareto.png)", ""]
    return "\n".join(lines)


def write_recommendation(doc: dict, base, recommended, out: Path) -> Path:
    """Write the directory (see the module docstring) through a staging folder swapped in at the end.

    ``base`` is the (first) input scenario, ``recommended`` the same with the recommended
    configuration applied, or None when nothing passes.
    """
    from memstack_capacity.outputs.recommend_plot import write_pareto  # matplotlib is slow to import

    out = Path(out)
    staging = new_staging(out)
    try:
        (staging / "recommend.json").write_text(summary_json(doc), encoding="utf-8")
        (staging / "recommend.md").write_text(report_text(doc, base, recommended or base), encoding="utf-8")
        if recommended is not None:
            new = manifest_texts(recommended)
            old = manifest_texts(base) or {}
            if new is not None:
                (staging / "manifests").mkdir()
                for name, text in new.items():
                    (staging / "manifests" / name).write_text(text, encoding="utf-8")
                (staging / "manifests.diff").write_text(manifests_diff(old, new), encoding="utf-8")
        write_pareto(doc, staging / "pareto.png")
        swap_in(staging, out)
    except BaseException:
        discard_staging(staging)
        raise
    return out
