"""Differential privacy for the `stats` model: the plan a gateway makes from its policy, the noisy
release the sandbox computes with `custos.privacy.dp`, the gateway's check of it, and the pooling of
noisy site values at the orchestrator.

Under DP a job is one round. Each statistic is one query of the job, at the cost its policy gives
(`DpSettings.query_cost`: per query, or the job's ε and δ split evenly):

- a numeric column: a count (when count, mean, variance or std is asked for), a sum, a mean (for mean,
  variance or std), a variance (for variance or std) — each on the values clamped to the column's
  bounds (the policy's, else the public schema's);
- a categorical column: its frequency table over the public schema's categories;
- a histogram: its bins; a quantile spec: its probabilities (one exponential-mechanism query).

The orchestrator combines noisy site values only (post-processing): counts and sums add, the mean is
the count-weighted mean of the site means, the variance pools the sites' (count, mean, variance) as
Chan et al. do, a quantile is the count-weighted mean of the site quantiles (an approximation), and
frequency and histogram counts add. `group_by`, `min` and `max` have no DP release and are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from custos.computations.columns import category_codes
from custos.computations.messages import parse_message
from custos.computations.stats.disclosure import check_levels, check_subset
from custos.computations.stats.params import StatsParams
from custos.computations.stats.site import SiteRows
from custos.computations.stats.wire import DpSummary, SiteDp, SiteQuantiles, SiteSummary
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings, PrivacyControls
from custos.privacy.plan import DpPlan

Json = dict[str, Any]


class DpRound(BaseModel):
    """What the gateway tells the sandbox under `round_input["dp"]`: each query's cost and the
    public bounds and categories. Only the gateway writes it, from its own policy."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mechanism: str
    epsilon: float = Field(gt=0)
    delta: float = Field(ge=0, lt=1)
    contributions: int = Field(ge=1)
    queries: int = Field(ge=1)
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(default_factory=dict)


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


def plan_dp(params: StatsParams, schema: DatasetSchema, dp: DpSettings) -> DpPlan:
    """The queries of a DP stats job and what they cost. Raises PolicyDenied for what has no DP release."""
    if params.group_by is not None:
        raise PolicyDenied("group_by has no differentially private release yet; ask without group_by")
    bounds: dict[str, tuple[float, float]] = {}
    categories: dict[str, list[str]] = {}
    queries = 0

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
            if not col.categories:
                raise PolicyDenied(
                    f"column {column!r} has no public categories in the dataset's schema; a DP frequency "
                    "table needs them"
                )
            categories[column] = list(col.categories)
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
    )
    return DpPlan(queries, dp.job_cost(queries), settings.model_dump(mode="json"))


# --- at the site, in the sandbox ------------------------------------------------------------------


def category_counts(rows: SiteRows, column: str, categories: Sequence[str]) -> list[int]:
    """How many rows hold each public category (compared as text); other values are not counted."""
    codes, labels = category_codes(rows.table.column(column))
    found = np.bincount(codes[codes >= 0], minlength=len(labels))
    index = {label: i for i, label in enumerate(labels)}
    return [int(found[index[c]]) if c in index else 0 for c in categories]


def dp_site_result(rows: SiteRows, params: StatsParams, plan: Mapping[str, Any]) -> Json:
    """The noisy release of one site (OpenDP is imported here, inside the sandbox, only under DP).
    Each column is aggregated once, in one NumPy pass (`ClampedColumn`), and every release of it
    adds noise to those aggregates."""
    from custos.privacy import dp as odp

    settings = parse_message(DpRound, plan, "round_input.dp")
    if settings.mechanism not in ("laplace", "gaussian"):
        raise InvalidInput(f"round_input.dp.mechanism: unknown mechanism {settings.mechanism!r}")
    mech: Any = settings.mechanism
    cost: dict[str, Any] = {
        "epsilon": settings.epsilon,
        "delta": settings.delta,
        "mechanism": mech,
        "contributions": settings.contributions,
    }
    spent = [0.0, 0.0, 0]

    def charge(release: Any) -> Any:
        spent[0] += release.epsilon
        spent[1] += release.delta
        spent[2] += 1
        return release.value

    summaries, frequencies, histograms, quantiles = [], [], [], []
    for column in params.columns:
        if column in settings.categories:
            labels = settings.categories[column]
            counts = odp.dp_bin_counts(category_counts(rows, column, labels), **cost)
            frequencies.append({"column": column, "labels": labels, "counts": charge(counts)})
            continue
        lo, hi = settings.bounds[column]
        values = odp.ClampedColumn.of(rows.numeric(column).select(None)[0], lo, hi)
        entry: Json = {"column": column}
        for kind in numeric_queries(params.statistics):
            if kind == "count":
                entry["count"] = charge(odp.dp_count(values.count, **cost))
            elif kind == "sum":
                entry["sum"] = charge(odp.dp_sum(values, lo, hi, **cost))
            elif kind == "mean":
                entry["mean"] = charge(odp.dp_mean(values, lo, hi, **cost))
            else:
                entry["variance"] = charge(odp.dp_variance(values, lo, hi, **cost))
        summaries.append(entry)
    for hist in params.histograms:
        binned = odp.bin_counts(rows.numeric(hist.column).select(None)[0], hist.edges)
        counts = odp.dp_bin_counts(binned, **cost)
        histograms.append({"column": hist.column, "counts": charge(counts)})
    for quant in params.quantiles:
        lo, hi = settings.bounds[quant.column]
        found = odp.dp_quantiles(rows.numeric(quant.column).select(None)[0], lo, hi, quant.probs, **cost)
        quantiles.append({"column": quant.column, "probs": quant.probs, "values": charge(found)})
    if spent[2] != settings.queries:
        raise InvalidInput(f"the DP plan names {settings.queries} queries; the params make {spent[2]}")
    return {
        "phase": "dp",
        "summaries": summaries,
        "frequencies": frequencies,
        "histograms": histograms,
        "quantiles": quantiles,
        "spent": {"mechanism": mech, "epsilon": spent[0], "delta": spent[1], "queries": spent[2]},
        "rows": rows.table.num_rows,
    }


# --- at the gateway --------------------------------------------------------------------------------


def filter_dp_result(
    params: StatsParams, result: SiteSummary | SiteQuantiles | SiteDp, controls: PrivacyControls
) -> Json:
    """The gateway's check of a result where either its policy asks for differential privacy or the
    result claims to be a DP release: only a DP release under a DP policy passes, and then DataSHIELD's
    knobs apply and the release leaves without `rows`."""
    if controls.dp is None or not isinstance(result, SiteDp):
        raise PolicyDenied(
            "the policy asks for a differentially private release and this result is not one"
            if controls.dp is not None
            else "this site's policy has no differential privacy; it does not release noisy results"
        )
    rules = controls.disclosure
    check_levels(rules, {t.column: len(t.labels or []) for t in result.frequencies})
    check_subset(params, rules, result.rows)
    return result.model_dump(mode="json", exclude={"rows"}, exclude_none=True)


# --- at the orchestrator ---------------------------------------------------------------------------


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    if total <= 0:
        return sum(values) / len(values)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total


def _pool_summary(column: str, parts: Sequence[DpSummary], statistics: Sequence[str]) -> Json:
    counts = [max(p.count or 0, 0) for p in parts]
    entry: Json = {"column": column, "group": None}
    mean = None
    if all(p.mean is not None for p in parts):
        mean = _weighted([p.mean or 0.0 for p in parts], [float(c) for c in counts])
    variance = None
    if mean is not None and all(p.variance is not None for p in parts):
        n = sum(counts)
        m2 = sum(
            max(c - 1, 0) * (p.variance or 0.0) + c * ((p.mean or 0.0) - mean) ** 2
            for p, c in zip(parts, counts, strict=True)
        )
        variance = m2 / (n - 1) if n > 1 else None
    values: Json = {
        "count": sum(p.count or 0 for p in parts),
        "sum": math.fsum(p.sum or 0.0 for p in parts),
        "mean": mean,
        "variance": variance,
        "std": math.sqrt(variance) if variance is not None and variance >= 0 else None,
    }
    return entry | {s: values[s] for s in statistics if s in values}


def pool_dp(params: StatsParams, sites: Mapping[str, SiteDp]) -> Json:
    """The final result of a DP stats job from the sites' noisy releases."""
    ordered = sorted(sites.items())
    summaries = []
    counts_of: dict[str, list[float]] = {}
    for column in params.columns:
        parts = [next((s for s in r.summaries if s.column == column), None) for _, r in ordered]
        if all(p is None for p in parts):
            continue
        if any(p is None for p in parts):
            raise InvalidInput(f"a site's DP release has no summary of {column!r}")
        found = [p for p in parts if p is not None]
        counts_of[column] = [float(max(p.count or 0, 0)) for p in found]
        summaries.append(_pool_summary(column, found, params.statistics))
    frequencies: list[Json] = []
    for column in [c for c in params.columns if c not in counts_of]:
        tables = [next((t for t in r.frequencies if t.column == column), None) for _, r in ordered]
        if any(t is None for t in tables):
            raise InvalidInput(f"a site's DP release has no frequency table of {column!r}")
        labels = tables[0].labels or [] if tables[0] is not None else []
        totals = [0] * len(labels)
        for table in tables:
            assert table is not None
            if table.labels != labels:
                raise InvalidInput(f"the sites' DP frequency tables of {column!r} have different categories")
            totals = [a + b for a, b in zip(totals, table.counts, strict=True)]
        frequencies += [
            {"column": column, "category": k, "count": c} for k, c in zip(labels, totals, strict=True)
        ]
    histograms: list[Json] = []
    for hist in params.histograms:
        bins = [0] * (len(hist.edges) - 1)
        for site, release in ordered:
            table = next((t for t in release.histograms if t.column == hist.column), None)
            if table is None or len(table.counts) != len(bins):
                raise InvalidInput(
                    f"the DP release of {site} has no histogram of {hist.column!r} with {len(bins)} bins"
                )
            bins = [a + b for a, b in zip(bins, table.counts, strict=True)]
        histograms.append(
            {
                "column": hist.column,
                "group": None,
                "edges": hist.edges,
                "counts": bins,
                "suppressed": [False] * len(bins),
            }
        )
    quantiles: list[Json] = []
    for quant in params.quantiles:
        answers = [next((q for q in r.quantiles if q.column == quant.column), None) for _, r in ordered]
        releases = [q for q in answers if q is not None and len(q.values) == len(quant.probs)]
        if len(releases) != len(answers):
            raise InvalidInput(f"a site's DP release has no quantiles of {quant.column!r}")
        weights = counts_of.get(quant.column, [1.0] * len(releases))
        for i, prob in enumerate(quant.probs):
            value = _weighted([q.values[i] for q in releases], weights)
            quantiles.append({"column": quant.column, "group": None, "prob": prob, "value": value})
    mechanisms = {r.spent.mechanism for _, r in ordered}
    return {
        "group_by": None,
        "summaries": summaries,
        "frequencies": frequencies,
        "histograms": histograms,
        "quantiles": quantiles,
        "suppressed": [],
        "rounds": 1,
        "dp": {
            "mechanism": ", ".join(sorted(mechanisms)),
            "spent": {site: {"epsilon": r.spent.epsilon, "delta": r.spent.delta} for site, r in ordered},
            "queries": max(r.spent.queries for _, r in ordered),
        },
    }
