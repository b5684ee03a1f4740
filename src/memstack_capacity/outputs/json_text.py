"""JSON text of a run's figures (``summary.json``, ``capacity.json``): numpy numbers as
plain numbers, NaN and infinities as ``null``, keys in the order they were built.
"""

from __future__ import annotations

import json
import math

import numpy as np


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def summary_json(summary: dict) -> str:
    """The summary as JSON text (NaN and infinities become null)."""
    return json.dumps(_clean(summary), indent=2, sort_keys=False) + "\n"
