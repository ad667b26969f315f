"""`glm` driven as the orchestrator and the gateways drive it — start, compute_site at each site through a
DalReader over Arrow tables, the gateway filter, aggregate, every message through canonical JSON —
equals statsmodels' GLM on the pooled rows: coefficients and standard errors to 1e-8 relative,
deviance, null deviance, log-likelihood and AIC to 1e-9 relative, p-values and intervals too."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from sklearn.datasets import load_breast_cancer, load_diabetes
from statsmodels.datasets import longley

from custos.computations.base import Final
from custos.computations.glm.model import GlmModel
from custos.core.blobs import through_wire
from custos.core.errors import InvalidInput
from custos.data.file_source import FileSource
from custos.data.profile import profile
from custos.data.synthetic import write_dataset
from custos.data.table_reader import TableDalReader

Json = dict[str, Any]
MODEL = GlmModel()
CANCER_COLUMNS = ["mean radius", "mean texture", "mean smoothness", "mean compactness", "mean symmetry"]


def run_glm(
    params: Json,
    sites: Mapping[str, pa.Table],
    min_count: int = 10,
    max_rounds: int = 120,
    *,
    filtered: bool = True,
) -> Json:
    """start -> compute_site at each site -> gateway filter -> aggregate, until Final. With `filtered`
    false the sites' results skip the disclosure checks (only the counts the filter removes are
    removed), for data too small for any site to pass them."""
    step = MODEL.start(params)
    state, round_input = through_wire(step.state), through_wire(step.round_input)
    for _ in range(max_rounds):
        results = {}
        for key, table in sites.items():
            dataset = key.split("/")[1]
            reader = TableDalReader({dataset: table})
            raw = through_wire(MODEL.compute_site(reader, dataset, params, round_input))
            if filtered:
                results[key] = through_wire(MODEL.filter_site_result(params, raw, min_count))
            else:
                results[key] = {k: v for k, v in raw.items() if k != "checks"}
        outcome = MODEL.aggregate(params, state, results, min_count)
        if isinstance(outcome, Final):
            return through_wire(outcome.result)
        state, round_input = through_wire(outcome.state), through_wire(outcome.round_input)
    raise AssertionError(f"glm did not finish within {max_rounds} rounds")


def split(frame: pd.DataFrame, by: str, sizes: list[int]) -> dict[str, pa.Table]:
    """Non-IID sites: the rows sorted by `by`, cut into consecutive blocks of `sizes` rows."""
    ordered = frame.sort_values(by, kind="stable").reset_index(drop=True)
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(ordered)
    return {
        f"site-{'abc'[i]}/data": pa.Table.from_pandas(ordered.iloc[lo:hi], preserve_index=False)
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
    }


def pooled(sites: Mapping[str, pa.Table]) -> pd.DataFrame:
    return pa.concat_tables(sites.values()).to_pandas()


def column(result: Json, key: str) -> np.ndarray:
    return np.array([row[key] for row in result["coefficients"]], dtype=float)


def with_intercept(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(intercept=1.0)[["intercept", *frame.columns]]


def assert_matches(
    result: Json, fit: Any, names: list[str], statistic: str, ours: list[str] | None = None
) -> None:
    """`fit` is statsmodels' GLM result; `names` are its terms in the order of the result's terms,
    which are named `ours` (default: the same names)."""
    assert [row["name"] for row in result["coefficients"]] == (ours or names)
    params, bse = fit.params[names].to_numpy(), fit.bse[names].to_numpy()
    np.testing.assert_allclose(column(result, "estimate"), params, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(column(result, "std_error"), bse, rtol=1e-8)
    np.testing.assert_allclose(column(result, statistic), fit.tvalues[names].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(
        column(result, "p_value"), fit.pvalues[names].to_numpy(), rtol=1e-6, atol=1e-15
    )
    intervals = fit.conf_int().loc[names].to_numpy()
    np.testing.assert_allclose(column(result, "ci_lower"), intervals[:, 0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(column(result, "ci_upper"), intervals[:, 1], rtol=1e-8, atol=1e-12)
    for key, expected in [
        ("deviance", fit.deviance),
        ("null_deviance", fit.null_deviance),
        ("pearson_chi2", fit.pearson_chi2),
        ("log_likelihood", fit.llf),
        ("aic", fit.aic),
        ("scale", fit.scale),
    ]:
        assert result[key] == pytest.approx(expected, rel=1e-9), key
    assert result["n"] == fit.nobs
    assert result["df_residual"] == fit.df_resid
    assert result["converged"] is True


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    frame: pd.DataFrame = load_diabetes(as_frame=True).frame
    return frame


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame[[*CANCER_COLUMNS, "target"]]


def test_linear_regression_on_diabetes_split_by_age_equals_statsmodels(diabetes: pd.DataFrame) -> None:
    predictors = [c for c in diabetes.columns if c != "target"]
    sites = split(diabetes, "age", [120, 200, 122])
    result = run_glm({"family": "gaussian", "outcome": "target", "predictors": predictors}, sites)
    frame = pooled(sites)
    fit = sm.GLM(frame["target"], with_intercept(frame[predictors])).fit(use_t=True)

    assert_matches(result, fit, ["intercept", *predictors], "t")
    assert result["coefficients"][0]["name"] == "intercept"
    assert (result["family"], result["link"], result["event"]) == ("gaussian", "identity", None)
    assert result["scale"] == pytest.approx(result["pearson_chi2"] / (442 - 11), rel=1e-12)
    assert (result["iterations"], result["rounds"]) == (1, 2)
    assert result["warnings"] == []


def test_an_ill_conditioned_linear_model_longley_over_three_sites_equals_statsmodels_to_1e_10() -> None:
    """Longley's design has condition number 5e9: through the normal equations (X'X, condition 2e19)
    the coefficients are off by 1e-7 or worse; the QR of the stacked site factors keeps 1e-10."""
    data = longley.load_pandas()
    predictors = list(data.exog.columns)
    frame = data.exog.assign(TOTEMP=data.endog)
    bounds = [0, 5, 10, 16]
    sites = {
        f"site-{'abc'[i]}/data": pa.Table.from_pandas(frame.iloc[lo:hi], preserve_index=False)
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
    }
    # 16 rows for 7 coefficients: no site could pass the disclosure checks, which are not what is tested.
    result = run_glm(
        {"family": "gaussian", "outcome": "TOTEMP", "predictors": predictors}, sites, filtered=False
    )
    fit = sm.GLM(frame["TOTEMP"], with_intercept(frame[predictors])).fit(use_t=True)
    names = ["intercept", *predictors]

    assert [row["name"] for row in result["coefficients"]] == names
    np.testing.assert_allclose(column(result, "estimate"), fit.params[names].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(column(result, "std_error"), fit.bse[names].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(column(result, "t"), fit.tvalues[names].to_numpy(), rtol=1e-10)
    for key, expected in [
        ("deviance", fit.deviance),
        ("pearson_chi2", fit.pearson_chi2),
        ("scale", fit.scale),
        ("log_likelihood", fit.llf),
        ("aic", fit.aic),
        ("null_deviance", fit.null_deviance),
    ]:
        assert result[key] == pytest.approx(expected, rel=1e-10), key


def test_logistic_regression_on_breast_cancer_split_by_texture_equals_statsmodels(
    cancer: pd.DataFrame,
) -> None:
    sites = split(cancer, "mean texture", [250, 190, 129])
    params = {"family": "binomial", "outcome": "target", "predictors": CANCER_COLUMNS}
    result = run_glm(params, sites)
    frame = pooled(sites)
    model = sm.GLM(frame["target"], with_intercept(frame[CANCER_COLUMNS]), family=sm.families.Binomial())
    fit = model.fit(tol=1e-14)

    assert_matches(result, fit, ["intercept", *CANCER_COLUMNS], "z")
    assert result["scale"] == 1.0
    assert result["link"] == "logit"
    assert 4 <= result["iterations"] <= 12
    assert result["rounds"] == result["iterations"] + 1
    assert "below the tolerance 1e-10" in result["stop_reason"]


def test_logistic_regression_without_intercept_on_standardised_columns(cancer: pd.DataFrame) -> None:
    standard = cancer.copy()
    standard[CANCER_COLUMNS] = (cancer[CANCER_COLUMNS] - cancer[CANCER_COLUMNS].mean()) / cancer[
        CANCER_COLUMNS
    ].std()
    sites = split(standard, "mean radius", [200, 200, 169])
    params = {"family": "binomial", "outcome": "target", "predictors": CANCER_COLUMNS, "intercept": False}
    result = run_glm(params, sites, min_count=5)
    frame = pooled(sites)
    fit = sm.GLM(frame["target"], frame[CANCER_COLUMNS], family=sm.families.Binomial()).fit(tol=1e-14)

    assert_matches(result, fit, CANCER_COLUMNS, "z")


def counts_cohort(seed: int) -> dict[str, pa.Table]:
    """Three sites with different exposure distributions and sizes; poisson counts with a log-linear rate."""
    rng = np.random.default_rng(seed)
    sites = {}
    for i, n in enumerate([400, 900, 250]):
        x1 = rng.normal(i - 1, 1, n)
        x2 = rng.uniform(0, 3 + i, n)
        rate = np.exp(0.4 + 0.3 * x1 - 0.15 * x2)
        table = pa.table({"visits": rng.poisson(rate).astype(np.int64), "x1": x1, "x2": x2})
        sites[f"site-{'abc'[i]}/data"] = table
    return sites


def test_poisson_regression_on_synthetic_counts_equals_statsmodels() -> None:
    sites = counts_cohort(3)
    result = run_glm({"family": "poisson", "outcome": "visits", "predictors": ["x1", "x2"]}, sites)
    frame = pooled(sites)
    model = sm.GLM(frame["visits"], with_intercept(frame[["x1", "x2"]]), family=sm.families.Poisson())
    fit = model.fit(tol=1e-14)

    assert_matches(result, fit, ["intercept", "x1", "x2"], "z")
    assert result["link"] == "log"
    assert result["coefficients"][1]["estimate"] == pytest.approx(0.3, abs=0.05)


def test_a_count_outcome_with_zeros_and_counts_past_ten_is_accepted_and_equals_statsmodels(
    tmp_path: Path,
) -> None:
    """Each site's public schema, profiled as a gateway publishes it, puts the count's minimum below 0
    (counts from 0 publish -1 or less); the params are accepted against it, and the fit is exact."""
    rng = np.random.default_rng(17)
    sites = {}
    for i, n in enumerate([300, 450, 200]):
        x = rng.normal(i * 0.5, 1, n)
        counts = rng.negative_binomial(2, 2 / (2 + np.exp(0.8 + 0.7 * x)))
        sites[f"site-{'abc'[i]}/data"] = pa.table({"admissions": counts.astype(np.int64), "x": x})
    params = {"family": "poisson", "outcome": "admissions", "predictors": ["x"]}
    for key, table in sites.items():
        assert pc.min(table["admissions"]).as_py() == 0 and pc.max(table["admissions"]).as_py() >= 10
        path = tmp_path / f"{key.split('/')[0]}.parquet"
        write_dataset(table, path)
        schema, _ = profile(FileSource("data", path, "parquet"))
        assert schema.column("admissions").min is not None and schema.column("admissions").min <= -1
        MODEL.validate_params(params, schema, ["admissions", "x"])

    result = run_glm(params, sites)
    frame = pooled(sites)
    fit = sm.GLM(frame["admissions"], with_intercept(frame[["x"]]), family=sm.families.Poisson()).fit(
        tol=1e-14
    )
    assert_matches(result, fit, ["intercept", "x"], "z")


def skewed_cohort(seed: int, alpha: float) -> dict[str, pa.Table]:
    """Three sites of different exposure: a positive, right-skewed cost (gamma, shape 2) and overdispersed
    visit counts (negative binomial with dispersion `alpha`), each log-linear in x1 and x2."""
    rng = np.random.default_rng(seed)
    sites = {}
    for i, n in enumerate([400, 900, 250]):
        x1 = rng.normal(i - 1, 1, n)
        x2 = rng.uniform(0, 3 + i, n)
        mu = np.exp(0.4 + 0.3 * x1 - 0.15 * x2)
        cost = rng.gamma(2.0, mu / 2.0)
        visits = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu)).astype(np.int64)
        sites[f"site-{'abc'[i]}/data"] = pa.table({"cost": cost, "visits": visits, "x1": x1, "x2": x2})
    return sites


def test_gamma_regression_with_a_log_link_equals_statsmodels() -> None:
    sites = skewed_cohort(5, 0.7)
    result = run_glm({"family": "gamma", "outcome": "cost", "predictors": ["x1", "x2"]}, sites)
    frame = pooled(sites)
    family = sm.families.Gamma(sm.families.links.Log())
    fit = sm.GLM(frame["cost"], with_intercept(frame[["x1", "x2"]]), family=family).fit(tol=1e-14, use_t=True)

    assert_matches(result, fit, ["intercept", "x1", "x2"], "t")
    assert (result["family"], result["link"]) == ("gamma", "log")
    assert result["scale"] == pytest.approx(result["pearson_chi2"] / (1550 - 3), rel=1e-12)
    # Newton steps on the observed information converge in fewer rounds than statsmodels' IRLS.
    assert result["iterations"] < fit.fit_history["iteration"]


@pytest.mark.parametrize("alpha", [0.7, 1.0, 2.5])
def test_negative_binomial_regression_with_a_known_alpha_equals_statsmodels(alpha: float) -> None:
    sites = skewed_cohort(6, alpha)
    params: Json = {"family": "negative_binomial", "outcome": "visits", "predictors": ["x1", "x2"]}
    if alpha != 1.0:
        params["alpha"] = alpha
    result = run_glm(params, sites)
    frame = pooled(sites)
    family = sm.families.NegativeBinomial(alpha=alpha)
    fit = sm.GLM(frame["visits"], with_intercept(frame[["x1", "x2"]]), family=family).fit(tol=1e-14)

    assert_matches(result, fit, ["intercept", "x1", "x2"], "z")
    assert (result["family"], result["link"], result["scale"]) == ("negative_binomial", "log", 1.0)
    assert result["iterations"] < fit.fit_history["iteration"]


def categorical_cohort(seed: int) -> dict[str, pa.Table]:
    """A string category whose mix differs by site (site-c has no "c"), a boolean, nulls, and a
    categorical 0/1 outcome "no"/"yes"."""
    rng = np.random.default_rng(seed)
    sites = {}
    mixes = [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]
    for i, n in enumerate([500, 700, 300]):
        group = rng.choice(["a", "b", "c"], n, p=mixes[i])
        x = rng.normal(40 + 5 * i, 10, n)
        flag = rng.random(n) < 0.4
        eta = -2 + 0.04 * x + np.select([group == "a", group == "c"], [0.6, -0.5], 0.0) + 0.3 * flag
        outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-eta)), "yes", "no")
        amount = 3 + 0.1 * x + np.select([group == "a", group == "c"], [2.0, -1.0], 0.0) + rng.normal(0, 2, n)
        sites[f"site-{'abc'[i]}/data"] = pa.table(
            {
                "x": pa.array(x, mask=rng.random(n) < 0.03),
                "group": pa.array(group, mask=rng.random(n) < 0.02),
                "flag": pa.array(flag),
                "outcome": pa.array(outcome),
                "amount": pa.array(amount),
            }
        )
    return sites


def test_categorical_predictors_are_dummy_coded_as_statsmodels_formulas_with_the_same_reference() -> None:
    sites = categorical_cohort(5)
    params = {
        "family": "gaussian",
        "outcome": "amount",
        "predictors": ["x", "group", "flag"],
        "levels": {"group": ["b", "a", "c"], "flag": ["false", "true"]},
    }
    result = run_glm(params, sites)
    frame = pooled(sites)
    formula = "amount ~ x + C(group, Treatment('b')) + flag"
    fit = smf.glm(formula, frame, missing="drop").fit(use_t=True)
    dummy = "C(group, Treatment('b'))"
    theirs = ["Intercept", "x", f"{dummy}[T.a]", f"{dummy}[T.c]", "flag[T.True]"]
    assert sorted(fit.params.index) == sorted(theirs)
    ours = ["intercept", "x", "group[a]", "group[c]", "flag[true]"]
    assert_matches(result, fit, theirs, "t", ours)
    assert result["n"] == len(frame.dropna())


def test_a_categorical_binomial_outcome_models_its_second_level() -> None:
    sites = categorical_cohort(8)
    params = {
        "family": "binomial",
        "outcome": "outcome",
        "predictors": ["x", "group"],
        "levels": {"outcome": ["no", "yes"], "group": ["a", "b", "c"]},
    }
    result = run_glm(params, sites)
    frame = pooled(sites).dropna(subset=["x", "group"])
    frame["event"] = (frame["outcome"] == "yes").astype(float)
    fit = smf.glm("event ~ x + group", frame, family=sm.families.Binomial()).fit(tol=1e-14)
    theirs = ["Intercept", "x", "group[T.b]", "group[T.c]"]
    assert_matches(result, fit, theirs, "z", ["intercept", "x", "group[b]", "group[c]"])
    assert result["event"] == "yes"


def test_filters_are_pushed_down_and_the_fit_equals_statsmodels_on_the_filtered_rows() -> None:
    sites = counts_cohort(11)
    params = {
        "family": "poisson",
        "outcome": "visits",
        "predictors": ["x1"],
        "filters": [{"column": "x2", "op": "<", "value": 2.5}],
    }
    result = run_glm(params, sites)
    frame = pooled(sites)
    frame = frame[frame["x2"] < 2.5]
    fit = sm.GLM(frame["visits"], with_intercept(frame[["x1"]]), family=sm.families.Poisson()).fit(tol=1e-14)
    assert_matches(result, fit, ["intercept", "x1"], "z")


def test_max_iterations_stops_the_fit_and_says_it_did_not_converge(cancer: pd.DataFrame) -> None:
    sites = split(cancer, "mean texture", [250, 190, 129])
    params = {"family": "binomial", "outcome": "target", "predictors": CANCER_COLUMNS, "max_iterations": 2}
    result = run_glm(params, sites)
    assert result["converged"] is False
    assert (result["iterations"], result["rounds"]) == (2, 3)
    assert result["stop_reason"].startswith("max_iterations (2) reached; the last relative deviance change")


def test_a_collinear_predictor_is_named_with_the_terms_it_depends_on(diabetes: pd.DataFrame) -> None:
    frame = diabetes.assign(bmi_again=2 * diabetes["bmi"] - 0.5)
    sites = split(frame, "age", [150, 150, 142])
    params = {"family": "gaussian", "outcome": "target", "predictors": ["age", "bmi", "bmi_again", "bp"]}
    with pytest.raises(InvalidInput) as caught:
        run_glm(params, sites)
    assert str(caught.value) == (
        "the predictors are collinear: term 'bmi_again' is (almost) a linear combination of the terms "
        "before it ('intercept', 'age', 'bmi'); drop it or one of those"
    )


def test_a_level_no_site_has_is_reported_as_a_term_without_rows() -> None:
    sites = categorical_cohort(2)
    params = {
        "family": "gaussian",
        "outcome": "amount",
        "predictors": ["group"],
        "levels": {"group": ["a", "b", "c", "d"]},
    }
    with pytest.raises(InvalidInput, match=r"term 'group\[d\]' is zero in every row"):
        run_glm(params, sites)
