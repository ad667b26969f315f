"""Disclosure control for `glm`, applied by each gateway to its site's result before it leaves the site.

A site result is all-or-nothing (a model cannot be fitted on part of a site's sums), so where `stats`
suppresses a cell, `glm` refuses: the filter raises PolicyDenied, the task fails with that reason and
the job fails. With n complete rows at the site (after the job's filters), p coefficients and the
policy's `min_count`:

- n = 0: passes; the site adds nothing to the sums.
- 0 < n < min_count: refused.
- p >= n (a saturated model, which would reproduce the rows): refused.
- r p > n (fewer than r rows per coefficient, the policy's `glm.min_rows_per_term`, default 10): refused.
- binomial: fewer than min_count rows with outcome 1, or with outcome 0, refused (all rows of one class
  would tell everyone's outcome).
- categorical predictors: a level with 0 < rows < min_count at the site is refused (X'WX holds the
  level's weighted row count; for gaussian, the exact count).

Messages state the rule and the threshold, never the site's row count. The counts the checks use are
removed before the result leaves.
"""

from __future__ import annotations

from typing import Any

from custos.computations.glm.params import GlmParams
from custos.computations.glm.wire import SiteFit
from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy.glm_rules import GlmRules

Json = dict[str, Any]


def check_site_fit(params: GlmParams, fit: SiteFit, min_count: int, rules: GlmRules | None = None) -> None:
    """Raise PolicyDenied when the site's result may not leave it under the policy's `min_count` and
    its `glm` rules (the defaults when None)."""
    rows_per_term = (rules or GlmRules()).min_rows_per_term
    if fit.checks is None:
        raise InvalidInput("the site result carries no counts to check; it cannot be released")
    n, p = fit.n, len(params.terms())
    if n == 0:
        return
    if n < min_count:
        raise PolicyDenied(f"this site has fewer than {min_count} rows for the model (the policy's minimum)")
    if p >= n:
        raise PolicyDenied(
            f"saturated model: {p} coefficients for {p} rows or fewer at this site; "
            "it would reproduce the rows"
        )
    if rows_per_term * p > n:
        raise PolicyDenied(
            f"too many parameters: {p} coefficients need at least {rows_per_term * p} rows at this site "
            f"({rows_per_term} per coefficient, the policy's glm.min_rows_per_term), and it has fewer"
        )
    if params.family == "binomial":
        events = fit.checks.events
        if events is None:
            raise InvalidInput("the site result of a binomial model does not count its events")
        if min(events, n - events) < min_count:
            raise PolicyDenied(
                f"the outcome {params.outcome!r} has fewer than {min_count} rows of one of its two values "
                "at this site"
            )
    for column, levels in params.levels.items():
        if column == params.outcome:
            continue
        counts = fit.checks.levels.get(column)
        if counts is None or len(counts) != len(levels):
            raise InvalidInput(f"the site result does not count the rows of each level of {column!r}")
        for level, count in zip(levels, counts, strict=True):
            if 0 < count < min_count:
                raise PolicyDenied(
                    f"predictor {column!r}: level {level!r} has fewer than {min_count} rows at this site; "
                    "merge it with another level or filter it out"
                )


def filter_site_result(
    params: GlmParams, fit: SiteFit, min_count: int, rules: GlmRules | None = None
) -> Json:
    """The result as it may leave the site, without the counts the checks used."""
    check_site_fit(params, fit, min_count, rules)
    return fit.model_dump(mode="json", exclude={"checks"})
