"""What a site refuses to release for `glm` (the gateway's filter), and what it refuses to compute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.base import Disclosure, policy_privacy
from custos.computations.glm.model import GlmModel
from custos.core.errors import InvalidInput, PolicyDenied
from custos.data.table_reader import TableDalReader
from custos.policy import load_policy

MODEL = GlmModel()
Json = dict[str, Any]


def site(n: int, seed: int = 0, **extra: Any) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
        "y": rng.normal(size=n),
        "event": (np.arange(n) % 2).astype(np.int64),
        "count": rng.poisson(2, n).astype(np.int64),
        "group": np.array(["a", "b"])[np.arange(n) % 2],
    }
    return pa.table({**columns, **extra})


def start(params: Json, table: pa.Table) -> Json:
    result: Json = MODEL.compute_site(TableDalReader({"data": table}), "data", params, {"phase": "start"})
    return result


def released(params: Json, table: pa.Table, min_count: int = 10) -> Json:
    return MODEL.filter_site_result(params, start(params, table), min_count)


def denial(params: Json, table: pa.Table, min_count: int = 10) -> str:
    raw = start(params, table)
    with pytest.raises(PolicyDenied) as caught:
        MODEL.filter_site_result(params, raw, min_count)
    return str(caught.value)


GAUSSIAN = {"family": "gaussian", "outcome": "y", "predictors": ["x", "z"]}


def test_a_result_that_passes_leaves_without_the_counts_the_checks_used() -> None:
    params = {**GAUSSIAN, "predictors": ["x", "group"], "levels": {"group": ["a", "b"]}}
    raw = start(params, site(40))
    assert raw["checks"] == {"events": None, "levels": {"group": [20, 20]}}
    result = MODEL.filter_site_result(params, raw, 10)
    assert "checks" not in result
    assert result["n"] == 40
    assert len(result["qtz"]) == 3
    assert len(result["r"]) == 6


def test_a_site_with_fewer_rows_than_min_count_refuses_without_saying_how_many() -> None:
    message = denial({"family": "gaussian", "outcome": "y"}, site(9))
    assert message == "this site has fewer than 10 rows for the model (the policy's minimum)"
    released({"family": "gaussian", "outcome": "y"}, site(10))


def test_filters_count_towards_the_rows_and_a_site_left_with_none_adds_nothing() -> None:
    params = {**GAUSSIAN, "filters": [{"column": "x", "op": ">", "value": 100}]}
    result = released(params, site(50))
    assert result["n"] == 0
    assert result["r"] == [0.0] * 6
    nulls = site(40, y=pa.array([None] * 35 + [1.0] * 5, type=pa.float64()))
    assert "fewer than 10 rows" in denial(GAUSSIAN, nulls)


def test_too_many_parameters_for_the_rows_are_refused_at_ten_rows_per_coefficient() -> None:
    assert denial(GAUSSIAN, site(29)) == (
        "too many parameters: 3 coefficients need at least 30 rows at this site (10 per coefficient, "
        "the policy's glm.min_rows_per_term), and it has fewer"
    )
    released(GAUSSIAN, site(30))


def controls_of(policy_yaml: str) -> Disclosure:
    """What the gateway hands the model's filter for a dataset with this policy."""
    return policy_privacy(load_policy(policy_yaml))


@pytest.mark.parametrize(("rows_per_term", "refused_below"), [(10, 30), (50, 150), (1, 4)])
def test_the_policy_sets_the_rows_a_site_needs_per_coefficient(
    rows_per_term: int, refused_below: int
) -> None:
    """3 coefficients: refused below max(rows_per_term * 3, 4) rows (p >= n is saturated, always
    refused), released from there."""
    controls = controls_of(f"dataset: data\nmin_count: 1\nglm: {{min_rows_per_term: {rows_per_term}}}\n")
    few = start(GAUSSIAN, site(refused_below - 1))
    with pytest.raises(PolicyDenied) as caught:
        MODEL.filter_site_result(GAUSSIAN, few, controls)
    if rows_per_term * 3 >= refused_below:
        assert str(caught.value) == (
            f"too many parameters: 3 coefficients need at least {rows_per_term * 3} rows at this site "
            f"({rows_per_term} per coefficient, the policy's glm.min_rows_per_term), and it has fewer"
        )
    else:
        assert str(caught.value).startswith("saturated model: 3 coefficients for 3 rows or fewer")
    assert MODEL.filter_site_result(GAUSSIAN, start(GAUSSIAN, site(refused_below)), controls)["n"] == (
        refused_below
    )


def test_a_policy_without_a_glm_section_needs_ten_rows_per_coefficient() -> None:
    controls = controls_of("dataset: data\n")
    with pytest.raises(PolicyDenied, match="need at least 30 rows at this site"):
        MODEL.filter_site_result(GAUSSIAN, start(GAUSSIAN, site(29)), controls)


def test_a_saturated_model_is_refused() -> None:
    assert denial(GAUSSIAN, site(3), min_count=1).startswith(
        "saturated model: 3 coefficients for 3 rows or fewer"
    )


def test_a_binomial_site_with_few_rows_of_either_outcome_refuses() -> None:
    params = {"family": "binomial", "outcome": "event", "predictors": ["x"]}
    rare = site(60, event=pa.array([1] * 9 + [0] * 51))
    assert (
        denial(params, rare)
        == "the outcome 'event' has fewer than 10 rows of one of its two values at this site"
    )
    everyone = site(60, event=pa.array([1] * 60))
    assert "fewer than 10 rows of one of its two values" in denial(params, everyone)
    released(params, site(60, event=pa.array([1] * 10 + [0] * 50)))


def test_a_level_with_few_rows_at_the_site_refuses_but_an_absent_level_passes() -> None:
    params = {**GAUSSIAN, "predictors": ["x", "group"], "levels": {"group": ["a", "b", "c"]}}
    rare = site(60, group=pa.array(["a"] * 30 + ["b"] * 25 + ["c"] * 5))
    assert denial(params, rare) == (
        "predictor 'group': level 'c' has fewer than 10 rows at this site; merge it with another level or "
        "filter it out"
    )
    result = released(params, site(60))
    assert result["n"] == 60


@pytest.mark.parametrize(
    ("params", "table", "expected"),
    [
        (
            {"family": "binomial", "outcome": "count"},
            site(40),
            "outcome: column 'count' holds values other than 0 and 1 here",
        ),
        (
            {"family": "poisson", "outcome": "y"},
            site(40),
            "outcome: column 'y' holds negative values here; poisson needs counts",
        ),
        (
            {"family": "poisson", "outcome": "count"},
            site(40, count=pa.array([0.0] * 20 + [2.5] + [3.0] * 19)),
            "outcome: column 'count' holds values that are not whole numbers here; poisson needs counts",
        ),
        (
            {"family": "negative_binomial", "outcome": "count"},
            site(40, count=pa.array([0.0] * 20 + [2.5] + [3.0] * 19)),
            "outcome: column 'count' holds values that are not whole numbers here; negative_binomial needs "
            "counts",
        ),
        (
            {"family": "gamma", "outcome": "count"},
            site(40, count=pa.array([0.0] + [2.5] * 39)),
            "outcome: column 'count' holds values that are not positive here; gamma needs positive values",
        ),
        (
            {"family": "gaussian", "outcome": "group"},
            site(40),
            "outcome: column 'group' holds string values here; it must be numeric",
        ),
        (
            {"family": "gaussian", "outcome": "y", "predictors": ["group"], "levels": {"group": ["a", "c"]}},
            site(40),
            "predictors[0]: the column holds a category that its levels do not list; list every category",
        ),
        (
            {"family": "gaussian", "outcome": "y", "predictors": ["x"]},
            site(40, x=pa.array([np.inf] + [0.0] * 39)),
            "predictors[0]: column 'x' holds infinite values here",
        ),
    ],
)
def test_data_that_does_not_fit_the_model_is_refused_at_the_site(
    params: Json, table: pa.Table, expected: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        start(params, table)
    assert str(caught.value).startswith(expected)


def test_a_forged_result_is_refused_by_the_filter() -> None:
    raw = start(GAUSSIAN, site(40))
    with pytest.raises(InvalidInput, match="has 2 coefficients' sums; the model has 3"):
        MODEL.filter_site_result(GAUSSIAN, {**raw, "qtz": [0.0, 0.0]}, 10)
    with pytest.raises(InvalidInput, match="no counts to check"):
        MODEL.filter_site_result(GAUSSIAN, {k: v for k, v in raw.items() if k != "checks"}, 10)
    with pytest.raises(InvalidInput, match="is malformed at rows"):
        MODEL.filter_site_result(GAUSSIAN, {**raw, "rows": [[1.0, 2.0]]}, 10)
