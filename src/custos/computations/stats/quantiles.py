"""Exact federated quantiles by bisection on counts: no site ever sends a data value.

Every float64 maps to an int64 key with the same order (`float_keys`). To find the k-th smallest pooled
value (0-based) the orchestrator keeps, per search, a key interval (lo, hi] holding it and the pooled
number of values <= lo (`below`). Each round it sends (lo, hi) and every site answers, for each of up
to K `thresholds` t inside the interval, how many of its values have a key in (lo, t]. The pooled counts
shrink the interval about K+1-fold (`narrow`); once hi = lo + 1, hi is the key of the k-th value.

A quantile is then computed from two order statistics exactly as numpy's default "linear" method
(and so pandas' `Series.quantile`): `interpolation_points` and `lerp` repeat numpy's arithmetic.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

THRESHOLDS = 255
MAX_THRESHOLDS = 4095
_LOW_BITS = 0x7FFF_FFFF_FFFF_FFFF


def float_keys(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Order-preserving int64 keys of float64 values (no NaN). -0.0 and 0.0 get the same key."""
    bits = (values.astype(np.float64) + 0.0).view(np.int64)
    return np.where(bits < 0, bits ^ np.int64(_LOW_BITS), bits)


def key_of(value: float) -> int:
    bits: int = struct.unpack("<q", struct.pack("<d", value + 0.0))[0]
    return bits ^ _LOW_BITS if bits < 0 else bits


def value_of(key: int) -> float:
    bits = key ^ _LOW_BITS if key < 0 else key
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


# The first interval holds every key from -inf to +inf.
FIRST_LO = key_of(-math.inf) - 1
FIRST_HI = key_of(math.inf)


def thresholds(lo: int, hi: int, count: int) -> list[int]:
    """Up to `count` keys strictly inside (lo, hi), evenly spread; every key there when it has few."""
    width = hi - lo
    if width <= count + 1:
        return list(range(lo + 1, hi))
    return [lo + (j * width) // (count + 1) for j in range(1, count + 1)]


def counts_in(sorted_keys: npt.NDArray[np.int64], lo: int, cuts: list[int]) -> list[int]:
    """How many keys lie in (lo, t] for each t in `cuts`."""
    base = int(np.searchsorted(sorted_keys, np.int64(lo), side="right"))
    upto = np.searchsorted(sorted_keys, np.asarray(cuts, dtype=np.int64), side="right")
    return [int(u) - base for u in upto]


def interpolation_points(n: int, prob: float) -> tuple[int, int, float]:
    """numpy's linear method: (previous index, next index, gamma) for `prob` over `n` sorted values."""
    virtual = (n - 1) * prob
    if virtual >= n - 1:
        # numpy points both neighbours at the last value and takes gamma against index -1.
        return n - 1, n - 1, virtual + 1
    previous = math.floor(virtual)
    return previous, previous + 1, virtual - previous


def lerp(a: float, b: float, t: float) -> float:
    """numpy's `_lerp`: a + (b - a) * t, computed from b's side when t >= 0.5."""
    diff = b - a
    if t >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


@dataclass
class Search:
    """Where the k-th smallest value (0-based) of one cell lies: a key in (lo, hi]."""

    id: int
    column: str
    group: str | None
    k: int
    lo: int = FIRST_LO
    hi: int = FIRST_HI
    below: int = 0

    @property
    def done(self) -> bool:
        return self.hi - self.lo <= 1

    @property
    def value(self) -> float:
        return value_of(self.hi)

    def narrow(self, cuts: list[int], pooled: list[int]) -> None:
        """Keep the sub-interval whose pooled count first reaches k + 1 values.
        `pooled[j]` counts the values in (lo, cuts[j]]."""
        lo, below = self.lo, self.below
        for cut, count in zip(cuts, pooled, strict=True):
            if self.below + count >= self.k + 1:
                self.lo, self.below, self.hi = lo, below, cut
                return
            lo, below = cut, self.below + count
        self.lo, self.below = lo, below

    def to_json(self) -> dict[str, object]:
        return asdict(self)
