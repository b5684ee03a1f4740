"""The parts of the modelled system, each on its own: what a run is built from.

Owns the clock, the workload (closed users, open arrivals, the request mix), the flows a
request or job runs (``flows``: the executor and its step handlers), pods and their
processor sharing, deployments and rollouts, probes, the cluster and its node autoscaler,
the load balancer and the ingress, metrics-server and the HPA (``hpa/``), the datastores
(``datastores/``), the worker tier, events on a running system, traffic spikes, the monitor
and the recorder. A component is told about its collaborators when it is built (by
engine/des/build.py); it never reaches into the engine.

May import the scenario layer, errors and theory; never the engine or anything to its right.
"""
