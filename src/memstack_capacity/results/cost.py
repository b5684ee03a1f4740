"""What a run costs: summary.json's ``cost`` block, one function of the scenario and the run.

The rule is OpenCost's. A workload pays ``max(request, usage) × price`` per resource (the
OpenCost specification, "Workload Costs": "The greater of requested and used CPU resources";
https://github.com/opencost/opencost/blob/develop/spec/opencost-specv01.md), CPU by the
core-hour, memory by the GiB-hour; unset prices are OpenCost's defaults (scenario/cost.py).

For each deployment, over the whole run (0 to ``duration``, warm-up included: it was paid for):

* the requests' core-seconds and byte-seconds, ``∫ Σ pods' requests dt`` over every pod from its
  creation to its deletion (Pending included: the requests stand from creation), exact from the
  run's record;
* plus what the usage took beyond them, ``Σ max(0, usage − requests) × sample_interval`` over the
  samples, where ``requests = usage / utilization`` is the requests of the pods running at the
  sample (``cpu_cores`` and ``cpu_utilization``, ``memory_bytes`` and ``memory_utilization``).
  The simulator keeps usage per deployment, not per pod, so the maximum is taken per deployment
  and sample: with pods loaded alike (the balancer spreads the load) it equals OpenCost's
  per-container rule; with some pods above their requests and others below it counts less.

The cluster (``basis: nodes``) pays node-hours: the scenario's ``cluster.nodes`` for the whole
run and each node the autoscaler added from when it was asked for (a cloud bills an instance
from its launch, not from its Ready) to the end; failed or cordoned nodes are still paid for
(the simulator does not remove nodes). Datastore servers pay their cores and memory at the
rates, or their flat ``hourly`` price, for the whole run; external APIs are left out unless
given an ``hourly`` price. ``per_month`` is the run's cost per hour × :data:`HOURS_PER_MONTH`.
"""

from __future__ import annotations

import math

import pandas as pd

from memstack_capacity.scenario.cost import (OPENCOST_CPU_CORE_HOUR, OPENCOST_DEFAULTS, OPENCOST_MEMORY_GIB_HOUR,
                                             CostSpec)
from memstack_capacity.scenario.kinds import kind_of

#: Hours in a month, as cloud providers and OpenCost quote monthly prices: 8760 / 12.
HOURS_PER_MONTH = 730.0
GIB = 2**30
HOUR = 3600.0
#: The price keys of summary.json's ``cost.prices``, the same in every replication.
PRICE_KEYS = ("cpu_core_hour", "memory_gib_hour", "node_hour")


def prices(spec: CostSpec, node) -> tuple[dict, dict]:
    """The prices used and where each came from: ``scenario``, ``default`` (OpenCost's) or, for a
    node without ``node_hour``, ``derived`` (its cores and memory at the two rates)."""
    cpu = OPENCOST_CPU_CORE_HOUR if spec.cpu_core_hour is None else spec.cpu_core_hour
    mem = OPENCOST_MEMORY_GIB_HOUR if spec.memory_gib_hour is None else spec.memory_gib_hour
    node_hour = spec.node_hour if spec.node_hour is not None else cpu * node.cpu + mem * node.memory / GIB
    used = {"cpu_core_hour": cpu, "memory_gib_hour": mem, "node_hour": node_hour}
    sources = {"cpu_core_hour": "default" if spec.cpu_core_hour is None else "scenario",
               "memory_gib_hour": "default" if spec.memory_gib_hour is None else "scenario",
               "node_hour": "derived" if spec.node_hour is None else "scenario"}
    return used, sources


def basis(spec: CostSpec) -> str:
    """``nodes`` or ``requests``: as given, else nodes exactly when a node price is given."""
    if spec.basis is not None:
        return spec.basis
    return "nodes" if spec.node_hour is not None else "requests"


def above_requests(timeseries: pd.DataFrame, name: str, usage: str, utilization: str, dt: float) -> float:
    """``Σ max(0, usage − requests) × dt`` over the samples of deployment `name` (units of `usage` × s).

    ``requests`` is ``usage / utilization`` at each sample (the running pods' requests, as the
    utilisation series is figured); a sample without running pods (utilisation NaN) adds nothing.
    """
    mine = timeseries[timeseries["component"] == name]
    used = mine[mine["metric"] == usage].set_index("t_s")["value"]
    util = mine[mine["metric"] == utilization].set_index("t_s")["value"]
    used, util = used.align(util, join="inner")
    over = util > 1.0
    return float((used[over] - used[over] / util[over]).sum() * dt)


def deployment_cost(totals, timeseries: pd.DataFrame, name: str, dt: float, rates: dict) -> dict:
    """One deployment's billed core-seconds and byte-seconds (``max(request, usage)``) and their cost."""
    cpu_over = above_requests(timeseries, name, "cpu_cores", "cpu_utilization", dt)
    mem_over = above_requests(timeseries, name, "memory_bytes", "memory_utilization", dt)
    cpu = totals.cpu_request_seconds + cpu_over
    mem = totals.memory_request_seconds + mem_over
    cpu_cost = cpu / HOUR * rates["cpu_core_hour"]
    mem_cost = mem / GIB / HOUR * rates["memory_gib_hour"]
    return {"cost": cpu_cost + mem_cost, "cpu_cost": cpu_cost, "memory_cost": mem_cost,
            "cpu_core_seconds": cpu, "cpu_above_requests_core_seconds": cpu_over,
            "memory_byte_seconds": mem, "memory_above_requests_byte_seconds": mem_over}


def node_cost(scenario, requested_at: list[float], node_hour: float) -> dict:
    """Node-seconds: ``cluster.nodes`` for the whole run, each added node from its request to the end."""
    duration = float(scenario.duration)
    start = scenario.cluster.nodes
    seconds = start * duration + math.fsum(duration - t for t in requested_at)
    return {"cost": seconds / HOUR * node_hour, "node_seconds": seconds, "count_start": start,
            "count_max": start + len(requested_at), "added": len(requested_at)}


def server_cores(spec) -> float:
    """The cores a datastore's server has: a pooled server's ``cores``; a cache's one thread (Redis
    runs commands on one core); an external API none of yours."""
    kind = kind_of(spec)
    if kind.pooled:
        return float(spec.cores)
    return 1.0 if kind.is_cache else 0.0


def server_memory(spec, given) -> int | None:
    """The server's memory: as the cost block gives it, else a cache's ``maxmemory``, else unknown (None)."""
    if given is not None and given.memory is not None:
        return int(given.memory)
    return getattr(spec, "maxmemory", None) if kind_of(spec).is_cache else None


def datastore_cost(spec, given, duration: float, rates: dict) -> dict | None:
    """One datastore server's price per hour and cost over the run; None for an external API not priced."""
    flat = given.hourly if given is not None else None
    if kind_of(spec).is_external and flat is None:
        return None
    cores, memory = server_cores(spec), server_memory(spec, given)
    if flat is None:
        hourly = cores * rates["cpu_core_hour"] + (memory or 0) / GIB * rates["memory_gib_hour"]
    else:
        hourly = flat
    return {"kind": spec.kind, "cost": hourly * duration / HOUR, "hourly": hourly,
            "price_source": "rates" if flat is None else "scenario", "cores": cores, "memory_bytes": memory}


def cost_summary(record, timeseries: pd.DataFrame) -> dict:
    """summary.json's ``cost`` block for one run (keys in docs/reference/results.md)."""
    sc = record.scenario
    spec, duration = sc.cost, float(sc.duration)
    rates, sources = prices(spec, sc.cluster.node)
    deployments = {name: deployment_cost(totals, timeseries, name, float(sc.sample_interval), rates)
                   for name, totals in record.deployments.items()}
    nodes = node_cost(sc, record.nodes_requested_at, rates["node_hour"])
    stores = {name: datastore_cost(store, spec.datastores.get(name), duration, rates)
              for name, store in sc.datastores.items()}
    stores = {name: entry for name, entry in stores.items() if entry is not None}
    how = basis(spec)
    compute = nodes["cost"] if how == "nodes" else math.fsum(d["cost"] for d in deployments.values())
    total = compute + math.fsum(s["cost"] for s in stores.values())
    return {"currency": spec.currency, "basis": how, "total": total,
            "per_month": total / (duration / HOUR) * HOURS_PER_MONTH, "hours_per_month": HOURS_PER_MONTH,
            "compute": compute, "deployments": deployments, "nodes": nodes, "datastores": stores,
            "prices": rates, "price_sources": sources, "defaults_from": OPENCOST_DEFAULTS}
