"""What a run leaves behind: files, the report, figures, findings and manifests.

``files`` (the all-or-nothing output directory), ``rundir`` (which directories are a previous
run's, the marker, the atomic swap), ``json_text`` and ``csv_text`` (the bytes of
``summary.json`` and of the large CSV files), ``openmetrics`` and ``grafana`` (the series for
Prometheus and a dashboard for them), ``report``, ``report_cost`` (its Cost section) and
``report_files`` (report.md, report.html),
``plots`` and ``whatif_plots`` (figures), ``interactive`` (report.html's figures), ``findings``
(with ``findings_common`` and ``findings_scaling``) and ``bottleneck`` (what limits capacity,
in sentences), ``units`` (how numbers are written), ``junit`` (JUnit XML for CI) and
``manifests`` (the Kubernetes objects). It reads finished results: it may import the results,
the components, the scenario layer and ``errors``; never the api or the cli.
"""
