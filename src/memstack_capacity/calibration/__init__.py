"""Calibration: a scenario's unknowns estimated from real measurements, written as an overlay.

A scenario states assumed service times (CPU per request, datastore query times, memory,
think time). This package reads what load tests and Prometheus really wrote, estimates those
figures with intervals, and turns them into an overlay of dotted scenario keys (the keys of
``--set``) that ``run``, ``check``, ``sweep`` and ``capacity`` take with ``--calibration``.

- ``measurements``: the windows every estimate reads (per-class throughput and response time,
  users, CPU, memory, replicas), the mapping of measured names to the scenario's, and the
  helpers the parsers share (reading numbers with the line they came from).
- ``locust``, ``k6``, ``prometheus``: one parser per format, each returning raw windows.
- ``demand``: CPU seconds per request by the utilisation law and non-negative least squares,
  with bootstrap intervals and the fit's quality.
- ``steps``: where the scenario states the times the estimates rewrite (CPU steps, datastore
  calls by dotted key) and what a call takes beyond its stated time.
- ``estimates``: the other figures (non-CPU time, memory, think time, mix, load profile) and
  :func:`calibrate`, which runs them all on one set of measurements.
- ``overlay``: the estimates as scenario keys and the overlay file (written and read).
- ``recording``: a recorded test over time for ``backtest``: the load to replay and the figures
  (throughput, latency, each deployment's pods) a run is compared with.

It imports only ``errors``, ``theory`` and ``scenario`` (it sits between the scenario and the
components): it never simulates; writing its report and figure is the outputs layer's job.
"""
