"""The numpy CSV writer writes exactly what pandas' to_csv(float_format="%.Nf") writes."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from memstack_capacity.outputs.csv_text import csv_bytes, write_csv
from memstack_capacity.outputs.files import GZIP


def _awkward_floats(rng, n):
    """Floats where "%.6f" is easy to get wrong: ties, near-ties, signs, zeros, non-finite, huge."""
    k = rng.integers(0, 4_000_000_000, n)
    values = [
        rng.uniform(0, 3600, n),                       # times
        rng.lognormal(-3, 2, n),                       # latencies, many below 1e-6
        -rng.lognormal(-3, 3, n),                      # negatives, some rounding to -0.000000
        (k + 0.5) / 1e6,                               # nearest doubles to a decimal tie
        np.nextafter((k + 0.5) / 1e6, np.inf),
        np.nextafter((k + 0.5) / 1e6, -np.inf),
        (k // 1000 + 0.5) / 2**7,                      # exact binary ties at 7 decimals (…0078125)
        rng.integers(-5, 5, n).astype(float),          # whole numbers, 0.0
    ]
    special = np.array([0.0, -0.0, -1e-9, 5e-7, -5e-7, 0.0078125, 2.5, 1e9 - 0.5e-6, 1e9, 1e15, 1e16,
                        1.5e300, -1.5e300, np.nan, np.inf, -np.inf, 5e-324, 999999.9999995, 0.9999995])
    return np.concatenate(values + [special])


@pytest.mark.parametrize("decimals", [6, 3, 0])
def test_floats_ints_and_categories_match_pandas_byte_for_byte(decimals):
    rng = np.random.default_rng(decimals)
    floats = _awkward_floats(rng, 4000)
    n = floats.size
    cats = ["ok", "503", "a,b", 'say "hi"', "ünïcode", "", "line\nbreak"]
    frame = pd.DataFrame({
        "class": pd.Categorical.from_codes(rng.integers(-1, len(cats), n), categories=cats),
        "x": floats,
        "y": rng.permutation(floats),
        "pod": rng.integers(-1, 40, n).astype(np.int32),
        "big": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, endpoint=True),
        "u": rng.integers(0, 2**64 - 1, n, dtype=np.uint64),
        "f32": rng.normal(0, 100, n).astype(np.float32),
        "a,quoted": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    })  # fmt: skip
    frame.loc[0, "big"] = np.iinfo(np.int64).min
    want = frame.to_csv(index=False, float_format=f"%.{decimals}f").encode("utf-8")
    got = b"".join(bytes(chunk) for chunk in csv_bytes(frame, decimals, chunk_rows=997))
    assert got == want


def test_gzip_files_are_pandas_files(tmp_path):
    rng = np.random.default_rng(1)
    n = 20_000
    frame = pd.DataFrame({
        "class": pd.Categorical.from_codes(rng.integers(0, 2, n), categories=["search", "crud"]),
        "t_arrival_s": np.sort(rng.uniform(0, 600, n)),
        "latency_s": rng.lognormal(-3, 1, n),
        "pod": rng.integers(-1, 5, n),
    })  # fmt: skip
    frame.to_csv(tmp_path / "pandas.csv.gz", index=False, float_format="%.6f", compression=GZIP)
    write_csv(frame, tmp_path / "fast.csv.gz", decimals=6, compression=GZIP)
    fast, slow = (tmp_path / "fast.csv.gz").read_bytes(), (tmp_path / "pandas.csv.gz").read_bytes()
    # The header names the file; beyond it, the same bytes (mtime 0: the same every run).
    assert gzip.decompress(fast) == gzip.decompress(slow)
    assert fast.replace(b"fast.csv", b"pandas.csv") == slow
    frame.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6f")
    write_csv(frame, tmp_path / "fast.csv", decimals=6)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    round_trip = pd.read_csv(tmp_path / "fast.csv.gz")
    np.testing.assert_allclose(round_trip["latency_s"], frame["latency_s"], atol=5e-7, rtol=0)


def test_empty_frames_and_other_columns_go_the_same_way(tmp_path):
    empty = pd.DataFrame({"class": pd.Categorical([], categories=["a"]), "t_s": np.empty(0), "pod": np.empty(0, int)})
    assert b"".join(bytes(c) for c in csv_bytes(empty)) == empty.to_csv(index=False).encode()
    mixed = pd.DataFrame({"name": ["x", None, "z"], "ok": [True, False, True], "v": [0.1, np.nan, 2.0]})
    write_csv(mixed, tmp_path / "mixed.csv.gz", compression=GZIP)  # object and bool columns: pandas writes it
    assert gzip.decompress((tmp_path / "mixed.csv.gz").read_bytes()) == mixed.to_csv(
        index=False, float_format="%.6f"
    ).encode()
    with pytest.raises(TypeError):
        next(csv_bytes(mixed))
