"""The scenario: one YAML file as frozen, validated data that the rest of the package reads.

``quantities`` (durations, CPU, memory), ``base``, ``distributions``, ``workload``,
``deployment``, ``hpa`` and ``infrastructure`` (the blocks, pydantic models that forbid
unknown keys), ``models`` (``Scenario``), ``crossref`` and ``problems`` (every problem in
a file at once, in plain words), ``load`` (YAML files to a ``Scenario``) and
``overrides`` (``--set dotted.key=value``). It may import ``errors`` and nothing else of
the project: never the components, the engine or anything to their right.
"""
