"""CSV text of large frames, formatted in numpy: the bytes ``DataFrame.to_csv`` writes, faster.

``to_csv(float_format="%.6f")`` calls a Python function for every float, about 2 µs a
value: 10 s for the 4.2 M values of ``peak.yaml``'s ``requests.csv.gz``. :func:`write_csv`
writes the same bytes (same header, quoting, row order, ``%.Nf`` floats, empty cells for
NaN, ``os.linesep`` line ends) from whole-column arithmetic:

* a float becomes the integer ``rint(|x| · 10^N)`` and its digits; ``rint`` rounds half to
  even as ``%`` does, and a value whose scaled product lies within one unit in the last
  place of a half (where the product's own rounding could decide), a NaN, an infinity or a
  value beyond 10^15 / 10^N is formatted by Python's ``%`` instead, so every cell is
  exactly ``"%.Nf" % x``;
* integers are written in full; categorical cells take their category's text, quoted as
  the ``csv`` module quotes it (pandas writes through that module);
* each row is a fixed-width line of a byte matrix padded with NUL bytes, and dropping
  the NULs leaves the CSV text (a NUL cannot occur in the text itself).

Frames with other column types (object, bool, dates) are left to pandas. With gzip the
file is a ``gzip.GzipFile`` named after the path, as pandas opens it, so the compressed
bytes are the same too; compression of one block of rows runs in a second thread while
the next block is formatted (zlib releases the GIL).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["csv_bytes", "write_csv"]

#: Rows formatted at a time: about 10 MB of byte matrix for a requests frame.
CHUNK_ROWS = 1 << 17

_NUL, _DOT, _MINUS, _ZERO = 0, ord("."), ord("-"), ord("0")


def _csv_field(value: str) -> bytes:
    """``value`` as the csv module writes it in a row (QUOTE_MINIMAL), UTF-8."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator=os.linesep).writerow([value, ""])
    text = buf.getvalue()
    return text[: -len(os.linesep) - 1].encode("utf-8")  # without the dummy ",<EOL>"


def _digits(u: np.ndarray, out: np.ndarray, last_col: int, min_digits: int) -> None:
    """Write the decimal digits of ``u`` (non-negative ints) right-aligned ending at ``last_col``.

    Leading zeros beyond ``min_digits`` stay NUL. ``out`` has enough columns to the left.
    """
    if u.size == 0:
        return
    n_digits = max(min_digits, len(str(int(u.max()))))
    rest = u.copy()
    for k in range(n_digits):
        digit = (rest % 10).astype(np.uint8) + _ZERO
        if k >= min_digits:
            digit[rest == 0] = _NUL
        out[:, last_col - k] = digit
        rest //= 10


def _width_for(u: np.ndarray, min_digits: int) -> int:
    return max(min_digits, len(str(int(u.max()))) if u.size else min_digits)


def _int_matrix(values: np.ndarray) -> np.ndarray:
    """``str(v)`` of every integer as NUL-padded rows of a uint8 matrix."""
    signed = values.dtype.kind == "i"
    v = values.astype(np.int64 if signed else np.uint64, copy=False)
    neg = v < 0 if signed else np.zeros(v.shape, dtype=bool)
    u = np.abs(v).astype(np.uint64) if signed else v  # |int64 min| wraps to 2**63, right as uint64
    width = 1 + _width_for(u, 1)
    out = np.zeros((v.size, width), dtype=np.uint8)
    _digits(u, out, width - 1, 1)
    out[neg, 0] = _MINUS
    return out


def _fixed_matrix(values: np.ndarray, decimals: int) -> np.ndarray:
    """``"%.{decimals}f" % x`` of every float (NaN: empty) as NUL-padded rows of a uint8 matrix."""
    x = values.astype(np.float64, copy=False)
    scale = 10**decimals
    missing = np.isnan(x)  # an empty cell (pandas' na_rep)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.abs(x) * float(scale)
        frac = scaled - np.floor(scaled)
        # Python formats what the integer path cannot decide exactly: infinities, values too
        # large for exact integers, and scaled products within 1 ulp of a rounding tie.
        python = ~missing & (~(scaled < 1e15) | (np.abs(frac - 0.5) <= np.spacing(scaled)))
    scaled[python | missing] = 0.0
    r = np.rint(scaled).astype(np.int64)
    whole, part = np.divmod(r, scale)
    width = 1 + _width_for(whole, 1) + (1 + decimals if decimals else 0)
    extra = [(i, f"%.{decimals}f" % x[i]) for i in np.flatnonzero(python)]
    width = max([width] + [len(text) for _, text in extra])
    out = np.zeros((x.size, width), dtype=np.uint8)
    if decimals:
        _digits(part, out, width - 1, decimals)
        out[:, width - 1 - decimals] = _DOT
        _digits(whole, out, width - 2 - decimals, 1)
    else:
        _digits(whole, out, width - 1, 1)
    out[np.signbit(x), 0] = _MINUS
    out[missing] = _NUL
    for i, text in extra:
        out[i] = _NUL
        out[i, width - len(text) :] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return out


def _category_matrix(column: pd.Series) -> np.ndarray:
    """Each cell's category text (NaN: empty), csv-quoted, as NUL-padded rows of a uint8 matrix."""
    fields = [_csv_field(str(c)) for c in column.cat.categories] + [b""]  # code -1 (NaN) takes the last
    width = max(1, max(len(f) for f in fields))
    table = np.zeros((len(fields), width), dtype=np.uint8)
    for j, field in enumerate(fields):
        table[j, : len(field)] = np.frombuffer(field, dtype=np.uint8)
    return table[column.cat.codes.to_numpy()]


def _supported(frame: pd.DataFrame) -> bool:
    for _, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if not all(isinstance(c, str) and "\x00" not in c for c in dtype.categories):
                return False
        elif not (isinstance(dtype, np.dtype) and dtype.kind in "iuf"):
            return False
    return len(frame.columns) > 0 and all(isinstance(c, str) and "\x00" not in c for c in frame.columns)


def _header(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=os.linesep).writerow(list(frame.columns))
    return buf.getvalue().encode("utf-8")


def _chunk(frame: pd.DataFrame, decimals: int) -> np.ndarray:
    """The CSV text of ``frame``'s rows (no header) as a uint8 array."""
    blocks = []
    for _, column in frame.items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            blocks.append(_category_matrix(column))
        elif column.dtype.kind == "f":
            blocks.append(_fixed_matrix(column.to_numpy(), decimals))
        else:
            blocks.append(_int_matrix(column.to_numpy()))
    eol = np.frombuffer(os.linesep.encode("ascii"), dtype=np.uint8)
    width = sum(b.shape[1] for b in blocks) + len(blocks) - 1 + eol.size
    rows = np.empty((len(frame), width), dtype=np.uint8)
    col = 0
    for j, block in enumerate(blocks):
        rows[:, col : col + block.shape[1]] = block
        col += block.shape[1]
        if j < len(blocks) - 1:
            rows[:, col] = ord(",")
            col += 1
    rows[:, col:] = eol
    flat = rows.reshape(-1)
    return flat[flat != _NUL]


def csv_bytes(frame: pd.DataFrame, decimals: int = 6, chunk_rows: int = CHUNK_ROWS):
    """Yield the CSV text of ``frame`` (header first, then blocks of rows) as bytes-like objects.

    The text equals ``frame.to_csv(index=False, float_format=f"%.{decimals}f")`` encoded as
    UTF-8; frames :func:`write_csv` leaves to pandas are not accepted here.
    """
    if not _supported(frame):
        raise TypeError("csv_bytes formats int, float and categorical (str) columns only")
    yield _header(frame)
    for start in range(0, len(frame), chunk_rows):
        yield _chunk(frame.iloc[start : start + chunk_rows], decimals)


def write_csv(frame: pd.DataFrame, path: str | Path, decimals: int = 6, compression: dict | None = None) -> None:
    """Write ``frame.to_csv(path, index=False, float_format=f"%.{decimals}f", compression=compression)``.

    Args:
        frame: The frame; int, float and categorical (str) columns take the fast path,
            anything else goes to pandas unchanged.
        path: The file.
        decimals: Digits after the decimal point of every float.
        compression: ``None`` or a pandas gzip dict (``{"method": "gzip", "mtime": 0, ...}``).
    """
    path = Path(path)
    method = None if compression is None else compression.get("method")
    if not _supported(frame) or method not in (None, "gzip"):
        frame.to_csv(path, index=False, float_format=f"%.{decimals}f", compression=compression)
        return
    options = {k: v for k, v in (compression or {}).items() if k != "method"}
    opened = gzip.GzipFile(filename=str(path), mode="wb", **options) if method == "gzip" else open(path, "wb")
    with opened as handle, ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for data in csv_bytes(frame, decimals):
            if pending is not None:
                pending.result()  # one block compressing while the next is formatted
            pending = pool.submit(handle.write, memoryview(data))
        if pending is not None:
            pending.result()
        handle.flush()  # as pandas' text wrapper does before closing (a gzip sync flush)
