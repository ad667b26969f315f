"""The three families with their canonical links: gaussian (identity), binomial (logit) and poisson
(log). Row-wise pieces of an IRLS step for the sites, and the pooled null deviance and log-likelihood
for the orchestrator, following statsmodels' definitions.

With a canonical link the IRLS weight is the variance function, W = V(mu), and the working response
satisfies W z = W eta + (y - mu), so IRLS is Newton-Raphson. Variances are clipped at machine epsilon
as statsmodels does; the binomial deviance is computed from eta (log1p(exp(eta)) - y eta), which stays
exact where mu rounds to 0 or 1.
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


@dataclass(frozen=True)
class RowPieces:
    """One chunk of rows at given coefficients: weights, W z, and the summands of the fit's totals."""

    weights: Floats
    weighted_response: Floats
    deviance: Floats
    pearson: Floats
    boundary: bool


def start_eta(family: str, y: Floats) -> Floats:
    """The linear predictor of IRLS's usual start: mu = y, (y + 0.5) / 2, y + 0.1."""
    if family == "gaussian":
        return y.copy()
    if family == "binomial":
        mu = (y + 0.5) / 2
        return np.log(mu / (1 - mu))
    return np.log(y + 0.1)


def row_pieces(family: str, y: Floats, eta: Floats) -> RowPieces:
    """IRLS weights, W z and deviance/Pearson summands for rows with outcome `y` at predictor `eta`.
    Overflow gives infinities, which the caller reports as a non-finite fit."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if family == "gaussian":
            residual = y - eta
            return RowPieces(np.ones_like(y), y, residual * residual, residual * residual, False)
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
            variance, variance * eta + residual, deviance, residual * residual / variance, boundary
        )


def _ylogy(y: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)


def ylogy_sum(y: Floats) -> float:
    return float(_ylogy(y).sum())


def lgamma_sum(y: Floats) -> float:
    """Sum of log(y!) — lgamma(y + 1) — over each distinct value once (counts repeat few values)."""
    values, counts = np.unique(y, return_counts=True)
    return math.fsum(float(c) * math.lgamma(float(v) + 1) for v, c in zip(values, counts, strict=True))


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def null_deviance(family: str, n: int, total: float, m2: float | None, ylogy: float | None) -> float:
    """The deviance of the intercept-only fit, mu = mean(y), as statsmodels' `null_deviance`. Gaussian
    needs the pooled sum of squared deviations `m2`; poisson the pooled sum of y log y."""
    mean = total / n
    if family == "gaussian":
        assert m2 is not None
        return m2
    if family == "binomial":
        return -2 * (_xlogy(total, mean) + _xlogy(n - total, 1 - mean))
    assert ylogy is not None
    return 2 * (ylogy - _xlogy(total, mean))


def log_likelihood(family: str, n: int, deviance: float, saturated: float) -> float | None:
    """statsmodels' `llf`: the concentrated likelihood for gaussian (scale = deviance / n), otherwise the
    saturated model's log-likelihood less half the deviance. None when it is not finite."""
    if family == "gaussian":
        if deviance <= 0:
            return None
        return -n / 2 * (1 + math.log(2 * math.pi * deviance / n))
    return saturated - deviance / 2


def saturated_loglik(family: str, total: float, ylogy: float | None, lgamma: float | None) -> float:
    """Log-likelihood of the saturated model (mu = y): 0 for 0/1 binomial outcomes, sum of
    y log y - y - log(y!) for poisson. (Gaussian's concentrated likelihood does not use it.)"""
    if family == "poisson":
        assert ylogy is not None and lgamma is not None
        return ylogy - total - lgamma
    return 0.0
