"""The datastores a request or job calls: pools, servers, caches and external APIs.

``pools`` (SQLAlchemy's QueuePool, the Neo4j driver pool, the processor-sharing and FIFO
servers), ``sql`` (PostgreSQL and Neo4j: pools per process against one server), ``kv``
(Redis and external APIs), ``stats`` (pool-wait statistics), ``budget`` (the connection
budget), ``failure`` (how a store fails a task; outages) and ``runtime`` (every store of a run: its routes, its part in failures, its samples).
It may import the scenario layer and sibling components; never the engine or anything to
its right.
"""
