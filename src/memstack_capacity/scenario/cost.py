"""The prices a run is costed at: the scenario's ``cost:`` block.

Two ways to price the cluster (``basis``):

* ``requests``, the default: each deployment pays for what it reserved, as OpenCost allocates a
  workload's cost: ``max(request, usage) × price`` per container, CPU by the core-hour and
  memory by the GiB-hour (the OpenCost specification, "Workload Costs":
  https://github.com/opencost/opencost/blob/develop/spec/opencost-specv01.md). Idle room on
  the nodes is paid by nobody: the model of a cluster sized to its pods' requests.
* ``nodes``: the cluster pays for the nodes it had, node-hours × ``node_hour``, whether the pods
  filled them or not (what a fixed node pool, or one the node autoscaler grows, is billed).

Datastore servers (PostgreSQL, Neo4j, Redis) are priced by their cores and memory at the same
rates, or at a flat ``hourly`` price given per datastore. Unset prices are OpenCost's defaults
(:data:`OPENCOST_CPU_CORE_HOUR`, :data:`OPENCOST_MEMORY_GIB_HOUR`), in US dollars; a scenario
in another currency must give both rates. results/cost.py does the arithmetic.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from memstack_capacity.errors import Problem
from memstack_capacity.scenario.base import MAX_NUMBER, Memory, SpecModel, raise_problems

#: OpenCost's default on-demand price of one vCPU (core) for one hour, in USD: the "CPU" entry of
#: configs/default.json, "Default prices based on GCP us-central1"
#: (https://github.com/opencost/opencost/blob/develop/configs/default.json; the same file is shown
#: on https://www.opencost.io/docs/configuration/on-prem as the prices used without a provider).
OPENCOST_CPU_CORE_HOUR = 0.031611
#: OpenCost's default price of one GiB of memory for one hour, in USD: the "RAM" entry of the same file.
OPENCOST_MEMORY_GIB_HOUR = 0.004237
#: The currency of OpenCost's defaults.
OPENCOST_CURRENCY = "USD"
#: Where the defaults come from, as summary.json names it.
OPENCOST_DEFAULTS = "https://github.com/opencost/opencost/blob/develop/configs/default.json"


def _price(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    if value > MAX_NUMBER:
        raise ValueError(f"must be at most {MAX_NUMBER:g}")
    return value


#: A price: a finite number, 0 or more (a bare integer is fine; ``"0.03"`` or ``true`` is not).
Price = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(_price)]


class DatastoreCost(SpecModel):
    """How one datastore's server is priced: its memory at ``memory_gib_hour`` (its cores, from the
    datastore's own block, at ``cpu_core_hour``), or one flat price per hour."""

    memory: Memory | None = Field(None, description="the server's memory, priced at memory_gib_hour (unset: a "
                                  "cache's maxmemory; otherwise the server's memory is not priced)")
    hourly: Price | None = Field(None, description="the server's price per hour (a managed instance), instead "
                                 "of its cores and memory; 0 leaves it out")

    @model_validator(mode="after")
    def _one_way(self) -> "DatastoreCost":
        if self.memory is not None and self.hourly is not None:
            raise ValueError("give memory (priced with the datastore's cores at the rates) or hourly, not both")
        return self


class CostSpec(SpecModel):
    """The prices of a run's resources; every one has a default, so the block may be left out."""

    currency: str = Field(OPENCOST_CURRENCY, pattern=r"^[A-Z]{3}$",
                          description="ISO 4217 code of every price (USD, EUR, ...)")
    basis: Literal["requests", "nodes"] | None = Field(
        None, description="requests: each deployment pays max(request, usage) at the rates (OpenCost's "
        "allocation); nodes: the cluster pays its node-hours; unset: nodes when node_hour is given, else requests")
    cpu_core_hour: Price | None = Field(
        None, description=f"price of one core (vCPU) for one hour; unset: OpenCost's default, "
        f"{OPENCOST_CPU_CORE_HOUR} USD")
    memory_gib_hour: Price | None = Field(
        None, description=f"price of one GiB of memory for one hour; unset: OpenCost's default, "
        f"{OPENCOST_MEMORY_GIB_HOUR} USD")
    node_hour: Price | None = Field(
        None, description="price of one node of cluster.node's shape for one hour; unset: its cores and memory "
        "at the two rates (as OpenCost prices a node without a provider)")
    datastores: dict[str, DatastoreCost] = Field(
        default_factory=dict, description="per datastore: its server's memory or a flat hourly price")

    @model_validator(mode="after")
    def _rates_in_the_currency(self) -> "CostSpec":
        if self.currency == OPENCOST_CURRENCY:
            return self
        missing = [name for name in ("cpu_core_hour", "memory_gib_hour") if getattr(self, name) is None]
        if missing:
            raise_problems([Problem(name, f"is required with currency {self.currency}: the default is "
                                          f"OpenCost's, in {OPENCOST_CURRENCY}") for name in missing])
        return self
