"""The built-in federated model `glm@1.0.0`: exact generalised linear models over the rows of several
sites — gaussian (identity link), binomial (logit), poisson (log), gamma (log) and negative binomial
(log, known alpha) — fitted by Newton-Raphson (for the canonical links, IRLS; see `glm.family`). The
pooled fit is the one statsmodels' GLM finds on the concatenated rows; no row leaves its site.

Rounds: round 0 (`start`) has each site take the usual IRLS start from its own outcome and send the
triangle R and rotated response c of its weighted least-squares problem (`glm.factor`); the
orchestrator takes the QR of the stacked triangles and solves for the first coefficients. Each round
k >= 1 sends the coefficients; every site returns its R and c, the deviance and the Pearson chi-squared
at them, and its row count. The orchestrator pools, checks convergence — the relative deviance change
|D_k - D_k-1| / (|D_k| + 0.1) below `tolerance`, as R's glm.fit — and otherwise takes the Newton step.
A gaussian model is linear: round 1 gives its exact fit and ends the job. A step whose deviance is not
finite at some site (overflow) is halved back towards the last good coefficients, up to 10 times.
Params, messages, site code and disclosure rules are in `glm.params`, `glm.wire`, `glm.site` and
`glm.disclosure`.

The final result:

    {"family": "binomial", "link": "logit", "outcome": "smoker", "event": "yes",
     "coefficients": [{"name": "intercept" | "age" | "sex[M]", "estimate", "std_error",
                       "z" (binomial, poisson, negative_binomial) | "t" (gaussian, gamma),
                       "p_value", "ci_lower", "ci_upper"}],
     "n": 60000, "df_residual": 59992, "scale": 1.0,
     "deviance", "null_deviance", "pearson_chi2", "log_likelihood", "aic",
     "converged": true, "stop_reason": "...", "iterations": 5, "rounds": 6, "warnings": []}

Standard errors are sqrt(scale * diag((R'R)^-1)) = sqrt(scale * diag((X'WX)^-1)) at the final
coefficients, W the expected information; the gaussian and gamma scale is the Pearson chi-squared over
n - p, as statsmodels. Intervals are 95%: estimate -/+ the normal (z) or Student's t with n - p degrees
of freedom (t) quantile times the standard error. `log_likelihood` and `aic` (-2 llf + 2 p) are
statsmodels' (the gaussian likelihood is concentrated, gamma's is at the estimated scale; AIC does not
count the scale). `event` is the outcome level counted as 1 when a binomial outcome is categorical,
else null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from custos.computations.base import (
    DalReader,
    Disclosure,
    Final,
    NextRound,
    PolicyControls,
    Step,
    as_controls,
)
from custos.computations.glm.disclosure import filter_site_result
from custos.computations.glm.factor import Floats, PooledFactor, unpack_upper
from custos.computations.glm.family import (
    ESTIMATED_SCALE,
    NON_CANONICAL,
    OutcomeTotals,
    log_likelihood,
    null_deviance,
    saturated_loglik,
)
from custos.computations.glm.inference import NORMAL_975, normal_two_sided, t_quantile_975, t_two_sided
from custos.computations.glm.params import GlmParams, columns_used, parse_params, validate_params
from custos.computations.glm.site import fit_result, read_design
from custos.computations.glm.wire import FitState, SiteFit, parse_round_input, parse_site_fit
from custos.computations.messages import parse_message
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings
from custos.privacy.plan import DpPlan

Json = dict[str, Any]
MAX_HALVINGS = 10
_BOUNDARY_WARNINGS = {
    "binomial": "fitted probabilities numerically 0 or 1 occurred: the outcome may be (quasi-)separated by "
    "the predictors, and estimates and standard errors may be unreliable",
    "poisson": "fitted rates numerically 0 occurred: estimates and standard errors may be unreliable",
    "negative_binomial": "fitted rates numerically 0 occurred: estimates and standard errors may be "
    "unreliable",
}


@dataclass(frozen=True)
class Pooled:
    """One round's site sums, added up."""

    n: int
    blocks: list[tuple[Floats, Floats]]
    # The sites' triangles of the expected information, where the link is not canonical.
    expected: list[Floats] | None
    deviance: float
    pearson_chi2: float
    boundary: bool


def _pool(fits: Sequence[SiteFit], terms: int) -> Pooled | None:
    """The pooled sums, or None when some site's were not finite."""
    if not all(f.finite for f in fits):
        return None
    blocks = []
    for fit in fits:
        assert fit.r is not None and fit.qtz is not None  # check_shape holds for finite fits
        blocks.append((unpack_upper(fit.r, terms), np.asarray(fit.qtz, dtype=np.float64)))
    expected = [unpack_upper(f.r_expected, terms) for f in fits if f.r_expected is not None]
    return Pooled(
        n=sum(f.n for f in fits),
        blocks=blocks,
        expected=expected or None,
        deviance=math.fsum(f.deviance or 0.0 for f in fits),
        pearson_chi2=math.fsum(f.pearson_chi2 or 0.0 for f in fits),
        boundary=any(f.boundary for f in fits),
    )


def _start_constants(params: GlmParams, fits: Sequence[SiteFit], n: int) -> dict[str, float | None]:
    """From round 0's outcome sums: the null deviance, the saturated log-likelihood and (gamma) the
    sum of log y."""
    sums = [f.outcome for f in fits]
    if any(s is None for s in sums):
        raise InvalidInput("round 0 expects the outcome sums from every site")
    present = [(f.n, s) for f, s in zip(fits, sums, strict=True) if s is not None and f.n > 0]
    total = math.fsum(s.sum for _, s in present)

    def pooled(name: str) -> float:
        return math.fsum(getattr(s, name) or 0.0 for _, s in present)

    m2 = None
    if params.family == "gaussian":
        mean = total / n
        m2 = math.fsum((s.m2 or 0.0) + k * ((s.mean or 0.0) - mean) ** 2 for k, s in present)
    totals = OutcomeTotals(
        n=n,
        total=total,
        m2=m2,
        ylogy=pooled("ylogy"),
        lgamma=pooled("lgamma"),
        log_y=pooled("log_y"),
        shifted_ylogy=pooled("shifted_ylogy"),
        shifted_lgamma=pooled("shifted_lgamma"),
    )
    alpha = params.dispersion
    return {
        "null_deviance": null_deviance(params.family, totals, alpha),
        "saturated_loglik": saturated_loglik(params.family, totals, alpha),
        "log_y": totals.log_y if params.family == "gamma" else None,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _coefficients(params: GlmParams, beta: Floats, variances: Floats, df: int) -> list[Json]:
    statistic = "t" if params.family in ESTIMATED_SCALE else "z"
    quantile = t_quantile_975(df) if statistic == "t" else NORMAL_975
    rows = []
    for term, estimate, variance in zip(params.terms(), beta.tolist(), variances.tolist(), strict=True):
        error = math.sqrt(variance)
        value = estimate / error if error > 0 else math.nan
        p_value = t_two_sided(value, df) if statistic == "t" else normal_two_sided(value)
        rows.append(
            {
                "name": term.name,
                "estimate": estimate,
                "std_error": error,
                statistic: _finite(value),
                "p_value": p_value if math.isfinite(value) else None,
                "ci_lower": estimate - quantile * error,
                "ci_upper": estimate + quantile * error,
            }
        )
    return rows


def _final(
    params: GlmParams, state: FitState, pooled: Pooled, factor: PooledFactor, converged: bool, reason: str
) -> Final:
    assert state.coefficients is not None and state.null_deviance is not None
    terms = len(params.terms())
    df = pooled.n - terms
    scale = pooled.pearson_chi2 / df if params.family in ESTIMATED_SCALE else 1.0
    llf = log_likelihood(
        params.family, pooled.n, pooled.deviance, state.saturated_loglik or 0.0, scale, state.log_y
    )
    warnings = [_BOUNDARY_WARNINGS[params.family]] if pooled.boundary else []
    beta = np.asarray(state.coefficients)
    if pooled.expected is not None:
        # The covariance from the expected information, as statsmodels' IRLS.
        names = [t.name for t in params.terms()]
        blocks = [(triangle, np.zeros(terms)) for triangle in pooled.expected]
        factor = PooledFactor(blocks, names, "the expected information at the final coefficients")
    return Final(
        {
            "family": params.family,
            "link": params.link,
            "outcome": params.outcome,
            "event": params.event(),
            "coefficients": _coefficients(params, beta, factor.inverse_diagonal() * scale, df),
            "n": pooled.n,
            "df_residual": df,
            "scale": scale,
            "deviance": pooled.deviance,
            "null_deviance": state.null_deviance,
            "pearson_chi2": pooled.pearson_chi2,
            "log_likelihood": llf,
            "aic": None if llf is None else -2 * llf + 2 * terms,
            "converged": converged,
            "stop_reason": reason,
            "iterations": state.iteration,
            "rounds": state.rounds + 1,
            "warnings": warnings,
        }
    )


def _halve(state: FitState) -> NextRound:
    """Some site overflowed at these coefficients: try halfway back to the last good ones."""
    assert state.coefficients is not None
    if state.halvings >= MAX_HALVINGS:
        raise InvalidInput(
            f"the fit diverged: at iteration {state.iteration} the deviance is not finite at some site even "
            f"after {MAX_HALVINGS} step halvings; rescale the predictors or check for separation"
        )
    current = np.asarray(state.coefficients)
    accepted = np.zeros_like(current) if state.accepted is None else np.asarray(state.accepted)
    halfway = ((accepted + current) / 2).tolist()
    next_state = state.model_copy(
        update={"coefficients": halfway, "halvings": state.halvings + 1, "rounds": state.rounds + 1}
    )
    return _step(next_state)


def _step(state: FitState) -> NextRound:
    round_input = {"phase": "step", "iteration": state.iteration, "coefficients": state.coefficients}
    return NextRound(round_input=round_input, state=state.model_dump(mode="json"))


def advance(params: GlmParams, state: FitState, fits: Sequence[SiteFit]) -> Step:
    """One round's pooled sums -> the next coefficients, or the final fit."""
    names = [t.name for t in params.terms()]
    k = state.iteration
    pooled = _pool(fits, len(names))
    if pooled is None:
        if k == 0:
            raise InvalidInput("the start values give sums that are not finite at some site")
        return _halve(state)
    if k == 0:
        if pooled.n <= len(names):
            raise InvalidInput(
                f"the sites have {pooled.n} complete rows between them (after filters and rows with nulls), "
                f"too few for {len(names)} coefficients"
            )
        state = state.model_copy(update={"n": pooled.n, **_start_constants(params, fits, pooled.n)})
    elif pooled.n != state.n:
        raise InvalidInput(f"round {state.rounds} counts {pooled.n} rows; round 0 counted {state.n}")
    where = (
        "the predictors are collinear"
        if k == 0
        else f"X'WX became singular at iteration {k} (fitted values at the boundary: separation?)"
    )
    factor = PooledFactor(pooled.blocks, names, where)
    if k >= 1:
        assert state.deviance is not None
        change = abs(pooled.deviance - state.deviance) / (abs(pooled.deviance) + 0.1)
        if params.family == "gaussian":
            reason = "the gaussian model is linear: one least-squares step solves it exactly"
            return _final(params, state, pooled, factor, True, reason)
        if change < params.tolerance:
            reason = f"the relative deviance change {change:.3g} is below the tolerance {params.tolerance:g}"
            return _final(params, state, pooled, factor, True, reason)
        if k >= params.max_iterations:
            reason = (
                f"max_iterations ({params.max_iterations}) reached; the last relative deviance change "
                f"was {change:.3g}, above the tolerance {params.tolerance:g}"
            )
            return _final(params, state, pooled, factor, False, reason)
    following = factor.solution()
    if not np.isfinite(following).all():
        raise InvalidInput(f"the Newton step at iteration {k} is not finite; rescale the predictors")
    next_state = state.model_copy(
        update={
            "iteration": k + 1,
            "coefficients": following.tolist(),
            "accepted": state.coefficients,
            "deviance": pooled.deviance,
            "halvings": 0,
            "rounds": state.rounds + 1,
        }
    )
    return _step(next_state)


class GlmModel:
    """`glm@1.0.0`. Stateless: everything between rounds is in the orchestrator's `state`."""

    name: str = "glm"
    version: str = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        validate_params(params, schema, columns)

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        return columns_used(parse_params(params))

    def start(self, params: Mapping[str, Any]) -> NextRound:
        parse_params(params)
        return NextRound(round_input={"phase": "start"}, state=FitState(iteration=0).model_dump(mode="json"))

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        parsed = parse_params(params)
        step = parse_round_input(round_input)
        return fit_result(read_design(dal, dataset, parsed), step)

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        controls = as_controls(privacy)
        if controls.dp is not None:
            raise PolicyDenied("glm has no differentially private release; the policy requires one")
        parsed = parse_params(params)
        fit = parse_site_fit(result, len(parsed.terms()), "the site result", parsed.family in NON_CANONICAL)
        rules = controls.glm if isinstance(controls, PolicyControls) else None
        return filter_site_result(parsed, fit, controls.disclosure.min_count, rules)

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        raise PolicyDenied(
            "glm has no differentially private release; this dataset's policy requires differential privacy"
        )

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        parsed = parse_params(params)
        current = parse_message(FitState, state, "the job's state")
        if not site_results:
            raise InvalidInput("there are no site results to aggregate")
        fits = []
        for site, result in sorted(site_results.items()):
            fit = parse_site_fit(
                result, len(parsed.terms()), f"the result of {site}", parsed.family in NON_CANONICAL
            )
            expected = "start" if current.iteration == 0 else "step"
            if fit.phase != expected or fit.iteration != current.iteration:
                raise InvalidInput(
                    f"the result of {site} answers {fit.phase} iteration {fit.iteration}; "
                    f"round {current.rounds} asked for {expected} iteration {current.iteration}"
                )
            if fit.checks is not None:
                raise InvalidInput(f"the result of {site} was not filtered by its gateway")
            fits.append(fit)
        return advance(parsed, current, fits)
