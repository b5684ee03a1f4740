"""The general engine, the reference: every model feature, one event at a time.

Owns ``build`` (the model assembled from a scenario: every component and every call one
makes to another, in one place), ``events`` (events checked and config changes resolved at
build time) and ``run`` (start, advance the clock, close the books into a RunRecord).

May import scenario, components, errors and engine.record/rng; must not import another engine
(kernel, hybrid, fluid) nor engine.run or engine.capabilities.
"""
