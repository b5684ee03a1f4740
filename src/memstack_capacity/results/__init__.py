"""A run's results as data: what a simulation found, before anything is written.

``frames`` (tidy DataFrames from a RunRecord), ``summary`` (what ``summary.json`` holds,
target verdicts), ``ceilings`` (each tier's throughput ceiling, computed once), ``cost`` (what
the run cost, OpenCost's rule at the scenario's prices), ``result``
(``Result``), ``alerts``, ``promql`` and ``alert_series`` (the deployment's Prometheus rules,
Prometheus' window functions, and the rules evaluated on the series), ``replications`` (means and 95 % intervals)
and ``backtest`` (a run compared with a recorded test). It may import the calibration layer, the engine,
the components and the scenario layer; never the outputs, the api or the cli: writing
files and reports is not its business.
"""
