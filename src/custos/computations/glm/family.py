"""The five families: gaussian (identity link), binomial (logit), poisson (log), gamma (log) and
negative binomial (log, with a known `alpha`, Var = mu + alpha mu^2). Row-wise pieces of a Newton step
for the sites, and the pooled null deviance and log-likelihood for the orchestrator, following
statsmodels' definitions.

Each step is Newton-Raphson on the log-likelihood, written as weighted least squares: the weights W
are the observed information per row (-d2 l / d eta2) and the working response satisfies
W z = W eta + dl/d eta. With a canonical link (gaussian, binomial, poisson) the observed information
is the expected one, the variance function V(mu), so this is IRLS. With the log link of gamma and
negative binomial it is not, but it stays positive (gamma: y / mu; negative binomial:
mu (1 + alpha y) / (1 + alpha mu)^2), so the same least-squares scheme takes Newton steps and
converges quadratically where IRLS (Fisher scoring) converges only linearly. The covariance uses the
expected information, as statsmodels' IRLS does (gamma: 1; negative binomial: mu / (1 + alpha mu)).

Variances are clipped at machine epsilon as statsmodels does; the binomial deviance is computed from
eta (log1p(exp(eta)) - y eta), which stays exact where mu rounds to 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)
# R's glm.fit warns when fitted values come this close to the boundary.
BOUNDARY = 10 * EPS
# Families whose scale is estimated (Pearson chi-squared / (n - p)): t statistics, as R's summary.glm.
ESTIMATED_SCALE = frozenset({"gaussian", "gamma"})
# Families whose link is not canonical: the covariance needs the expected information separately.
NON_CANONICAL = frozenset({"gamma", "negative_binomial"})


@dataclass(frozen=True)
class RowPieces:
    """One chunk of rows at given coefficients: Newton weights, W z, the expected information's weights
    (None where they are the Newton weights), and the summands of the fit's totals."""

    weights: Floats
    weighted_response: Floats
    expected_weights: Floats | None
    deviance: Floats
    pearson: Floats
    boundary: bool


def start_eta(family: str, y: Floats) -> Floats:
    """The linear predictor of IRLS's usual start: mu = y (gaussian, gamma), (y + 0.5) / 2 (binomial),
    y + 0.1 (poisson, negative binomial)."""
    if family == "gaussian":
        return y.copy()
    if family == "binomial":
        mu = (y + 0.5) / 2
        return np.log(mu / (1 - mu))
    if family == "gamma":
        return np.log(y)
    return np.log(y + 0.1)


def row_pieces(family: str, y: Floats, eta: Floats, alpha: float = 1.0) -> RowPieces:
    """Newton weights, W z and deviance/Pearson summands for rows with outcome `y` at predictor `eta`
    (`alpha`: the negative binomial's). Overflow gives infinities, which the caller reports as a
    non-finite fit."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if family == "gaussian":
            residual = y - eta
            squares = residual * residual
            return RowPieces(np.ones_like(y), y, None, squares, squares, False)
        if family == "gamma":
            return _gamma_pieces(y, eta)
        if family == "negative_binomial":
            return _negative_binomial_pieces(y, eta, alpha)
        if family == "binomial":
            mu = 1 / (1 + np.exp(-eta))
            variance = np.clip(mu, EPS, 1 - EPS) * (1 - np.clip(mu, EPS, 1 - EPS))
            deviance = 2 * (np.logaddexp(0, eta) - y * eta)
            boundary = bool(np.any((mu < BOUNDARY) | (mu > 1 - BOUNDARY)))
        else:
            mu = np.exp(eta)
            variance = np.clip(mu, EPS, None)
            deviance = 2 * (_ylogy(y) - y * eta - y + mu)
            boundary = bool(np.any(mu < BOUNDARY))
        residual = y - mu
        return RowPieces(
            variance, variance * eta + residual, None, deviance, residual * residual / variance, boundary
        )


def _gamma_pieces(y: Floats, eta: Floats) -> RowPieces:
    """l = -y/mu - log mu (per unit scale): dl/d eta = y/mu - 1, observed information y/mu."""
    mu = np.exp(eta)
    ratio = y / mu
    deviance = 2 * (-np.log(ratio) + (y - mu) / mu)
    pearson = ((y - mu) / mu) ** 2
    return RowPieces(ratio, ratio * eta + (ratio - 1), np.ones_like(y), deviance, pearson, False)


def _negative_binomial_pieces(y: Floats, eta: Floats, alpha: float) -> RowPieces:
    """l = y log mu - (y + 1/alpha) log(1 + alpha mu): dl/d eta = (y - mu) / (1 + alpha mu), observed
    information mu (1 + alpha y) / (1 + alpha mu)^2, expected mu / (1 + alpha mu)."""
    mu = np.exp(eta)
    spread = 1 + alpha * mu
    expected = mu / spread
    observed = expected * (1 + alpha * y) / spread
    shape = 1 / alpha
    deviance = 2 * (_ylogy(y) - y * eta - (y + shape) * (np.log(y + shape) - np.log(mu + shape)))
    pearson = (y - mu) ** 2 / (mu * spread)
    boundary = bool(np.any(mu < BOUNDARY))
    return RowPieces(observed, observed * eta + (y - mu) / spread, expected, deviance, pearson, boundary)


def _ylogy(y: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)


def ylogy_sum(y: Floats) -> float:
    return float(_ylogy(y).sum())


def _sum_over_values(y: Floats, term: object) -> float:
    """Sum of term(v) over the rows, each distinct value once (counts repeat few values)."""
    values, counts = np.unique(y, return_counts=True)
    assert callable(term)
    return math.fsum(float(c) * float(term(float(v))) for v, c in zip(values, counts, strict=True))


def lgamma_sum(y: Floats, shift: float = 1.0) -> float:
    """Sum of lgamma(y + shift): log(y!) with the default shift."""
    return _sum_over_values(y, lambda v: math.lgamma(v + shift))


def shifted_ylogy_sum(y: Floats, shift: float) -> float:
    """Sum of (y + shift) log(y + shift)."""
    return _sum_over_values(y, lambda v: (v + shift) * math.log(v + shift))


def log_sum(y: Floats) -> float:
    """Sum of log y (a gamma outcome is positive)."""
    return float(np.log(y).sum())


@dataclass(frozen=True)
class OutcomeTotals:
    """Sums of the outcome over every site's complete rows, as the family needs them: `m2` (squared
    deviations about the mean) for gaussian; `ylogy` and `lgamma` (of y + 1) for poisson and negative
    binomial; `log_y` for gamma; for negative binomial also `shifted_ylogy` and `shifted_lgamma`, of
    y + 1/alpha."""

    n: int
    total: float
    m2: float | None = None
    ylogy: float | None = None
    lgamma: float | None = None
    log_y: float | None = None
    shifted_ylogy: float | None = None
    shifted_lgamma: float | None = None


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def null_deviance(family: str, totals: OutcomeTotals, alpha: float = 1.0) -> float:
    """The deviance of the intercept-only fit, mu = mean(y), as statsmodels' `null_deviance`."""
    n, total = totals.n, totals.total
    mean = total / n
    if family == "gaussian":
        assert totals.m2 is not None
        return totals.m2
    if family == "binomial":
        return -2 * (_xlogy(total, mean) + _xlogy(n - total, 1 - mean))
    if family == "gamma":
        assert totals.log_y is not None
        return 2 * (n * math.log(mean) - totals.log_y)
    assert totals.ylogy is not None
    if family == "poisson":
        return 2 * (totals.ylogy - _xlogy(total, mean))
    assert totals.shifted_ylogy is not None
    shape = 1 / alpha
    return 2 * (
        totals.ylogy
        - _xlogy(total, mean)
        - totals.shifted_ylogy
        + (total + n * shape) * math.log(mean + shape)
    )


def saturated_loglik(family: str, totals: OutcomeTotals, alpha: float = 1.0) -> float:
    """Log-likelihood of the saturated model (mu = y) where it does not depend on the scale: 0 for 0/1
    binomial outcomes, sum of y log y - y - log(y!) for poisson, and for negative binomial sum of
    y log y - (y + k) log(y + k) + lgamma(y + k) - lgamma(k) - log(y!) - k log(alpha), k = 1/alpha.
    (Gaussian's concentrated likelihood and gamma's do not use it.)"""
    if family == "poisson":
        assert totals.ylogy is not None and totals.lgamma is not None
        return totals.ylogy - totals.total - totals.lgamma
    if family == "negative_binomial":
        assert totals.ylogy is not None and totals.lgamma is not None
        assert totals.shifted_ylogy is not None and totals.shifted_lgamma is not None
        shape = 1 / alpha
        return (
            totals.ylogy
            - totals.shifted_ylogy
            + totals.shifted_lgamma
            - totals.lgamma
            - totals.n * (math.lgamma(shape) + shape * math.log(alpha))
        )
    return 0.0


def log_likelihood(
    family: str, n: int, deviance: float, saturated: float, scale: float, log_y: float | None = None
) -> float | None:
    """statsmodels' `llf`: the concentrated likelihood for gaussian (scale = deviance / n); for gamma
    the likelihood at the estimated `scale`, with a = 1/scale,
    n a log a - a (deviance / 2 + n) - n lgamma(a) - sum log y; otherwise the saturated model's
    log-likelihood less half the deviance. None when it is not finite."""
    if family == "gaussian":
        if deviance <= 0:
            return None
        return -n / 2 * (1 + math.log(2 * math.pi * deviance / n))
    if family == "gamma":
        assert log_y is not None
        if not scale > 0:
            return None
        shape = 1 / scale
        return n * shape * math.log(shape) - shape * (deviance / 2 + n) - n * math.lgamma(shape) - log_y
    return saturated - deviance / 2
