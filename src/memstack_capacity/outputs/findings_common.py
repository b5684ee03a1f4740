"""The findings' shared vocabulary: the Finding record, the alert names as deployed, and how
the rules read series and write numbers. Used by :mod:`.findings` and :mod:`.findings_scaling`
only; the names with a leading underscore are theirs, not the package's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.manifests.inputs import ManifestInputs
from memstack_capacity.outputs.manifests.platform import prometheus_rule
from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario
from memstack_capacity.results.ceilings import NEVER_RAN, ready_fraction


@dataclass(frozen=True)
class Finding:
    """One finding: a stable ``key``, a short ``title`` and the ``text`` (plain sentences)."""

    key: str
    title: str
    text: str


def deployed_alerts(scenario) -> list[str]:
    """The alert names of the PrometheusRule the manifests emit for ``scenario`` (upstream's when the
    manifests cannot express the scenario)."""
    try:
        inputs = inputs_from_scenario(scenario)
    except ScenarioError:
        inputs = ManifestInputs.upstream()
    return [r["alert"] for g in prometheus_rule(inputs)["spec"]["groups"] for r in g["rules"]]


def deployed_alert(scenario, short: str) -> str:
    """The deployed name of the rule the guide calls ``short`` (``HighLatency`` → ``MemStackAPIHighLatency``)."""
    return next((name for name in deployed_alerts(scenario) if name.endswith(short)), short)


def _ran(summary, name: str) -> bool:
    """Whether deployment ``name`` had Ready pods at least 1 % of the time: rules about how it ran need it."""
    f = ready_fraction(summary, name)
    return f is None or f >= NEVER_RAN


def _col(series: pd.DataFrame, name: str) -> pd.Series | None:
    if series is None or name not in series.columns or not series[name].notna().any():
        return None
    return series[name].astype(float)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _secs(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:g} s"


def _cores(x: float) -> str:
    return f"{x * 1000:.0f}m" if x < 1 else f"{x:g}"


def _count(n) -> str:
    return "unbounded" if math.isinf(n) else f"{int(n)}"


def _interval(series: pd.DataFrame) -> float:
    t = np.asarray(series.index, dtype=float)
    return float(np.median(np.diff(t))) if t.size > 1 else 1.0
