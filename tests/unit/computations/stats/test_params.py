"""Params of `stats`: what is accepted, and refusals that name the field, the value and what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from custos.computations.stats.model import StatsModel
from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema

MODEL = StatsModel()
SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", type="integer", kind="numeric"),
        ColumnSchema(name="bmi", type="float", kind="numeric", nullable=True),
        ColumnSchema(name="sex", type="string", kind="categorical", categories=["F", "M"]),
        ColumnSchema(name="stage", type="integer", kind="categorical"),
        ColumnSchema(name="visit", type="date", kind="other"),
        ColumnSchema(name="postcode", type="string", kind="categorical"),
    ]
)
SPEC_COLUMNS = ["age", "bmi", "sex", "stage", "visit"]
FULL = {
    "columns": ["age", "bmi", "sex"],
    "statistics": ["count", "sum", "mean", "variance", "std", "min", "max"],
    "group_by": "sex",
    "histograms": [{"column": "age", "edges": [18, 30, 45, 60, 75, 96]}],
    "quantiles": [{"column": "bmi", "probs": [0.25, 0.5, 0.75]}],
    "filters": [{"column": "stage", "op": ">=", "value": 2}],
}


def refusal(params: dict[str, Any], columns: list[str] = SPEC_COLUMNS) -> str:
    with pytest.raises(InvalidInput) as caught:
        MODEL.validate_params(params, SCHEMA, columns)
    return str(caught.value)


def test_the_documented_example_is_valid_and_reads_every_column_it_names() -> None:
    MODEL.validate_params(FULL, SCHEMA, SPEC_COLUMNS)
    assert MODEL.columns_used(FULL) == ["age", "bmi", "sex", "stage"]
    assert MODEL.columns_used({"quantiles": [{"column": "bmi", "probs": [0.5]}]}) == ["bmi"]


def test_a_column_outside_the_spec_is_named_with_the_columns_the_spec_allows() -> None:
    message = refusal({"columns": ["age", "postcod"]}, ["age", "bmi", "sex"])
    assert message == "columns[1]: unknown column 'postcod'; the spec allows: age, bmi, sex"
    message = refusal({"columns": ["age"], "filters": [{"column": "postcode", "op": "==", "value": "AB1"}]})
    assert message.startswith("filters[0].column: unknown column 'postcode'")


def test_a_spec_column_missing_from_the_dataset_is_refused() -> None:
    message = refusal({"columns": ["weight"]}, ["weight"])
    assert message.startswith("columns[0]: column 'weight' is not in the dataset; it has: age, bmi, sex")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"columns": ["age"], "statistics": ["median"]}, "statistics[0]: input should be 'count', 'sum'"),
        ({"colums": ["age"]}, "unknown field 'colums'; accepted fields: columns, statistics, group_by"),
        (
            {"histograms": [{"column": "age", "bins": 5, "edges": [1, 2]}]},
            "unknown field 'histograms[0].bins'",
        ),
        (
            {"columns": ["age"], "group_by": "age"},
            "group_by: column 'age' is numeric; group_by needs a categorical",
        ),
        (
            {"histograms": [{"column": "sex", "edges": [0, 1]}]},
            "histograms[0].column: column 'sex' is categorical",
        ),
        (
            {"quantiles": [{"column": "sex", "probs": [0.5]}]},
            "quantiles[0].column: column 'sex' is categorical",
        ),
        (
            {"histograms": [{"column": "age", "edges": [30, 18]}]},
            "histograms[0].edges: edges must be strictly",
        ),
        (
            {"histograms": [{"column": "age", "edges": [30]}]},
            "histograms[0].edges: list should have at least 2",
        ),
        ({"histograms": [{"column": "age", "edges": list(range(1002))}]}, "should have at most 1001 items"),
        (
            {"quantiles": [{"column": "bmi", "probs": [0.5, 1.5]}]},
            "quantiles[0].probs[1]: input should be less",
        ),
        ({"quantiles": [{"column": "bmi", "probs": [-0.1]}]}, "got -0.1"),
        ({"columns": ["visit"]}, "columns[0]: column 'visit' (date) is neither numeric nor categorical"),
        ({"columns": ["stage"]}, "columns[0]: column 'stage' is categorical with integer values"),
        ({"columns": ["age", "age"]}, "columns[1]: column 'age' is listed twice"),
        ({}, "params ask for nothing"),
        (
            {"columns": ["age"], "filters": [{"column": "age", "op": "in", "value": 3}]},
            "filters[0].value: op 'in'",
        ),
        ({"columns": ["age"], "filters": [{"column": "age", "op": "is_null", "value": 3}]}, "takes no value"),
        (
            {"columns": ["age"], "filters": [{"column": "age", "op": "~", "value": 3}]},
            "filters[0].op: input should",
        ),
    ],
)
def test_invalid_params_are_refused_naming_the_field_and_what_is_accepted(
    params: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(params)


def test_the_model_refuses_bad_params_before_any_round_starts() -> None:
    with pytest.raises(InvalidInput, match="statistics"):
        MODEL.start({"columns": ["age"], "statistics": "mean"})
    assert MODEL.start(FULL).round_input == {"phase": "summary"}
