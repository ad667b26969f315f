"""DP `stats` jobs through the model as the gateway and the orchestrator drive it: `group_by` over the
public categories (a line per public group, the cost of the same job without groups), and the checks
that refuse, before any budget is reserved, a DP job that could not succeed (`check_job`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.base import Final, JobDataset
from custos.computations.stats.model import StatsModel
from custos.core.digest import canonical_json
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.privacy.controls import PrivacyControls

Json = dict[str, Any]
MODEL = StatsModel()
AGE = ColumnSchema(name="age", type="float", kind="numeric", min=0, max=100)


def schema(categories: list[str] | None = None, kind: Any = "categorical") -> DatasetSchema:
    group = ColumnSchema(name="sex", type="string", kind=kind, categories=categories)
    return DatasetSchema(columns=[AGE, group])


SCHEMA = schema(["F", "M", "X"])  # X is public, but no row of the test data holds it


def controls(epsilon: float = 1.0, **disclosure: Any) -> PrivacyControls:
    return PrivacyControls.model_validate(
        {
            "disclosure": {"min_count": 10, **disclosure},
            "dp": {"mechanism": "laplace", "epsilon_per_job": epsilon},
            "budget": {"epsilon_per_researcher": 1000.0, "epsilon_per_org": 1000.0},
        }
    )


class Reader:
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def read(self, dataset: str, columns: Any, filters: Any = ()) -> pa.Table:
        return self.table.select(list(columns))


def _json(value: Json) -> Json:
    loaded: Json = json.loads(canonical_json(value))
    return loaded


def run(params: Json, sites: Mapping[str, pa.Table], privacy: PrivacyControls) -> Json:
    """One DP round: each gateway's plan, the sandbox's release, the gateway's filter, then pooling."""
    assert privacy.dp is not None
    step = MODEL.start(params)
    results = {}
    for key, table in sites.items():
        given = {**step.round_input, "dp": MODEL.plan_dp(params, SCHEMA, privacy.dp).settings}
        raw = _json(MODEL.compute_site(Reader(table), "t", params, given))
        results[key] = _json(MODEL.filter_site_result(params, raw, privacy))
    outcome = MODEL.aggregate(params, step.state, results, privacy.disclosure)
    assert isinstance(outcome, Final)
    return _json(outcome.result)


def cohort(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], 3000).astype(object)
    sex[:40] = None  # in no group
    sex[40:60] = "unlisted"  # not a public category: in no group
    age = np.where(sex == "F", rng.normal(40, 8, 3000), rng.normal(60, 8, 3000))
    return pa.table({"age": age, "sex": pa.array(sex.tolist(), pa.string())})


SITES = {"a/t": cohort(1), "b/t": cohort(2)}
POOLED = pa.concat_tables(SITES.values()).to_pandas()


def test_dp_group_by_releases_a_line_per_public_group_at_the_cost_of_the_job_without_groups() -> None:
    params = {
        "columns": ["age"],
        "statistics": ["count", "mean", "std"],
        "group_by": "sex",
        "histograms": [{"column": "age", "edges": [0, 50, 100]}],
        "quantiles": [{"column": "age", "probs": [0.5]}],
    }
    privacy = controls(epsilon=100.0)  # noise far below the tolerances
    assert privacy.dp is not None
    ungrouped = MODEL.plan_dp({k: v for k, v in params.items() if k != "group_by"}, SCHEMA, privacy.dp)
    assert MODEL.plan_dp(params, SCHEMA, privacy.dp).cost == ungrouped.cost

    result = run(params, SITES, privacy)

    assert result["group_by"] == "sex"
    summaries = {s["group"]: s for s in result["summaries"]}
    assert list(summaries) == ["F", "M", "X"]  # the schema's groups, none for all rows
    for group in ("F", "M"):
        rows = POOLED[POOLED["sex"] == group]["age"].clip(0, 100)
        assert summaries[group]["count"] == pytest.approx(len(rows), abs=3)
        assert summaries[group]["mean"] == pytest.approx(rows.mean(), abs=0.05)
        assert summaries[group]["std"] == pytest.approx(rows.std(), rel=0.02)
    assert abs(summaries["X"]["count"]) <= 3
    histograms = {h["group"]: h["counts"] for h in result["histograms"]}
    f_rows = POOLED[POOLED["sex"] == "F"]["age"]
    assert histograms["F"] == pytest.approx([(f_rows < 50).sum(), (f_rows >= 50).sum()], abs=4)
    medians = {q["group"]: q["value"] for q in result["quantiles"]}
    assert medians["M"] == pytest.approx(POOLED[POOLED["sex"] == "M"]["age"].median(), abs=1.0)
    assert set(result["dp"]["spent"]) == set(SITES)
    assert all(s["epsilon"] <= 100.0 + 1e-6 for s in result["dp"]["spent"].values())


def test_under_dp_group_by_frequency_tables_stay_over_all_rows() -> None:
    result = run(
        {"columns": ["sex", "age"], "statistics": ["count"], "group_by": "sex"}, SITES, controls(100.0)
    )

    frequencies = {f["category"]: f["count"] for f in result["frequencies"]}
    assert frequencies == pytest.approx(
        {"F": (POOLED["sex"] == "F").sum(), "M": (POOLED["sex"] == "M").sum(), "X": 0}, abs=3
    )
    assert [s["group"] for s in result["summaries"]] == ["F", "M", "X"]


def datasets(**found: tuple[DatasetSchema, PrivacyControls]) -> dict[str, JobDataset]:
    return {f"site-{k}/t": JobDataset(s, p) for k, (s, p) in found.items()}


def test_check_job_refuses_what_would_fail_after_the_charge_naming_datasets_and_categories() -> None:
    tables = {"columns": ["sex"]}
    with pytest.raises(InvalidInput) as refused:
        MODEL.check_job(
            tables, datasets(a=(schema(["F", "M"]), controls()), b=(schema(["F", "M", "X"]), controls()))
        )
    assert str(refused.value) == (
        "columns[0]: column 'sex' has different public categories at the job's datasets (site-a/t: F, M; "
        "site-b/t: F, M, X); a differentially private table pools the same categories from every site"
    )
    grouped = {"columns": ["age"], "group_by": "sex"}
    with pytest.raises(InvalidInput, match="group_by: column 'sex' has different public categories"):
        MODEL.check_job(grouped, datasets(a=(schema(["F"]), controls()), b=(schema(["M"]), controls())))
    with pytest.raises(
        InvalidInput, match=r"with differential privacy \(site-a/t\) and without \(site-b/t\)"
    ):
        MODEL.check_job(tables, datasets(a=(SCHEMA, controls()), b=(SCHEMA, PrivacyControls())))
    with pytest.raises(PolicyDenied, match=r"^site-b/t: column 'sex' has more than 2 levels"):
        MODEL.check_job(grouped, datasets(a=(SCHEMA, controls()), b=(SCHEMA, controls(max_levels=2))))
    with pytest.raises(PolicyDenied, match=r"^site-a/t: min and max have no differentially private"):
        MODEL.check_job({"columns": ["age"], "statistics": ["max"]}, datasets(a=(SCHEMA, controls())))
    with pytest.raises(PolicyDenied, match=r"^site-a/t: column 'sex' has no public categories"):
        MODEL.check_job(grouped, datasets(a=(schema(None), controls())))
    numeric = DatasetSchema(
        columns=[AGE, ColumnSchema(name="sex", type="float", kind="numeric", min=0, max=1)]
    )
    with pytest.raises(InvalidInput, match="column 'sex' is not of one kind"):
        MODEL.check_job({"columns": ["sex"]}, datasets(a=(SCHEMA, controls()), b=(numeric, controls())))


def test_check_job_passes_jobs_that_can_succeed() -> None:
    for params in ({"columns": ["sex", "age"]}, {"columns": ["age"], "group_by": "sex"}):
        MODEL.check_job(params, datasets(a=(SCHEMA, controls()), b=(SCHEMA, controls(max_levels=3))))
    # Without differential privacy nothing here applies: exact jobs have their own checks.
    MODEL.check_job(
        {"columns": ["sex"]}, datasets(a=(schema(["F"]), PrivacyControls()), b=(SCHEMA, PrivacyControls()))
    )
