"""The engines: what advances the model's clock, and the one door to them.

Owns ``run`` (the door: ``run(scenario, seed, progress, engine="auto")``), ``capabilities``
(the one table of which engine models which feature; ``auto``'s choice, the refusal
messages and docs/performance.md come from it), ``record`` (the typed :class:`RunRecord`
every engine returns) and ``rng`` (one random stream per named component). Each engine is a
subpackage with ``NAME`` and ``run(scenario, seed, progress) -> RunRecord``: ``des`` (the
general engine, the reference), ``kernel``, ``hybrid``, ``fluid``.

May import scenario, components and errors; must not import results, outputs, api or cli.
"""
