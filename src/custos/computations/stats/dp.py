"""Differential privacy for the `stats` model: the plan a gateway makes from its policy, the checks of
a DP job before any budget is reserved, and the gateway's check of a site's release. The release
itself is computed in the sandbox (`stats.dp_release`) and pooled at the orchestrator (`stats.dp_pool`).

Under DP a job is one round. Each statistic is one query of the job, at the cost its policy gives
(`DpSettings.query_cost`: per query, or the job's ε and δ split evenly):

- a numeric column: a count (when count, mean, variance or std is asked for), a sum, a mean (for mean,
  variance or std), a variance (for variance or std) — each on the values clamped to the column's
  bounds (the policy's, else the public schema's);
- a categorical column: its frequency table over the public schema's categories;
- a histogram: its bins; a quantile spec: its probabilities (OpenDP's quantile mechanism).

With `group_by`, the summaries, histograms and quantiles are released per group, the groups being the
group column's categories in the public schema (never read from the data); the groups are disjoint, so
a query costs the same with or without them (`custos.privacy.dp_groups`). Frequency tables stay over
all rows. `min` and `max` have no DP release and are refused.

**Validate, then charge.** Everything that can refuse a DP job on public metadata and policy alone
(`check_dp_job`: the plan, `max_levels`, and across datasets: DP at all of them or none, the same kind
and the same public categories of every tabulated or grouping column) runs at the orchestrator when
the job is submitted, over all its datasets, and again at each gateway, over its own, before the
gateway reserves any budget: a job that fails these checks costs nothing. What depends on the rows
(`min_subset`, a failure inside the sandbox) can only be known after the mechanisms ran on them; such
a job keeps its charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from custos.computations.base import JobDataset
from custos.computations.stats.disclosure import check_levels, check_subset
from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import SiteDp, SiteQuantiles, SiteSummary
from custos.core.errors import CustosError, InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings, PrivacyControls
from custos.privacy.plan import DpPlan

Json = dict[str, Any]


class DpRound(BaseModel):
    """What the gateway tells the sandbox under `round_input["dp"]`: each query's cost and the
    public bounds, categories and groups. Only the gateway writes it, from its own policy."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mechanism: str
    epsilon: float = Field(gt=0)
    delta: float = Field(ge=0, lt=1)
    contributions: int = Field(ge=1)
    queries: int = Field(ge=1)
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(default_factory=dict)
    # With group_by: the group column's public categories, in the order the release lists them.
    groups: list[str] | None = None


def numeric_queries(statistics: Sequence[str]) -> list[str]:
    """The DP queries of one numeric column, in release order."""
    wanted = set(statistics)
    kinds = []
    if wanted & {"count", "mean", "variance", "std"}:
        kinds.append("count")
    if "sum" in wanted:
        kinds.append("sum")
    if wanted & {"mean", "variance", "std"}:
        kinds.append("mean")
    if wanted & {"variance", "std"}:
        kinds.append("variance")
    return kinds


def _public_categories(schema: DatasetSchema, column: str, what: str) -> list[str]:
    categories = schema.column(column).categories
    if not categories:
        raise PolicyDenied(
            f"column {column!r} has no public categories in the dataset's schema; {what} needs them"
        )
    return list(categories)


def plan_dp(params: StatsParams, schema: DatasetSchema, dp: DpSettings) -> DpPlan:
    """The queries of a DP stats job and what they cost. Raises PolicyDenied for what has no DP release."""
    bounds: dict[str, tuple[float, float]] = {}
    categories: dict[str, list[str]] = {}
    queries = 0
    groups = None
    if params.group_by is not None:
        groups = _public_categories(schema, params.group_by, "a differentially private group_by")

    def bounded(column: str) -> None:
        col = schema.column(column)
        bounds[column] = dp.bounds_for(column, col.min, col.max)

    for column in params.columns:
        col = schema.column(column)
        if col.kind == "numeric":
            if {"min", "max"} & set(params.statistics):
                raise PolicyDenied(
                    "min and max have no differentially private release; ask for quantiles with "
                    "probs [0, 1] instead"
                )
            bounded(column)
            queries += len(numeric_queries(params.statistics))
        else:
            categories[column] = _public_categories(schema, column, "a DP frequency table")
            queries += 1
    queries += len(params.histograms)
    for quant in params.quantiles:
        bounded(quant.column)
        queries += 1
    if queries == 0:
        raise PolicyDenied("the params ask for no statistic with a differentially private release")
    share = dp.query_cost(queries)
    settings = DpRound(
        mechanism=dp.mechanism,
        epsilon=share.epsilon,
        delta=share.delta,
        contributions=dp.rows_per_person,
        queries=queries,
        bounds=bounds,
        categories=categories,
        groups=groups,
    )
    return DpPlan(queries, dp.job_cost(queries), settings.model_dump(mode="json", exclude_none=True))


# --- before any budget is reserved -----------------------------------------------------------------


def _tabulated(params: StatsParams) -> list[tuple[str, str]]:
    """(field, column) of every column whose categories a DP release lists: tables and the grouping."""
    refs = [(f"columns[{i}]", c) for i, c in enumerate(params.columns)]
    return refs + ([("group_by", params.group_by)] if params.group_by is not None else [])


def _check_one(params: StatsParams, dataset: JobDataset) -> None:
    """What one dataset's policy and public schema refuse: the plan, and DataSHIELD's max_levels."""
    assert dataset.privacy.dp is not None
    plan = plan_dp(params, dataset.schema, dataset.privacy.dp)
    settings = DpRound.model_validate(plan.settings)
    levels = {column: len(labels) for column, labels in settings.categories.items()}
    if params.group_by is not None and settings.groups is not None:
        levels[params.group_by] = len(settings.groups)
    check_levels(dataset.privacy.disclosure, levels)


def _check_agreement(params: StatsParams, datasets: Mapping[str, JobDataset]) -> None:
    """Releases pool only when every dataset lists each tabulated column alike: the same kind and the
    same public categories."""
    for field, column in _tabulated(params):
        schemas = {key: d.schema.column(column) for key, d in sorted(datasets.items())}
        kinds = {key: c.kind for key, c in schemas.items()}
        if len(set(kinds.values())) > 1:
            listed = "; ".join(f"{key}: {kind}" for key, kind in kinds.items())
            raise InvalidInput(
                f"{field}: column {column!r} is not of one kind at the job's datasets ({listed}); a "
                "differentially private release pools a column only when it is alike at every site"
            )
        found = {key: list(c.categories or []) for key, c in schemas.items()}
        if len({tuple(labels) for labels in found.values()}) > 1:
            listed = "; ".join(f"{key}: {', '.join(labels) or '(none)'}" for key, labels in found.items())
            raise InvalidInput(
                f"{field}: column {column!r} has different public categories at the job's datasets "
                f"({listed}); a differentially private table pools the same categories from every site"
            )


def check_dp_job(params: StatsParams, datasets: Mapping[str, JobDataset]) -> None:
    """Refuse, before anything is charged, a job that would fail over `datasets` whatever their rows
    hold (see the module docstring). Messages name the dataset, the field and what differs."""
    with_dp = sorted(key for key, d in datasets.items() if d.privacy.dp is not None)
    if not with_dp:
        return
    without = sorted(set(datasets) - set(with_dp))
    if without:
        raise InvalidInput(
            f"the job pools datasets with differential privacy ({', '.join(with_dp)}) and without "
            f"({', '.join(without)}); their results cannot be pooled: choose datasets whose policies agree"
        )
    for key in with_dp:
        try:
            _check_one(params, datasets[key])
        except PolicyDenied as exc:
            raise PolicyDenied(f"{key}: {exc.message}") from exc
        except CustosError as exc:
            raise InvalidInput(f"{key}: {exc.message}") from exc
    _check_agreement(params, datasets)


# --- at the gateway, after the release --------------------------------------------------------------


def filter_dp_result(
    params: StatsParams, result: SiteSummary | SiteQuantiles | SiteDp, controls: PrivacyControls
) -> Json:
    """The gateway's check of a result where either its policy asks for differential privacy or the
    result claims to be a DP release: only a DP release under a DP policy passes, and then DataSHIELD's
    knobs apply and the release leaves without `rows`. (`max_levels` was checked before the budget was
    reserved; checked again here, it holds for any release. `min_subset` depends on the rows: a job it
    refuses here has spent its budget.)"""
    if controls.dp is None or not isinstance(result, SiteDp):
        raise PolicyDenied(
            "the policy asks for a differentially private release and this result is not one"
            if controls.dp is not None
            else "this site's policy has no differential privacy; it does not release noisy results"
        )
    rules = controls.disclosure
    levels = {t.column: len(t.labels or []) for t in result.frequencies}
    if params.group_by is not None:
        levels[params.group_by] = len(result.groups or [])
    check_levels(rules, levels)
    check_subset(params, rules, result.rows)
    return result.model_dump(mode="json", exclude={"rows"}, exclude_none=True)
