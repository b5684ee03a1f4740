"""The Kubernetes HorizontalPodAutoscaler, ported from its controller.

``calc`` (per-metric replica proposals, the replica calculator), ``rules`` (stabilisation,
rate limits, clamping), ``decision`` (one ``reconcileAutoscaler`` pass, pure) and
``controller`` (the sync loop that feeds the decision what the controller would read).
It may import the scenario layer and sibling components (the clock, metrics-server); never
the engine or anything to its right.
"""
