"""Params of `glm`: what is accepted, and refusals that name the field and what would be accepted."""

from __future__ import annotations

from typing import Any

import pytest

from custos.computations.glm.model import GlmModel
from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.data.profile import outward_bounds

MODEL = GlmModel()
SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", type="integer", kind="numeric", min=17, max=96),
        ColumnSchema(name="bmi", type="float", kind="numeric", nullable=True, min=14, max=61),
        ColumnSchema(name="sex", type="string", kind="categorical", categories=["F", "M"]),
        ColumnSchema(name="smoker", type="string", kind="categorical", categories=["no", "yes"]),
        ColumnSchema(name="died", type="integer", kind="numeric", min=-0.1, max=1.1),
        ColumnSchema(name="alive", type="boolean", kind="categorical", categories=["false", "true"]),
        ColumnSchema(name="visits", type="integer", kind="numeric", min=-0.1, max=41),
        ColumnSchema(name="delta", type="float", kind="numeric", min=-12, max=9.4),
        ColumnSchema(name="debt", type="float", kind="numeric", min=-5000, max=-0.5),
        ColumnSchema(name="visit", type="date", kind="other"),
        ColumnSchema(name="postcode", type="string", kind="categorical"),
    ]
)
SPEC_COLUMNS = [c.name for c in SCHEMA.columns]
FULL = {
    "family": "binomial",
    "outcome": "smoker",
    "predictors": ["age", "bmi", "sex"],
    "levels": {"smoker": ["no", "yes"], "sex": ["M", "F"]},
    "intercept": True,
    "max_iterations": 30,
    "tolerance": 1e-9,
    "filters": [{"column": "delta", "op": ">=", "value": 0}],
}


def refusal(params: dict[str, Any], columns: list[str] = SPEC_COLUMNS) -> str:
    with pytest.raises(InvalidInput) as caught:
        MODEL.validate_params(params, SCHEMA, columns)
    return str(caught.value)


def test_the_full_example_is_valid_reads_its_columns_and_starts_from_the_sites_own_data() -> None:
    MODEL.validate_params(FULL, SCHEMA, SPEC_COLUMNS)
    assert MODEL.columns_used(FULL) == ["smoker", "age", "bmi", "sex", "delta"]
    step = MODEL.start(FULL)
    assert step.round_input == {"phase": "start"}
    assert step.state["iteration"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"family": "gaussian", "outcome": "bmi", "predictors": ["age", "delta"]},
        {"family": "gaussian", "outcome": "bmi"},
        {"family": "binomial", "outcome": "died", "predictors": ["age"], "intercept": False},
        {
            "family": "binomial",
            "outcome": "alive",
            "predictors": ["smoker"],
            "levels": {"smoker": ["yes", "no"]},
        },
        {
            "family": "poisson",
            "outcome": "visits",
            "predictors": ["age", "sex"],
            "levels": {"sex": ["F", "M", "X"]},
        },
        {"family": "gamma", "outcome": "bmi", "predictors": ["age"]},
        {"family": "gamma", "outcome": "delta"},
        {"family": "negative_binomial", "outcome": "visits", "predictors": ["age"]},
        {"family": "negative_binomial", "outcome": "visits", "alpha": 0.3},
    ],
)
def test_valid_params_are_accepted(params: dict[str, Any]) -> None:
    MODEL.validate_params(params, SCHEMA, SPEC_COLUMNS)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"family": "tweedie", "outcome": "bmi"},
            "family: input should be 'gaussian', 'binomial', 'poisson', 'gamma' or 'negative_binomial', "
            "got 'tweedie'",
        ),
        (
            {"family": "poisson", "outcome": "visits", "alpha": 0.5},
            "alpha: only a negative_binomial model takes alpha (its variance mu + alpha mu^2); a poisson "
            "model does not",
        ),
        (
            {"family": "negative_binomial", "outcome": "visits", "alpha": 0},
            "alpha: input should be greater than 0, got 0",
        ),
        (
            {"family": "negative_binomial", "outcome": "debt"},
            "outcome: column 'debt' is below 0 in every row by its schema (at most -0.5); a "
            "negative_binomial outcome holds counts (0 or more)",
        ),
        (
            {"family": "gamma", "outcome": "debt"},
            "outcome: column 'debt' is 0 or below in every row by its schema (at most -0.5); a gamma outcome "
            "is positive",
        ),
        ({"outcome": "bmi"}, "family: a value is required"),
        ({"family": "gaussian"}, "outcome: a value is required"),
        (
            {"family": "gaussian", "outcome": "bmi", "predictor": ["age"]},
            "unknown field 'predictor'; accepted fields: family, outcome, predictors, levels, intercept",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["agee"]},
            "predictors[0]: unknown column 'agee'; the spec allows: age, bmi",
        ),
        (
            {"family": "gaussian", "outcome": "wage", "predictors": ["age"]},
            "outcome: unknown column 'wage'; the spec allows",
        ),
        (
            {"family": "gaussian", "outcome": "sex"},
            "outcome: column 'sex' is categorical (string); a gaussian outcome is a numeric (integer or "
            "float) column",
        ),
        (
            {"family": "poisson", "outcome": "debt"},
            "outcome: column 'debt' is below 0 in every row by its schema (at most -0.5); a poisson "
            "outcome holds counts (0 or more)",
        ),
        (
            {"family": "binomial", "outcome": "age"},
            "outcome: column 'age' ranges over [17.0, 96.0] by its schema; a binomial outcome holds only "
            "0 and 1",
        ),
        (
            {"family": "binomial", "outcome": "smoker"},
            "outcome: column 'smoker' is categorical (string); a binomial outcome is a 0/1 numeric column, "
            'a boolean column, or a two-level categorical column with its levels; for example "levels": '
            '{"smoker": ["no", "yes"]}',
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["sex"]},
            "predictors[0]: column 'sex' is categorical; give its levels, the reference first, e.g. "
            '"levels": {"sex": ["F", "M"]}',
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["sex"], "levels": {"sex": ["F", "X"]}},
            "levels.sex: the dataset's category 'M' is not listed; list every category, the reference first, "
            'e.g. "levels": {"sex": ["F", "M"]}',
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["age"], "levels": {"age": ["1", "2"]}},
            "predictors[0]: column 'age' is numeric (integer) without public categories",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["postcode"]},
            "predictors[0]: column 'postcode' is categorical (string); a predictor is a numeric column, or a "
            "categorical column whose schema lists its categories",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["visit"]},
            "predictors[0]: column 'visit' is other (date)",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["age", "bmi"]},
            "predictors[1]: 'bmi' is the outcome; a predictor must be another column",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["age", "age"]},
            "predictors[1]: column 'age' is listed twice",
        ),
        (
            {
                "family": "gaussian",
                "outcome": "bmi",
                "predictors": ["sex"],
                "levels": {"sex": ["F", "M", "F"]},
            },
            "levels.sex[2]: level 'F' is listed twice",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "predictors": ["sex"], "levels": {"sex": ["F"]}},
            "levels.sex: give 2 to 100 levels, the reference first, got 1",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "levels": {"sex": ["F", "M"]}},
            "levels.sex: 'sex' is neither the outcome nor a predictor",
        ),
        (
            {"family": "gaussian", "outcome": "smoker", "levels": {"smoker": ["no", "yes"]}},
            "levels.smoker: the outcome of a gaussian model is numeric and takes no levels",
        ),
        (
            {"family": "binomial", "outcome": "sex", "levels": {"sex": ["F", "M", "X"]}},
            "levels.sex: a binomial outcome has exactly two levels, [0-level, 1-level], got 3",
        ),
        ({"family": "gaussian", "outcome": "bmi", "intercept": False}, "the model has no terms"),
        (
            {"family": "gaussian", "outcome": "bmi", "intercept": "yes"},
            "intercept: input should be a valid boolean",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "max_iterations": 101},
            "max_iterations: input should be less than or equal to 100, got 101",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "max_iterations": 0},
            "max_iterations: input should be greater",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "tolerance": 0},
            "tolerance: input should be greater than 0",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "filters": [{"column": "age", "op": "in", "value": 3}]},
            "filters[0].value: op 'in' needs a non-empty list of values, got 3",
        ),
        (
            {"family": "gaussian", "outcome": "bmi", "filters": [{"column": "postcod", "op": "is_null"}]},
            "filters[0].column: unknown column 'postcod'",
        ),
    ],
)
def test_invalid_params_are_refused_naming_the_field_and_what_is_accepted(
    params: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(params)


@pytest.mark.parametrize(
    ("family", "low", "high"), [("poisson", 0, 12), ("poisson", 0, 250), ("binomial", 0, 1)]
)
def test_an_outcome_is_not_refused_by_bounds_that_only_round_outward_from_valid_values(
    family: str, low: float, high: float
) -> None:
    """Counts from 0 to 12 publish [-1, 13]: the public minimum is below 0 though no row is, so only
    the site, on its own rows, can tell a count column from one that is not."""
    published_low, published_high = outward_bounds(low, high)
    assert published_low < 0
    column = ColumnSchema(name="n", type="integer", kind="numeric", min=published_low, max=published_high)
    schema = DatasetSchema(columns=[*SCHEMA.columns, column])
    MODEL.validate_params({"family": family, "outcome": "n", "predictors": ["age"]}, schema, ["n", "age"])


def test_a_poisson_outcome_spanning_zero_by_its_schema_is_left_to_the_site() -> None:
    MODEL.validate_params({"family": "poisson", "outcome": "delta"}, SCHEMA, SPEC_COLUMNS)


def test_a_spec_column_the_dataset_lacks_and_a_column_outside_the_spec_are_refused() -> None:
    assert refusal({"family": "gaussian", "outcome": "bmi", "predictors": ["age"]}, ["bmi"]) == (
        "predictors[0]: unknown column 'age'; the spec allows: bmi"
    )
    assert refusal({"family": "gaussian", "outcome": "weight"}, ["weight"]).startswith(
        "outcome: column 'weight' is not in the dataset; it has: age, bmi, sex"
    )


def test_too_many_terms_and_clashing_names_are_refused_before_anything_runs() -> None:
    many = {"family": "gaussian", "outcome": "y", "predictors": [f"x{i}" for i in range(200)]}
    with pytest.raises(InvalidInput, match=r"the model has 201 coefficients .*; at most 200 are accepted"):
        MODEL.start(many)
    clash = {"family": "gaussian", "outcome": "y", "predictors": ["intercept"]}
    with pytest.raises(InvalidInput, match="two coefficients would both be named 'intercept'"):
        MODEL.start(clash)
    MODEL.start({**clash, "intercept": False})
