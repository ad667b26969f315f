"""The noisy release of one site for a DP `stats` job, computed in the sandbox from the plan the gateway
wrote (`stats.dp.DpRound`) with `custos.privacy.dp` and, per group, `custos.privacy.dp_groups`.
OpenDP is imported here only under DP, and the grouped releases only with groups.

Each column is aggregated once per cell, in one NumPy pass (`ClampedColumn`), and every release of it
adds noise to those aggregates. With groups, each release covers every group at once (one query), the
groups being the plan's public labels: a row whose group value is null or not among them is in no
group. Frequency tables are over all rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from custos.computations.columns import Mask, category_codes
from custos.computations.messages import parse_message
from custos.computations.stats.dp import DpRound, numeric_queries
from custos.computations.stats.params import StatsParams
from custos.computations.stats.site import SiteRows
from custos.core.errors import InvalidInput

Json = dict[str, Any]


def public_codes(rows: SiteRows, column: str, labels: Sequence[str]) -> npt.NDArray[np.int64]:
    """Each row's index among the public `labels` (compared as text); -1 for null or any other value."""
    codes, found = category_codes(rows.table.column(column))
    index = {label: i for i, label in enumerate(labels)}
    # One more entry, -1, so that a null row's code (-1) maps to -1 too.
    remap = np.asarray([index.get(label, -1) for label in found] + [-1], dtype=np.int64)
    return remap[codes]


def category_counts(rows: SiteRows, column: str, categories: Sequence[str]) -> list[int]:
    """How many rows hold each public category (compared as text); other values are not counted."""
    codes = public_codes(rows, column, categories)
    return [int(c) for c in np.bincount(codes[codes >= 0], minlength=len(categories))]


class _Spent:
    """What the site's releases cost, added up as they are made: one query per release."""

    def __init__(self) -> None:
        self.epsilon, self.delta, self.queries = 0.0, 0.0, 0

    def __call__(self, release: Any) -> Any:
        self.epsilon += release.epsilon
        self.delta += release.delta
        self.queries += 1
        return release.value


def _groups(rows: SiteRows, params: StatsParams, settings: DpRound) -> tuple[list[str], list[Mask]] | None:
    if (params.group_by is None) != (settings.groups is None):
        raise InvalidInput("round_input.dp: the plan's groups do not match the params' group_by")
    if params.group_by is None or settings.groups is None:
        return None
    codes = public_codes(rows, params.group_by, settings.groups)
    return settings.groups, [codes == g for g in range(len(settings.groups))]


def dp_site_result(rows: SiteRows, params: StatsParams, plan: Mapping[str, Any]) -> Json:
    """The site's noisy release of every query in `plan`, and what it cost."""
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
    spend = _Spent()
    grouped = _groups(rows, params, settings)
    if grouped is not None:
        from custos.privacy import dp_groups as odg
    summaries: list[Json] = []
    frequencies, histograms, quantiles = [], [], []
    for column in params.columns:
        if column in settings.categories:
            labels = settings.categories[column]
            counts = odp.dp_bin_counts(category_counts(rows, column, labels), **cost)
            frequencies.append({"column": column, "labels": labels, "counts": spend(counts)})
            continue
        lo, hi = settings.bounds[column]
        if grouped is None:
            values = odp.ClampedColumn.of(rows.numeric(column).select(None)[0], lo, hi)
            entry: Json = {"column": column}
            for kind in numeric_queries(params.statistics):
                if kind == "count":
                    entry["count"] = spend(odp.dp_count(values.count, **cost))
                elif kind == "sum":
                    entry["sum"] = spend(odp.dp_sum(values, lo, hi, **cost))
                elif kind == "mean":
                    entry["mean"] = spend(odp.dp_mean(values, lo, hi, **cost))
                else:
                    entry["variance"] = spend(odp.dp_variance(values, lo, hi, **cost))
            summaries.append(entry)
            continue
        labels, masks = grouped
        column_values = rows.numeric(column)
        cells = [odp.ClampedColumn.of(column_values.select(mask)[0], lo, hi) for mask in masks]
        entries: list[Json] = [{"column": column, "group": label} for label in labels]
        for kind in numeric_queries(params.statistics):
            if kind == "count":
                found = spend(odp.dp_bin_counts([c.count for c in cells], **cost))
            elif kind == "sum":
                found = spend(odg.dp_group_sums(cells, lo, hi, **cost))
            elif kind == "mean":
                found = spend(odg.dp_group_means(cells, lo, hi, **cost))
            else:
                found = spend(odg.dp_group_variances(cells, lo, hi, **cost))
            for entry, value in zip(entries, found, strict=True):
                entry[kind] = value
        summaries += entries
    for hist in params.histograms:
        values_of = rows.numeric(hist.column)
        if grouped is None:
            counts = odp.dp_bin_counts(odp.bin_counts(values_of.select(None)[0], hist.edges), **cost)
            histograms.append({"column": hist.column, "counts": spend(counts)})
            continue
        labels, masks = grouped
        bins = len(hist.edges) - 1
        binned = [c for mask in masks for c in odp.bin_counts(values_of.select(mask)[0], hist.edges)]
        noisy = spend(odp.dp_bin_counts(binned, **cost))
        histograms += [
            {"column": hist.column, "group": label, "counts": noisy[i * bins : (i + 1) * bins]}
            for i, label in enumerate(labels)
        ]
    for quant in params.quantiles:
        lo, hi = settings.bounds[quant.column]
        values_of = rows.numeric(quant.column)
        if grouped is None:
            found = spend(odp.dp_quantiles(values_of.select(None)[0], lo, hi, quant.probs, **cost))
            quantiles.append({"column": quant.column, "probs": quant.probs, "values": found})
            continue
        labels, masks = grouped
        parts = [values_of.select(mask)[0] for mask in masks]
        per_group = spend(odg.dp_group_quantiles(parts, lo, hi, quant.probs, **cost))
        quantiles += [
            {"column": quant.column, "group": label, "probs": quant.probs, "values": values}
            for label, values in zip(labels, per_group, strict=True)
        ]
    if spend.queries != settings.queries:
        raise InvalidInput(f"the DP plan names {settings.queries} queries; the params make {spend.queries}")
    return {
        "phase": "dp",
        "groups": grouped[0] if grouped is not None else None,
        "summaries": summaries,
        "frequencies": frequencies,
        "histograms": histograms,
        "quantiles": quantiles,
        "spent": {
            "mechanism": mech,
            "epsilon": spend.epsilon,
            "delta": spend.delta,
            "queries": spend.queries,
        },
        "rows": rows.table.num_rows,
    }
