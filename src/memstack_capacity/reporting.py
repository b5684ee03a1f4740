"""What a run says and what it deploys, for notebooks and scripts: the public face of the report.

- :func:`report_markdown`: the run's report (one Result, or a list of replications) as Markdown.
- :func:`findings`: the report's findings for one run (each with ``key``, ``title``, ``text``).
- :func:`alert_frame`: the alert rules' columns at every sample time of a run.
- :func:`manifests`: the Kubernetes manifests of a scenario, file name → YAML text;
  :func:`upstream_manifests` the same for the real deployment, to diff a what-if against it.
- :func:`connection_budget`: the connections each PostgreSQL store's pools may open at worst.
- :func:`manifests_diff`: what to apply to go from one scenario's manifests to another's, as
  ``recommend``'s manifests.diff (``diff -u -N``, file by file).
- :func:`recommend_markdown`: ``recommend``'s recommend.md for a search's result.
- :func:`calibration_markdown`, :func:`calibration_yaml`: ``calibrate``'s calibration.md and its
  overlays (calibration.yaml, replay.yaml) for a ``Calibration``; :func:`backtest_markdown`:
  ``backtest``'s backtest.md for a ``Backtest``.

>>> from memstack_capacity import load_scenario, simulate
>>> from memstack_capacity.reporting import findings, manifests
>>> [f.key for f in findings(simulate(load_scenario("scenarios/small.yaml")))]

It re-exports what the outputs, results, components and calibration layers compute and imports nothing
else of the package; no module of the package imports it.
"""

from __future__ import annotations

from memstack_capacity.components.datastores.budget import connection_budget
from memstack_capacity.calibration.overlay import render as _overlay_text
from memstack_capacity.outputs.backtest_files import markdown as _backtest_text
from memstack_capacity.outputs.calibration_files import markdown as calibration_markdown
from memstack_capacity.outputs.findings import findings as _findings
from memstack_capacity.outputs.manifests.files import ManifestInputs, build_manifests, render_manifests
from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario
from memstack_capacity.outputs.recommend_files import manifests_diff as _manifests_diff
from memstack_capacity.outputs.recommend_files import report_text as _recommend_text
from memstack_capacity.outputs.report import render_markdown as report_markdown
from memstack_capacity.results.alert_series import alert_frame

__all__ = ["report_markdown", "findings", "alert_frame", "manifests", "upstream_manifests", "connection_budget",
           "manifests_diff", "recommend_markdown", "calibration_markdown", "calibration_yaml", "backtest_markdown"]


def findings(result) -> list:
    """The report's findings for one run, in the report's order."""
    return _findings(result.scenario, result.summary, result.series, alert_frame(result))


def manifests(scenario) -> dict[str, str]:
    """The Kubernetes manifests the simulated configuration needs: file name → YAML text."""
    return render_manifests(build_manifests(inputs_from_scenario(scenario)))


def upstream_manifests() -> dict[str, str]:
    """The real deployment's manifests (its ``k8s/`` directory), in the same form as :func:`manifests`."""
    return render_manifests(build_manifests(ManifestInputs.upstream()))


def manifests_diff(before, after) -> str:
    """``diff -u -N`` from ``before``'s manifests to ``after``'s (two scenarios), file by file: the
    change to apply, as ``recommend`` writes it to manifests.diff; empty when nothing differs."""
    return _manifests_diff(manifests(before), manifests(after))


def recommend_markdown(recommendation, scenario) -> str:
    """``recommend``'s recommend.md: the answer, why each change, requests and limits, the ranked table.

    ``scenario`` is the (first) scenario the search was given; the recommended configuration is
    applied to it for the requests/limits table.
    """
    best = recommendation.best
    recommended = scenario.with_overrides(best.overrides) if best is not None and best.overrides else scenario
    return _recommend_text(recommendation.to_dict(), scenario, recommended)


def calibration_yaml(calibration, replay: bool = False) -> str:
    """``calibrate``'s calibration.yaml (the service times, each estimate's interval and fit in
    comments) for a ``Calibration``, or with ``replay`` its replay.yaml (the recorded load): the
    files ``run``, ``check``, ``sweep`` and ``capacity`` take with ``--calibration``."""
    return _overlay_text(calibration, "load" if replay else "service")


def backtest_markdown(backtest) -> str:
    """``backtest``'s backtest.md for a ``Backtest``: the figures' table, the verdict on the limits
    given, the recording's notes."""
    return _backtest_text(backtest.as_dict())
