"""The compiled data plane: every request, query and timer of a run in one compiled event loop.

Owns ``loop`` (the numba-compiled events: arrivals and users, admission, processor sharing in
each process and each database server, connection pools, external APIs, timeouts and
failures), ``layout`` (a scenario as the loop's arrays; refilling random numbers and growing
tables between calls) and ``engine`` (the run between monitor samples and its record). It
places the API's pods with the general engine's deployment code (engine.des builds the
model); what it may run is in engine.capabilities.

May import scenario, components, errors, engine.des, engine.kernel (the open arrivals' times
and the answers' bulk recording), engine.record/rng/capabilities; must not import hybrid,
fluid or engine.run.
"""
