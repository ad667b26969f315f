"""What one site computes for `stats`, inside the sandbox: per-cell sufficient statistics of its own
rows, read through the DAL with the filters pushed down. A cell is all rows (group null), the rows of
one group, or the rows whose group is null ("(missing)"). Nulls (and NaN) are skipped, as pandas does
by default.

Round 0 sends counts, sums, means and M2 (two-pass, about the cell's own mean), min/max when asked,
frequency tables (nulls counted as "(missing)") and histogram counts (values outside the edges
counted too). With filters, each cell also says how many of its rows the filters left out, for the
gateway's filter. Quantile rounds send counts of values below thresholds, and round 0's answer again
for the gateway's filter. See `stats.wire` for the message shapes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from custos.computations.base import DalReader
from custos.computations.columns import (
    Mask,
    NumericColumn,
    category_codes,
    finite,
    is_numeric_type,
    squared_deviations,
)
from custos.computations.stats.params import StatsParams, columns_used
from custos.computations.stats.quantiles import counts_in, float_keys, thresholds
from custos.computations.stats.wire import MAX_LARGEST, MISSING, QuantileRound
from custos.core.errors import InvalidInput

Json = dict[str, Any]


def _labels(column: str, labels: list[str]) -> list[str]:
    if MISSING in labels:
        raise InvalidInput(
            f"column {column!r} has a category {MISSING!r}, which stats reserves for rows whose value "
            "is null; recode it"
        )
    return labels


class SiteRows:
    """The rows one site read, split into cells: all rows first, then each group sorted by label,
    then the rows whose group is null. `unfiltered`: the same columns without the researcher's
    filters, when there are filters."""

    def __init__(self, table: pa.Table, group_by: str | None, unfiltered: pa.Table | None = None) -> None:
        self.table = table
        self.cells: list[tuple[str | None, Mask | None]] = [(None, None)]
        if group_by is not None:
            codes, labels = category_codes(table.column(group_by))
            for index, label in sorted(enumerate(_labels(group_by, labels)), key=lambda pair: pair[1]):
                self.cells.append((label, codes == index))
            self.cells.append((MISSING, codes < 0))
        self.unfiltered = SiteRows(unfiltered, group_by) if unfiltered is not None else None
        self._numeric: dict[str, NumericColumn] = {}

    def is_numeric(self, column: str) -> bool:
        return is_numeric_type(self.table.schema.field(column).type)

    def numeric(self, column: str) -> NumericColumn:
        if column not in self._numeric:
            if not self.is_numeric(column):
                raise InvalidInput(
                    f"column {column!r} holds {self.table.schema.field(column).type} values here"
                )
            self._numeric[column] = NumericColumn(self.table.column(column))
        return self._numeric[column]

    def mask(self, group: str | None) -> Mask | None:
        for label, mask in self.cells:
            if label == group:
                return mask
        return np.zeros(self.table.num_rows, dtype=np.bool_)


def read_rows(dal: DalReader, dataset: str, params: StatsParams, *, complement: bool = False) -> SiteRows:
    """The rows of the job's cells; with `complement` and filters, the unfiltered rows too (a second
    read), from which each cell's filtered-out rows are counted."""
    table = dal.read(dataset, columns_used(params), params.filters)
    unfiltered = dal.read(dataset, columns_used(params), []) if complement and params.filters else None
    return SiteRows(table, params.group_by, unfiltered)


def _summary_cell(
    group: str | None,
    floats: npt.NDArray[np.float64],
    ints: npt.NDArray[np.int64] | None,
    statistics: frozenset[str],
) -> Json:
    n = len(floats)
    cell: Json = {"group": group, "count": n}
    if statistics & {"sum", "mean"}:
        cell["sum"] = int(ints.sum()) if ints is not None else finite(float(floats.sum()))
        if n:
            cell["largest"], cell["abs_sum"] = largest_contributions(floats)
    if statistics & {"variance", "std"}:
        mean = float(floats.mean()) if n else math.nan
        cell["mean"] = finite(mean)
        cell["m2"] = finite(squared_deviations(floats, mean)) if n else None
    for name, pick in (("min", np.min), ("max", np.max)):
        if n and name in statistics:
            extreme = pick(ints) if ints is not None else pick(floats)
            held = ints if ints is not None else floats
            cell[name] = int(extreme) if ints is not None else finite(float(extreme))
            cell[f"{name}_ties"] = int(np.count_nonzero(held == extreme))
    return cell


def largest_contributions(values: npt.NDArray[np.float64]) -> tuple[list[float], float]:
    """The largest absolute values (at most MAX_LARGEST, largest first) and the sum of absolute values:
    what the gateway's dominance rule needs. They go to the gateway's filter only, never further."""
    size = np.abs(values)
    top = size if len(size) <= MAX_LARGEST else np.partition(size, len(size) - MAX_LARGEST)[-MAX_LARGEST:]
    total = math.fsum(size.tolist()) if len(size) < 4096 else float(size.sum())
    return [float(v) for v in np.sort(top)[::-1]], total


def histogram_counts(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> list[int]:
    """Counts per bin with numpy.histogram's semantics (half-open bins, the last one closed), without
    sorting the values: a binary search of each value among the edges. One more count at the end:
    the values outside the edges."""
    bins = len(edges) - 1
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = bins - 1
    inside = (index >= 0) & (index < bins)
    counts = np.bincount(index[inside], minlength=bins)
    return [*(int(c) for c in counts), len(values) - int(counts.sum())]


def _frequency_table(rows: SiteRows, column: str) -> Json:
    codes, labels = category_codes(rows.table.column(column))
    labels = _labels(column, labels)
    counts = np.bincount(codes[codes >= 0], minlength=len(labels))
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    cells = [{"category": labels[i], "count": int(counts[i])} for i in order]
    cells.append({"category": MISSING, "count": int(np.count_nonzero(codes < 0))})
    return {"column": column, "cells": cells}


def _summary_table(rows: SiteRows, column: str, statistics: frozenset[str]) -> Json:
    values = rows.numeric(column)
    return {
        "column": column,
        "cells": [_summary_cell(group, *values.select(mask), statistics) for group, mask in rows.cells],
    }


def summary_result(rows: SiteRows, params: StatsParams, counts_only: bool = False) -> Json:
    """Round 0: summaries of numeric columns, frequency tables of the others, count-only summaries of
    quantile columns not in `columns` (quantiles need each cell's count), histograms. With filters
    (and the unfiltered rows read), each cell carries `removed`."""
    statistics = frozenset({"count"} if counts_only else params.statistics)
    summaries, frequencies = [], []
    for column in params.columns:
        if rows.is_numeric(column):
            summaries.append(_summary_table(rows, column, statistics))
        else:
            frequencies.append(_frequency_table(rows, column))
    for quant in params.quantiles:
        if quant.column not in params.columns:
            summaries.append(_summary_table(rows, quant.column, frozenset({"count"})))
    histograms = []
    for hist in params.histograms:
        values = rows.numeric(hist.column)
        edges = np.asarray(hist.edges, dtype=np.float64)
        cells = [
            {"group": group, "counts": histogram_counts(values.select(mask)[0], edges)}
            for group, mask in rows.cells
        ]
        histograms.append({"column": hist.column, "cells": cells})
    result = {
        "phase": "summary",
        "summaries": summaries,
        "frequencies": frequencies,
        "histograms": histograms,
        "rows": rows.table.num_rows,
    }
    if rows.unfiltered is not None and not counts_only:
        add_removed(result, summary_result(rows.unfiltered, params, counts_only=True))
    return result


def add_removed(result: Json, unfiltered: Json) -> None:
    """Each cell's rows that the filters left out: its count without the filters less its count with."""
    for kind, key in (("summaries", "group"), ("frequencies", "category"), ("histograms", "group")):
        everything = {
            (table["column"], cell[key]): cell for table in unfiltered[kind] for cell in table["cells"]
        }
        for table in result[kind]:
            for cell in table["cells"]:
                whole = everything[(table["column"], cell[key])]
                if kind == "histograms":
                    cell["removed"] = [a - b for a, b in zip(whole["counts"], cell["counts"], strict=True)]
                else:
                    cell["removed"] = whole["count"] - cell["count"]


def quantile_result(rows: SiteRows, params: StatsParams, round_input: QuantileRound) -> Json:
    """Rounds 1..: for each search, how many of this site's values have a key in (lo, t] for each
    threshold t. Also the cells' counts, which the gateway filter needs and then removes."""
    keys: dict[tuple[str, str | None], npt.NDArray[np.int64]] = {}
    searches = []
    for search in round_input.searches:
        if params.probs_for(search.column) == []:
            raise InvalidInput(
                f"round_input.searches: column {search.column!r} has no quantiles in the params"
            )
        cell = (search.column, search.group)
        if cell not in keys:
            floats, _ = rows.numeric(search.column).select(rows.mask(search.group))
            keys[cell] = np.sort(float_keys(floats))
        cuts = thresholds(search.lo, search.hi, round_input.thresholds)
        searches.append(
            {
                "id": search.id,
                "column": search.column,
                "group": search.group,
                "counts": counts_in(keys[cell], search.lo, cuts),
            }
        )
    return {"phase": "quantiles", "searches": searches, "summary": summary_result(rows, params)}
