"""The compiled data plane: every request, query and timer of a run in one compiled event loop.

Owns ``loop`` (the numba-compiled events: arrivals and users, admission, processor sharing in
each process and each database server, connection pools, external APIs, the worker tier's
task queue, timeouts and failures), ``layout`` (a scenario as the loop's arrays), ``tables``
(refilling random numbers and growing tables between the loop's calls), ``pods`` (the pods
the control plane sees), ``books`` (answers, jobs, the datastores' series and blocks) and
``engine`` (the run: the general engine's control plane around the loop). It builds its model
with engine.des; what it may run is in engine.capabilities.

May import scenario, components, errors, engine.des, engine.kernel (the open arrivals' draws
and the logs' bulk appends), engine.record/rng/capabilities; must not import hybrid, fluid or
engine.run.
"""
