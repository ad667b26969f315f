"""Arrow columns as NumPy arrays, for the models' site code inside the sandbox: numeric columns as
float64 (and int64, for exact integer sums) without their nulls, categorical columns as codes into
their labels, and the JSON-safe and chunked arithmetic every model's sufficient statistics use.
Nothing here imports pandas: a job's first round must not pay for it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Mask = npt.NDArray[np.bool_]


def finite(value: float) -> float | None:
    """JSON has no NaN or infinity: such a result becomes null."""
    return value if math.isfinite(value) else None


def plain_array(array: pa.ChunkedArray | pa.Array) -> pa.Array:
    plain = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if pa.types.is_dictionary(plain.type):
        plain = plain.dictionary_decode()
    return plain


_NUMPY_TYPES: dict[pa.DataType, type[np.generic]] = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}  # fmt: skip


def as_numpy(array: pa.Array) -> npt.NDArray[Any]:
    """The array's values, viewed in place when it is numeric and has no nulls. (pyarrow's to_numpy
    imports pandas, which would cost a job's first round a third of a second.)"""
    kind = _NUMPY_TYPES.get(array.type)
    if kind is None or array.null_count:
        values: npt.NDArray[Any] = array.to_numpy(zero_copy_only=False)
        return values
    dtype = np.dtype(kind)
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize
    )


def is_numeric_type(data_type: pa.DataType) -> bool:
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    return any(bool(is_kind(data_type)) for is_kind in kinds)


def category_codes(array: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Each row's category as an index into the returned labels (-1 for null). Labels are text:
    booleans become "true"/"false", numbers their decimal form."""
    plain = plain_array(array)
    if not pa.types.is_string(plain.type):
        plain = pc.cast(plain, pa.string())
    encoded = pc.dictionary_encode(plain)
    codes = as_numpy(pc.fill_null(encoded.indices, -1)).astype(np.int64)
    return codes, [str(label) for label in encoded.dictionary.to_pylist()]


class NumericColumn:
    """One numeric column's non-null values as float64, plus int64 for integer columns (exact sums)."""

    def __init__(self, array: pa.ChunkedArray) -> None:
        plain = plain_array(array)
        floats = pc.cast(plain, pa.float64(), safe=False)
        if floats.null_count:
            floats = pc.fill_null(floats, math.nan)
        # asarray, not astype: no copy when the values are float64 already (10 M rows are 80 MB).
        self.floats: npt.NDArray[np.float64] = np.asarray(as_numpy(floats), np.float64)
        self.valid: Mask = ~np.isnan(self.floats)
        self.all_valid = bool(self.valid.all())
        self.ints: npt.NDArray[np.int64] | None = None
        if pa.types.is_integer(plain.type):
            ints = pc.fill_null(plain, 0) if plain.null_count else plain
            self.ints = np.asarray(as_numpy(ints), np.int64)

    def select(self, mask: Mask | None) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64] | None]:
        if mask is None and self.all_valid:
            return self.floats, self.ints
        keep = self.valid if mask is None else self.valid & mask
        return self.floats[keep], None if self.ints is None else self.ints[keep]


# Chunks bound the temporaries of the variance pass (a full-size copy of 10 M rows is 80 MB).
_CHUNK = 1 << 20


def squared_deviations(values: npt.NDArray[np.float64], mean: float) -> float:
    """Sum of (x - mean)^2, one chunk at a time."""
    total = 0.0
    for start in range(0, len(values), _CHUNK):
        deviations = values[start : start + _CHUNK] - mean
        total += float(np.dot(deviations, deviations))
    return total
