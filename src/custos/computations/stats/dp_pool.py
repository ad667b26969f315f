"""The result of a DP `stats` job at the orchestrator, from the sites' noisy releases only
(post-processing: nothing here touches data or spends budget).

Counts and sums add, the mean is the count-weighted mean of the site means, the variance pools the
sites' (count, mean, variance) as Chan et al. do, a quantile is the count-weighted mean of the site
quantiles (an approximation; equal weights when the column's count was not asked for), and frequency
and histogram counts add. With `group_by` the same is done per group, and the result has a line per
public group and none for all rows.

Releases that cannot be pooled (different categories, groups or bins at two sites) were refused at
submit (`stats.dp.check_dp_job`); meeting one here means a site's schema or policy changed while the
job ran, and the job fails with what each site spent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import DpSummary, SiteDp
from custos.core.errors import InvalidInput

Json = dict[str, Any]
Cell = tuple[str, str | None]  # (column, group)


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    if total <= 0:
        return sum(values) / len(values)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total


def _pool_summary(
    column: str, group: str | None, parts: Sequence[DpSummary], statistics: Sequence[str]
) -> Json:
    counts = [max(p.count or 0, 0) for p in parts]
    entry: Json = {"column": column, "group": group}
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


def _groups(sites: Sequence[tuple[str, SiteDp]]) -> list[str | None]:
    """The public groups every site released (or [None]: all rows); they must be the same."""
    found = {site: release.groups for site, release in sites}
    if len({tuple(g) if g is not None else None for g in found.values()}) > 1:
        listed = "; ".join(f"{site}: {', '.join(g) if g else 'no groups'}" for site, g in found.items())
        raise InvalidInput(f"the sites' DP releases have different groups ({listed})")
    groups = sites[0][1].groups
    return [None] if groups is None else list(groups)


def _summaries(
    params: StatsParams, sites: Sequence[tuple[str, SiteDp]], groups: Sequence[str | None]
) -> tuple[list[Json], dict[Cell, list[float]]]:
    summaries, counts_of = [], {}
    for column in params.columns:
        if not any(s.column == column for _, r in sites for s in r.summaries):
            continue  # a frequency table
        for group in groups:
            parts = [
                next((s for s in r.summaries if s.column == column and s.group == group), None)
                for _, r in sites
            ]
            if any(p is None for p in parts):
                raise InvalidInput(f"a site's DP release has no summary of {column!r} for group {group!r}")
            found = [p for p in parts if p is not None]
            counts_of[(column, group)] = [float(max(p.count or 0, 0)) for p in found]
            summaries.append(_pool_summary(column, group, found, params.statistics))
    return summaries, counts_of


def _frequencies(
    params: StatsParams, sites: Sequence[tuple[str, SiteDp]], summarised: set[str]
) -> list[Json]:
    frequencies: list[Json] = []
    for column in [c for c in params.columns if c not in summarised]:
        tables = [next((t for t in r.frequencies if t.column == column), None) for _, r in sites]
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
    return frequencies


def _histograms(
    params: StatsParams, sites: Sequence[tuple[str, SiteDp]], groups: Sequence[str | None]
) -> list[Json]:
    histograms: list[Json] = []
    for hist in params.histograms:
        for group in groups:
            bins = [0] * (len(hist.edges) - 1)
            for site, release in sites:
                table = next(
                    (t for t in release.histograms if t.column == hist.column and t.group == group), None
                )
                if table is None or len(table.counts) != len(bins):
                    raise InvalidInput(
                        f"the DP release of {site} has no histogram of {hist.column!r} with {len(bins)} bins"
                    )
                bins = [a + b for a, b in zip(bins, table.counts, strict=True)]
            histograms.append(
                {
                    "column": hist.column,
                    "group": group,
                    "edges": hist.edges,
                    "counts": bins,
                    "suppressed": [False] * len(bins),
                }
            )
    return histograms


def _quantiles(
    params: StatsParams,
    sites: Sequence[tuple[str, SiteDp]],
    groups: Sequence[str | None],
    counts_of: Mapping[Cell, list[float]],
) -> list[Json]:
    quantiles: list[Json] = []
    for quant in params.quantiles:
        for group in groups:
            answers = [
                next((q for q in r.quantiles if q.column == quant.column and q.group == group), None)
                for _, r in sites
            ]
            releases = [q for q in answers if q is not None and len(q.values) == len(quant.probs)]
            if len(releases) != len(answers):
                raise InvalidInput(
                    f"a site's DP release has no quantiles of {quant.column!r} for group {group!r}"
                )
            weights = counts_of.get((quant.column, group), [1.0] * len(releases))
            for i, prob in enumerate(quant.probs):
                value = _weighted([q.values[i] for q in releases], weights)
                quantiles.append({"column": quant.column, "group": group, "prob": prob, "value": value})
    return quantiles


def pool_dp(params: StatsParams, sites: Mapping[str, SiteDp]) -> Json:
    """The final result of a DP stats job from the sites' noisy releases."""
    ordered = sorted(sites.items())
    groups = _groups(ordered)
    summaries, counts_of = _summaries(params, ordered, groups)
    mechanisms = {r.spent.mechanism for _, r in ordered}
    return {
        "group_by": params.group_by,
        "summaries": summaries,
        "frequencies": _frequencies(params, ordered, {column for column, _ in counts_of}),
        "histograms": _histograms(params, ordered, groups),
        "quantiles": _quantiles(params, ordered, groups, counts_of),
        "suppressed": [],
        "rounds": 1,
        "dp": {
            "mechanism": ", ".join(sorted(mechanisms)),
            "spent": {site: {"epsilon": r.spent.epsilon, "delta": r.spent.delta} for site, r in ordered},
            "queries": max(r.spent.queries for _, r in ordered),
        },
    }
