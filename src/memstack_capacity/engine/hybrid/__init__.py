"""The batched data plane: the general engine's control plane, arrivals routed in blocks.

Owns ``engine`` (arrivals, routing, answers), ``pods`` (lazy pods advanced between control
events) and ``probes``. It runs on the general engine's model (engine.des) and reuses the
kernel's arrival blocks; what it may run is in engine.capabilities.

May import scenario, components, errors, engine.des, engine.kernel, engine.record/rng/
capabilities; must not import fluid or engine.run.
"""
