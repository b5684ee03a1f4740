"""The per-pod kernel: each API pod advanced on its own, with no event per request.

Owns ``engine`` (draws, per-pod runs, the record), ``pods`` (FCFS and processor sharing in a
pod) and ``series`` (the monitor's series computed from the per-request times). It builds
the general engine's model (engine.des) and fills its record; what it may run is in
engine.capabilities.

May import scenario, components, errors, engine.des, engine.record/rng/capabilities; must not
import hybrid, fluid or engine.run.
"""
