"""The distributions of `glm`'s inference: p-values and 95% intervals from the normal and Student's t
distributions (the linear algebra is in `glm.factor`). They need nothing beyond `math`: the normal tail
is erfc, and Student's t tail is the regularised incomplete beta function, evaluated by its continued
fraction (Lentz's method, as in Numerical Recipes' `betacf`). The t quantile is found by bisection on
that tail.
"""

from __future__ import annotations

import math

NORMAL_975 = 1.959963984540054
_MAX_FRACTION_TERMS = 100_000
_TINY = 1e-300


def normal_two_sided(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_FRACTION_TERMS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            return result
    raise ArithmeticError(f"the incomplete beta fraction did not converge for a={a}, b={b}, x={x}")


def _stirling_remainder(x: float) -> float:
    """lgamma(x) - ((x - 0.5) log x - x + log(2 pi) / 2), for x >= 10 (error below 1e-14)."""
    inverse_square = 1 / (x * x)
    series = 1 / 1260 - inverse_square * (1 / 1680 - inverse_square / 1188)
    return (1 / 12 - inverse_square * (1 / 360 - inverse_square * series)) / x


def log_beta(a: float, b: float) -> float:
    """log B(a, b). With a large argument, lgamma(a) - lgamma(a + b) is written out by Stirling's
    series, as R's lbeta does: their difference is far smaller than either, and would cancel."""
    small, big = min(a, b), max(a, b)
    if big < 10:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return (
        math.lgamma(small)
        - (big - 0.5) * math.log1p(small / big)
        - small * math.log(big + small)
        + small
        + _stirling_remainder(big)
        - _stirling_remainder(big + small)
    )


def incomplete_beta(a: float, b: float, x: float, one_minus_x: float) -> float:
    """The regularised incomplete beta function I_x(a, b). `one_minus_x` is 1 - x, passed in so that
    callers can compute it without cancellation."""
    if x <= 0:
        return 0.0
    if one_minus_x <= 0:
        return 1.0
    log_x = math.log1p(-one_minus_x) if one_minus_x < 0.5 else math.log(x)
    log_one_minus_x = math.log1p(-x) if x < 0.5 else math.log(one_minus_x)
    log_front = a * log_x + b * log_one_minus_x - log_beta(a, b)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, one_minus_x) / b


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    square = t * t
    return incomplete_beta(df / 2, 0.5, df / (df + square), square / (df + square))


def t_quantile_975(df: float) -> float:
    """The 0.975 quantile of Student's t: where the two-sided tail is 0.05, by bisection."""
    low, high = 0.0, 2.0
    while t_two_sided(high, df) > 0.05:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if t_two_sided(middle, df) > 0.05:
            low = middle
        else:
            high = middle
    return (low + high) / 2
