"""The datastores a request or job calls: pools, servers, caches and external APIs.

``pools`` (SQLAlchemy's QueuePool, the Neo4j driver pool, the processor-sharing and FIFO
servers), ``sql`` (PostgreSQL and Neo4j: pools per process against one server), ``kv``
(Redis and external APIs), ``stats`` (pool-wait statistics), ``budget`` (the connection
budget) and ``runtime`` (every store of a run, hooked to the executor and the deployments).
It may import the scenario layer and sibling components; never the engine or anything to
its right.
"""
