"""The quantile sketch against exact percentiles (DDSketch's guarantee: relative error ≤ α)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memstack_capacity.components.sketch import QuantileSketch


@pytest.mark.parametrize("dist", ["lognormal", "exponential", "pareto"])
def test_quantiles_within_the_relative_error_bound(dist):
    rng = np.random.default_rng(3)
    values = {"lognormal": rng.lognormal(-3, 1.5, 200_000), "exponential": rng.exponential(0.05, 200_000),
              "pareto": rng.pareto(1.5, 200_000) + 1e-3}[dist]  # fmt: skip
    sketch = QuantileSketch(0.005)
    for v in values.tolist():
        sketch.add(v)
    for q in (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = np.quantile(values, q, method="lower")
        assert sketch.quantile(q) == pytest.approx(exact, rel=0.005 + 1e-12)
    assert sketch.mean() == pytest.approx(values.mean(), rel=1e-9)
    assert len(sketch.buckets) < 3000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1e4, allow_nan=False), min_size=1, max_size=300), st.floats(0.0, 1.0))
def test_any_data_any_quantile(values, q):
    sketch = QuantileSketch(0.01)
    for v in values:
        sketch.add(v)
    exact = float(np.quantile(np.asarray(values), q, method="lower"))
    got = sketch.quantile(q)
    assert abs(got - exact) <= 0.01 * exact + 1e-12


def test_merging_equals_adding_everything():
    rng = np.random.default_rng(1)
    a, b, both = QuantileSketch(), QuantileSketch(), QuantileSketch()
    for i, v in enumerate(rng.exponential(1.0, 10_000).tolist()):
        (a if i % 3 else b).add(v)
        both.add(v)
    a.merge(b)
    assert a.buckets == both.buckets and a.count == both.count
    assert a.quantile(0.99) == both.quantile(0.99)
