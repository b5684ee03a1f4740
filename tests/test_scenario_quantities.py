"""Quantity spellings round-trip: format → parse is the identity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memstack_capacity.scenario import quantities as q


@given(st.integers(min_value=1, max_value=10**7))
def test_cpu_millicores_round_trip(milli):
    cores = milli / 1000
    text = q.format_cpu(cores)
    assert q.parse_cpu(text) == cores
    assert text == (str(milli // 1000) if milli % 1000 == 0 else f"{milli}m")


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_bytes_round_trip(n_bytes):
    assert q.parse_memory(q.format_memory(n_bytes)) == n_bytes


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False))
def test_duration_round_trip_is_exact(seconds):
    assert q.parse_duration(q.format_duration(seconds)) == seconds


@given(st.floats(min_value=1e-6, max_value=1e4, allow_nan=False))
def test_cpu_any_float_round_trips(cores):
    assert q.parse_cpu(q.format_cpu(cores)) == cores


@pytest.mark.parametrize(("seconds", "text"), [(30, "30s"), (300, "5m"), (3600, "1h"), (0.25, "250ms"),
                                               (0, "0s"), (90, "90s"), (0.0015, "0.0015s")])
def test_duration_spellings(seconds, text):
    assert q.format_duration(seconds) == text


@pytest.mark.parametrize(("n_bytes", "text"), [(512 * 2**20, "512Mi"), (2 * 2**30, "2Gi"), (1000, "1000"), (0, "0")])
def test_memory_spellings(n_bytes, text):
    assert q.format_memory(n_bytes) == text


@pytest.mark.parametrize("text", ["5 minutes", "m5", "", "1h-5m", "5x"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        q.parse_duration(text)


def test_negative_duration_parses_for_the_field_to_reject():
    assert q.parse_duration("-5m") == -300.0


@pytest.mark.parametrize(("parse", "text"), [(q.parse_cpu, "2 cores"), (q.parse_cpu, "500Mi"),
                                             (q.parse_memory, "2GiB"), (q.parse_memory, "lots")])
def test_bad_quantities(parse, text):
    with pytest.raises(ValueError, match="not a (CPU|memory) quantity"):
        parse(text)
