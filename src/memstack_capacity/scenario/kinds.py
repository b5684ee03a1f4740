"""Datastore kinds: what each ``kind:`` of a ``datastores`` entry is, in one table.

A kind is a class behind one protocol, :class:`DatastoreKind`, registered in :data:`KINDS`
(``{"postgresql": PostgreSQL(), ...}``). Code that must tell datastores apart asks the kind
(``KINDS[spec.kind].pooled``, ``kind_of(spec).is_cache``); it never compares the ``kind``
string, and tests/test_datastore_kinds.py checks that no module outside this one does.

Every kind belongs to one *family*, the behaviour the engines model:

* ``pooled``: queries processor-shared on a server's ``cores``, reached through connection
  pools, one per process (components/datastores/sql.py; the fluid tiers' server and pool).
  With :attr:`~DatastoreKind.queue_pool` the pool is SQLAlchemy's QueuePool against a server
  that refuses connections beyond ``max_connections - superuser_reserved_connections``
  (PostgreSQL); without it, a driver pool of ``pool.max_connection_pool_size`` connections
  and no server limit (Neo4j).
* ``cache``: a single-threaded key-value cache (``kv.RedisStore``): hits, misses, cache_flush.
* ``external``: an API called by ``external:`` steps (``kv.ExternalStore``): latency,
  concurrency per process, the provider's rate limit.

A family fixes the fields its kinds' specs must have (:data:`FAMILY_FIELDS`, checked by
:func:`kind_problems` when a kind is registered with ``models.register_kind``, and by a test for
the built-in kinds): the engines read them without asking which kind they hold.

Adding a kind of an existing family (MySQL as ``pooled`` with ``queue_pool``, Valkey as
``cache``) touches three files, four with a page for users:

1. ``scenario/infrastructure.py``: its spec model, ``kind: Literal["<name>"]``, the family's
   fields and their descriptions (the scenario reference users read);
2. ``scenario/kinds.py`` (this file): its class and its entry in :data:`KINDS`;
3. a test of it (tests/test_datastore_kinds.py runs kinds registered at run time through
   validation, both engines, findings, ceilings and manifests, against the built-in kind
   of their family);
4. optionally ``docs/``: a bundled scenario or a page that shows it in use.

The scenario union (:data:`DatastoreSpec`), the stores each engine builds, events, findings,
ceilings and manifests follow from the family. A new *family* is new behaviour, not a new
entry: its store class in components/datastores/ and its tier in engine/fluid/ come with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Union

from pydantic import Field

from memstack_capacity.scenario.base import SpecModel
from memstack_capacity.scenario.infrastructure import ExternalSpec, Neo4jSpec, PostgresSpec, RedisSpec

POOLED, CACHE, EXTERNAL = "pooled", "cache", "external"

#: The spec fields every kind of a family has (the engines read them for any kind of it).
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    POOLED: ("cores", "connect_time", "round_trip", "pool"),
    CACHE: ("maxmemory", "maxmemory_policy", "value_size", "op_time", "round_trip", "cache_model"),
    EXTERNAL: ("latency", "concurrency", "rate_limit", "retries", "retry_backoff", "rate_window"),
}
#: The further fields of a pooled kind's spec, with and without SQLAlchemy's QueuePool.
QUEUE_POOL_FIELDS = ("max_connections", "superuser_reserved_connections", "session")
POOL_FIELDS = {True: ("pool_size", "max_overflow", "pool_timeout", "pool_pre_ping", "pool_recycle"),
               False: ("max_connection_pool_size", "connection_acquisition_timeout")}


class DatastoreKind:
    """One datastore kind: its name, its spec model, its family and the facts asked of it.

    A subclass sets the class attributes; the predicates follow from the family. This base,
    with no name and no family, is :data:`NO_KIND`: a missing or unknown kind, which answers
    no to every question.
    """

    name: ClassVar[str] = ""
    spec: ClassVar[type[SpecModel] | None] = None
    family: ClassVar[str | None] = None
    #: SQLAlchemy's QueuePool (pool_size + max_overflow, pre-ping, recycle, sessions) against a
    #: server with ``max_connections``: its pools are what the connection budget and the
    #: ConfigMap's ``POSTGRES_POOL_*`` keys describe.
    queue_pool: ClassVar[bool] = False

    @property
    def pooled(self) -> bool:
        """Queries on a multi-core server through per-process connection pools."""
        return self.family == POOLED

    @property
    def is_cache(self) -> bool:
        """A single-threaded key-value cache: call steps hit or miss; cache_flush empties it."""
        return self.family == CACHE

    @property
    def is_external(self) -> bool:
        """An external API: called by ``external:`` steps, not ``call:``."""
        return self.family == EXTERNAL

    @property
    def per_process(self) -> bool:
        """Each process holds its own pool or semaphore, gone when the process dies."""
        return self.family in (POOLED, EXTERNAL)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.family})"


class PostgreSQL(DatastoreKind):
    name, spec, family, queue_pool = "postgresql", PostgresSpec, POOLED, True


class Neo4j(DatastoreKind):
    name, spec, family = "neo4j", Neo4jSpec, POOLED


class Redis(DatastoreKind):
    name, spec, family = "redis", RedisSpec, CACHE


class ExternalAPI(DatastoreKind):
    name, spec, family = "external", ExternalSpec, EXTERNAL


#: Every datastore kind by its ``kind:`` name; the order is the scenario union's.
KINDS: dict[str, DatastoreKind] = {k.name: k for k in (PostgreSQL(), Neo4j(), Redis(), ExternalAPI())}
NO_KIND = DatastoreKind()


def kind_of(spec: Any) -> DatastoreKind:
    """The kind of a datastore spec (a model or its raw mapping) or of a kind's name;
    :data:`NO_KIND` when it names none (raw data not validated yet, a duck-typed spec)."""
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, Mapping):
        name = spec.get("kind")
    else:
        name = getattr(spec, "kind", None)
    return KINDS.get(name, NO_KIND) if isinstance(name, str) else NO_KIND


def spec_union() -> Any:
    """The scenario's ``datastores`` value type: the kinds' spec models, told apart by ``kind``."""
    return Annotated[Union[tuple(k.spec for k in KINDS.values())], Field(discriminator="kind")]


DatastoreSpec = spec_union()


def kind_problems(kind: DatastoreKind) -> list[str]:
    """What keeps `kind` from the table: a name its spec does not carry, fields its family needs."""
    problems = []
    spec = kind.spec
    if spec is None or "kind" not in spec.model_fields:
        return [f"{kind!r} has no spec model with a `kind` field"]
    if spec.model_fields["kind"].annotation.__args__ != (kind.name,):
        problems.append(f"{spec.__name__}.kind must be Literal[{kind.name!r}]")
    if kind.family not in FAMILY_FIELDS:
        return problems + [f"{kind!r}: family must be one of {', '.join(FAMILY_FIELDS)}"]
    if kind.queue_pool and not kind.pooled:
        problems.append(f"{kind!r}: only a pooled kind has a queue_pool")
    needed = FAMILY_FIELDS[kind.family] + (QUEUE_POOL_FIELDS if kind.queue_pool else ())
    problems += [f"{spec.__name__} lacks `{f}`, which a {kind.family} kind has" for f in needed
                 if f not in spec.model_fields]
    if kind.pooled and "pool" in spec.model_fields:
        pool = spec.model_fields["pool"].annotation
        problems += [f"{spec.__name__}.pool lacks `{f}`" for f in POOL_FIELDS[kind.queue_pool]
                     if f not in getattr(pool, "model_fields", {})]
    return problems


def add(kind: DatastoreKind) -> DatastoreKind:
    """Add `kind` to :data:`KINDS` (use :func:`memstack_capacity.scenario.models.register_kind`,
    which also lets scenarios name it). Raises ValueError naming what the kind lacks."""
    problems = kind_problems(kind)
    if problems:
        raise ValueError("; ".join(problems))
    KINDS[kind.name] = kind
    return kind


def remove(name: str) -> None:
    """Take the kind `name` out of :data:`KINDS` (the inverse of :func:`add`)."""
    del KINDS[name]
