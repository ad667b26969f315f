"""Parameters of the built-in `stats` model: what a researcher may ask for, and the checks against a
dataset's schema and a compute spec's columns.

    {"columns": ["age", "bmi", "sex"],
     "statistics": ["count", "mean", "std"],
     "group_by": "sex",
     "histograms": [{"column": "age", "edges": [18, 30, 45, 60, 75, 96]}],
     "quantiles": [{"column": "bmi", "probs": [0.25, 0.5, 0.75]}],
     "filters": [{"column": "age", "op": ">=", "value": 40}]}

`statistics` apply to the numeric columns in `columns`; a categorical column in `columns` gets its
frequency table instead. Histograms and quantiles need numeric columns; `group_by` a categorical one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custos.computations.params import (
    NUMERIC_TYPES,
    check_column_refs,
    check_filters,
    columns_named,
    describe_params_error,
)
from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema

Statistic = Literal["count", "sum", "mean", "variance", "std", "min", "max"]
DEFAULT_STATISTICS: list[Statistic] = ["count", "mean", "std"]
MAX_EDGES = 1001
MAX_PROBS = 101


class HistogramSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    edges: list[int | float] = Field(min_length=2, max_length=MAX_EDGES)

    @field_validator("edges")
    @classmethod
    def _strictly_increasing(cls, edges: list[int | float]) -> list[int | float]:
        if not all(math.isfinite(e) for e in edges):
            raise ValueError("edges must be finite numbers")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("edges must be strictly increasing, for example [18, 30, 45, 60]")
        return edges


class QuantileSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    probs: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(min_length=1, max_length=MAX_PROBS)


class StatsParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[str] = Field(default_factory=list, max_length=1000)
    statistics: list[Statistic] = Field(default_factory=lambda: list(DEFAULT_STATISTICS), min_length=1)
    group_by: str | None = None
    histograms: list[HistogramSpec] = Field(default_factory=list, max_length=100)
    quantiles: list[QuantileSpec] = Field(default_factory=list, max_length=100)
    filters: list[Filter] = Field(default_factory=list, max_length=100)

    def column_refs(self) -> list[tuple[str, str]]:
        """(field, column) for every column the params name, in the order they appear."""
        refs = [(f"columns[{i}]", c) for i, c in enumerate(self.columns)]
        if self.group_by is not None:
            refs.append(("group_by", self.group_by))
        refs += [(f"histograms[{i}].column", h.column) for i, h in enumerate(self.histograms)]
        refs += [(f"quantiles[{i}].column", q.column) for i, q in enumerate(self.quantiles)]
        refs += [(f"filters[{i}].column", f.column) for i, f in enumerate(self.filters)]
        return refs

    def probs_for(self, column: str) -> list[float]:
        return next((q.probs for q in self.quantiles if q.column == column), [])


_FIELDS_BY_PARENT: dict[str, type[BaseModel]] = {
    "histograms": HistogramSpec,
    "quantiles": QuantileSpec,
    "filters": Filter,
}


def _check_unique(values: Sequence[str], field: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise InvalidInput(f"{field}[{i}]: column {value!r} is listed twice; give each column once")
        seen.add(value)


def parse_params(params: Mapping[str, Any]) -> StatsParams:
    """Check the params' structure (no schema needed). Raises InvalidInput naming the field."""
    try:
        parsed = StatsParams.model_validate(dict(params))
    except ValidationError as exc:
        raise InvalidInput(describe_params_error(exc.errors()[0], StatsParams, _FIELDS_BY_PARENT)) from exc
    if not (parsed.columns or parsed.histograms or parsed.quantiles):
        raise InvalidInput("params ask for nothing; give at least one of columns, histograms or quantiles")
    _check_unique(parsed.columns, "columns")
    _check_unique([h.column for h in parsed.histograms], "histograms.column")
    _check_unique([q.column for q in parsed.quantiles], "quantiles.column")
    check_filters(parsed.filters)
    return parsed


def columns_used(params: StatsParams) -> list[str]:
    """Every column read: columns, group_by, histogram, quantile and filter columns, each once."""
    return columns_named(params.column_refs())


def _names(schema: DatasetSchema, kind: str) -> str:
    names = [c.name for c in schema.columns if c.kind == kind]
    return ", ".join(names) if names else "none"


def _check_numeric(field: str, column: ColumnSchema, schema: DatasetSchema, what: str) -> None:
    if column.kind != "numeric" or column.type not in NUMERIC_TYPES:
        raise InvalidInput(
            f"{field}: column {column.name!r} is {column.kind}; {what} need a numeric column "
            f"(numeric columns: {_names(schema, 'numeric')})"
        )


def validate_params(params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]) -> StatsParams:
    """Check `params` against the dataset's `schema` and the compute spec's `columns`."""
    parsed = parse_params(params)
    check_column_refs(parsed.column_refs(), schema, columns)
    for i, name in enumerate(parsed.columns):
        column = schema.column(name)
        if column.kind == "numeric" and column.type not in NUMERIC_TYPES:
            raise InvalidInput(
                f"columns[{i}]: column {name!r} is marked numeric but holds {column.type} values; "
                "stats summarises integer and float columns"
            )
        if column.kind == "categorical" and column.type in NUMERIC_TYPES:
            raise InvalidInput(
                f"columns[{i}]: column {name!r} is categorical with {column.type} values; stats counts "
                "categories of string and boolean columns only - use it as group_by instead"
            )
        if column.kind == "other":
            raise InvalidInput(
                f"columns[{i}]: column {name!r} ({column.type}) is neither numeric nor categorical; "
                "stats summarises numeric columns and counts categorical ones"
            )
    if parsed.group_by is not None and schema.column(parsed.group_by).kind != "categorical":
        raise InvalidInput(
            f"group_by: column {parsed.group_by!r} is {schema.column(parsed.group_by).kind}; group_by "
            f"needs a categorical column (categorical columns: {_names(schema, 'categorical')})"
        )
    for i, hist in enumerate(parsed.histograms):
        _check_numeric(f"histograms[{i}].column", schema.column(hist.column), schema, "histograms")
    for i, quant in enumerate(parsed.quantiles):
        _check_numeric(f"quantiles[{i}].column", schema.column(quant.column), schema, "quantiles")
    return parsed
