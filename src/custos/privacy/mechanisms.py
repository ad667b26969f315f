"""How `custos.privacy.dp` turns OpenDP pieces into one calibrated measurement per release.

A release is made of parts, each a stable transformation (clamp, sum, count, ...) followed by noise. The
parts are composed and — for the Gaussian mechanism — converted from zero-concentrated DP to (ε, δ).
Every part's noise scale is a common multiplier times that part's sensitivity, so every part spends the
same share of the budget; the multiplier is the smallest (to a relative 1e-6) whose composed
measurement meets (ε, δ) at `contributions` (the rows one person can add or remove). A release reports
the privacy map of that measurement, which never exceeds the budget asked for.

Calibrated measurements are kept by (release shape, budget): calibration builds some forty
measurements (and a Gaussian privacy map alone takes ~10 ms), while calling a measurement draws fresh
noise each time, so a gateway that releases the same shapes again and again pays it once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opendp import combinators as dpc
from opendp import domains as dpd
from opendp import metrics as dpme
from opendp.mod import Measurement, OpenDPException, enable_features

from custos.core.errors import InvalidInput
from custos.privacy.controls import Mechanism

V = TypeVar("V")


@dataclass(frozen=True)
class DpRelease(Generic[V]):
    """A noisy value and what it cost: `epsilon` and `delta` come from the measurement's privacy map.
    `scales` is the noise scale of each part (Laplace b, Gaussian sigma; for quantiles the score noise)."""

    value: V
    epsilon: float
    delta: float
    mechanism: Mechanism
    scales: Mapping[str, float]


@dataclass(frozen=True)
class Budget:
    epsilon: float
    delta: float
    mechanism: Mechanism
    contributions: int


def budget_of(epsilon: float, delta: float, mechanism: Mechanism, contributions: int) -> Budget:
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInput(f"epsilon must be a positive number, got {epsilon}")
    if mechanism not in ("laplace", "gaussian"):
        raise InvalidInput(f"mechanism must be laplace or gaussian, got {mechanism!r}")
    if mechanism == "laplace" and delta != 0:
        raise InvalidInput(f"the laplace mechanism spends delta 0; got delta={delta}")
    if mechanism == "gaussian" and not 0 < delta < 1:
        raise InvalidInput(f"the gaussian mechanism needs 0 < delta < 1, got delta={delta}")
    if contributions < 1:
        raise InvalidInput(f"contributions must be at least 1, got {contributions}")
    return Budget(float(epsilon), float(delta), mechanism, int(contributions))


def enable_opendp(*extra: str) -> None:
    # "contrib": OpenDP gates every constructor used here (clamp, sum, count, noise, composition) behind
    # it. Called per release, not at import, so importing this module has no global effect.
    enable_features("contrib", *extra)


def float_rows() -> tuple[Any, Any]:
    """Rows of one float column (no NaN), neighbouring when one row is added or removed."""
    return dpd.vector_domain(dpd.atom_domain(T=float, nan=False)), dpme.symmetric_distance()


# A part: its name, a constructor from the scale multiplier to a measurement in the mechanism's own
# measure (pure DP for Laplace, zCDP for Gaussian), and the noise scale that multiplier gives it.
Part = tuple[str, Callable[[float], Measurement], Callable[[float], float]]


def smallest_scale(build: Callable[[float], Measurement], d_in: int, d_out: Any) -> float:
    """The smallest multiplier (to a relative 1e-6) whose measurement meets `d_out` at `d_in`; privacy
    loss falls as the scale grows. (OpenDP's `binary_search_param` searches to the float's last bit:
    over a thousand constructions.)"""

    def meets(s: float) -> bool:
        try:
            return bool(build(s).check(d_in, d_out))
        except OpenDPException:
            return False  # e.g. an overflow in a privacy map at a tiny scale: not shown to meet it

    low, high = 1.0, 1.0
    while not meets(high):
        low, high = high, high * 2
        if high > 1e300:
            raise InvalidInput(f"no noise scale meets the budget {d_out!r}")
    if low == high:
        while low > 1e-300 and meets(low / 2):
            low /= 2
        high, low = low, low / 2
    while high - low > 1e-6 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class Calibrated:
    """A release's measurement, calibrated to its budget."""

    measurement: Measurement
    epsilon: float  # its privacy map at `contributions`
    delta: float
    scales: dict[str, float]

    def run(self, data: Any) -> list[Any]:
        """The noisy outputs of the parts, fresh noise on every call."""
        return list(self.measurement(data))

    def release(self, value: V, budget: Budget) -> DpRelease[V]:
        return DpRelease(value, self.epsilon, self.delta, budget.mechanism, dict(self.scales))


def _calibrate(parts: Sequence[Part], budget: Budget) -> Calibrated:
    def build(s: float) -> Measurement:
        composed = dpc.make_composition([make(s) for _, make, _ in parts])
        if budget.mechanism == "gaussian":
            return dpc.make_fix_delta(dpc.make_zCDP_to_approxDP(composed), budget.delta)
        return composed

    target: Any = budget.epsilon if budget.mechanism == "laplace" else (budget.epsilon, budget.delta)
    s = smallest_scale(build, budget.contributions, target)
    measurement = build(s)
    spent = measurement.map(budget.contributions)  # type: ignore[no-untyped-call]
    epsilon, delta = (float(spent), 0.0) if budget.mechanism == "laplace" else map(float, spent)
    if epsilon > budget.epsilon or delta > budget.delta:
        raise AssertionError(f"calibrated to ({epsilon}, {delta}), over the budget {target!r}")
    return Calibrated(measurement, epsilon, delta, {name: scale(s) for name, _, scale in parts})


_CALIBRATED: dict[tuple[Hashable, Budget], Calibrated] = {}
_MAX_CALIBRATED = 1024


def calibrated(shape: Hashable, parts: Callable[[], Sequence[Part]], budget: Budget) -> Calibrated:
    """The calibrated measurement of a release. `shape` must determine the parts (what is computed,
    bounds, bins, categories), so that a kept measurement is reused only for the same release."""
    key = (shape, budget)
    found = _CALIBRATED.get(key)
    if found is None:
        found = _calibrate(parts(), budget)
        if len(_CALIBRATED) >= _MAX_CALIBRATED:
            _CALIBRATED.clear()
        _CALIBRATED[key] = found
    return found
