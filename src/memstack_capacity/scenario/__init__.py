"""The scenario: one YAML file as frozen, validated data that the rest of the package reads.

``quantities`` (durations, CPU, memory), ``base``, ``distributions``, ``workload``,
``deployment``, ``hpa``, ``infrastructure`` and ``cost`` (the blocks, pydantic models that
forbid unknown keys; ``cost`` holds the prices and OpenCost's defaults), ``models`` (``Scenario``), ``crossref`` and ``problems`` (every problem in
a file at once, in plain words), ``load`` (YAML files to a ``Scenario``) and
``overrides`` (``--set dotted.key=value``), ``scale_model`` (a scenario at 1/k, the same
autoscaling for a fraction of the work); ``safe_yaml`` reads YAML within limits (depth,
aliases as expanded, keys, bytes, no duplicate keys) and ``event_checks`` checks what events
name and what config changes do. It may import ``errors`` and nothing else of
the project: never the components, the engine or anything to their right.
"""
