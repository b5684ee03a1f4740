"""The report's "Cost" section: what the run cost, from summary.json's ``cost`` block.

It recomputes nothing (results/cost.py figured every amount): it says which basis and which
prices were used and where they came from, then one row per thing paid for — each deployment,
the nodes, each datastore server — with its amount over the run and per month. With
replications the total carries the half-width of its 95 % interval.
"""

from __future__ import annotations

from memstack_capacity.outputs.units import money
from memstack_capacity.results.replications import mean_half_width

__all__ = ["cost_blocks"]

HOUR = 3600.0
GIB = 2**30


def _amount(value: float) -> str:
    """A quantity of core-hours, GiB-hours or node-hours: three significant digits, whole from 100 up."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _price(name: str, cost: dict) -> str:
    """``0.031611 USD per core-hour (OpenCost's default)``: a price with all its digits."""
    unit = {"cpu_core_hour": "core-hour", "memory_gib_hour": "GiB-hour", "node_hour": "node-hour"}[name]
    source = {"default": "OpenCost's default", "scenario": "the scenario's",
              "derived": "its cores and memory at the two rates"}[cost["price_sources"][name]]
    return f"{cost['prices'][name]:g} {cost['currency']} per {unit} ({source})"


def _basis_sentence(cost: dict) -> str:
    if cost["basis"] == "nodes":
        return (f"Priced by nodes: the cluster pays {_price('node_hour', cost)} for every node it had, full or "
                "not; datastore servers pay their cores and memory at "
                f"{_price('cpu_core_hour', cost)} and {_price('memory_gib_hour', cost)}.")
    return ("Priced by requests, as OpenCost allocates a workload's cost: each deployment pays the greater of its "
            f"requests and its usage at {_price('cpu_core_hour', cost)} and {_price('memory_gib_hour', cost)}; "
            "datastore servers pay their cores and memory at the same rates.")


def _defaults_note(cost: dict) -> str:
    """Where OpenCost's defaults come from, when a default was used."""
    if "default" not in cost["price_sources"].values():
        return ""
    return " OpenCost's defaults are GCP us-central1 on-demand prices; a `cost:` block in the scenario sets yours."


def _spread(half: float | None, runs: int, currency: str) -> str:
    """How far the runs' total may sit from its mean: nothing for one run."""
    if half is None:
        return ""
    return f" in each of the {runs} runs" if half == 0 else f" ± {money(half, currency)} (95 % CI over {runs} runs)"


def _total_sentence(results, cost: dict, month: float) -> str:
    mean, half = mean_half_width([r.summary["cost"]["total"] for r in results])
    spread = _spread(half, len(results), cost["currency"])
    hours = results[0].summary["duration_s"] / HOUR
    table = "" if half is None else f" The table shows the first run (seed {results[0].seed})."
    return (f"The run ({hours:.3g} h) cost **{money(mean, cost['currency'])}**{spread}: "
            f"{money(mean * month, cost['currency'])} per month ({cost['hours_per_month']:g} h) at that rate.{table}")


def _deployment_row(name: str, d: dict, cost: dict, month: float) -> list[str]:
    what = (f"{_amount(d['cpu_core_seconds'] / HOUR)} core-hours, "
            f"{_amount(d['memory_byte_seconds'] / GIB / HOUR)} GiB-hours")
    over = [f"{_amount(d['cpu_above_requests_core_seconds'] / HOUR)} core-hours"
            if d["cpu_above_requests_core_seconds"] > 0 else "",
            f"{_amount(d['memory_above_requests_byte_seconds'] / GIB / HOUR)} GiB-hours"
            if d["memory_above_requests_byte_seconds"] > 0 else ""]
    if any(over):
        what += f" (usage above requests: {', '.join(x for x in over if x)})"
    if cost["basis"] == "nodes":
        what += "; its share at the rates, paid within the nodes"
    return [f"`{name}`", what, money(d["cost"], cost["currency"]), money(d["cost"] * month, cost["currency"])]


def _node_row(cost: dict, month: float) -> list[str]:
    n = cost["nodes"]
    count = f"{n['count_start']:g} nodes" if not n["added"] else \
        f"{n['count_start']:g} nodes, {n['added']:g} added by the autoscaler"
    what = f"{_amount(n['node_seconds'] / HOUR)} node-hours ({count})"
    if cost["basis"] != "nodes":
        what += "; not counted: the pods pay their requests"
    return ["nodes", what, money(n["cost"], cost["currency"]), money(n["cost"] * month, cost["currency"])]


def _datastore_row(name: str, s: dict, cost: dict, month: float) -> list[str]:
    if s["price_source"] == "scenario":
        what = f"{money(s['hourly'], cost['currency'])} per hour (the scenario's)"
    else:
        memory = "memory not priced" if s["memory_bytes"] is None else f"{s['memory_bytes'] / GIB:g} GiB"
        what = f"{s['cores']:g} core{'' if s['cores'] == 1 else 's'}, {memory}"
    return [f"`{name}` ({s['kind']})", what, money(s["cost"], cost["currency"]),
            money(s["cost"] * month, cost["currency"])]


def cost_blocks(results) -> list[tuple]:
    """The section's blocks (heading, sentences, one table); nothing when the summary has no cost."""
    r0 = results[0]
    cost = r0.summary.get("cost")
    if not cost:
        return []
    month = cost["hours_per_month"] / (r0.summary["duration_s"] / HOUR)
    rows = [_deployment_row(name, d, cost, month) for name, d in cost["deployments"].items()]
    rows.append(_node_row(cost, month))
    rows += [_datastore_row(name, s, cost, month) for name, s in cost["datastores"].items()]
    rows.append(["**total**", f"the {cost['basis']} basis and the datastores", money(cost["total"], cost["currency"]),
                 money(cost["per_month"], cost["currency"])])
    blocks: list[tuple] = [("h", 2, "Cost"), ("p", f"{_basis_sentence(cost)}{_defaults_note(cost)} {_total_sentence(results, cost, month)}"),
                           ("table", ["paid for", "what", "over the run", "per month"], rows)]
    unpriced = [f"`{n}` (set `cost.datastores.{n}.memory`, or a flat `cost.datastores.{n}.hourly`)"
                for n, s in cost["datastores"].items() if s["price_source"] == "rates" and s["memory_bytes"] is None]
    if unpriced:
        blocks.append(("p", f"Memory not priced: {'; '.join(unpriced)}."))
    return blocks
