"""Federated statistics through real processes equal the pooled computation done with pandas."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from custos.core.errors import InvalidInput, NotFound, PermissionDenied
from custos.local.cluster import Cluster

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = pytest.mark.one_database

SITES = ["site-a/patients", "site-b/patients", "site-c/patients"]
AGE_EDGES = [18, 30, 45, 60, 75, 96]
MOMENTS = ("sum", "mean", "variance", "std")


@pytest.fixture(scope="module")
def pooled(site_tables: list[pa.Table]) -> pd.DataFrame:
    return pd.concat([t.to_pandas() for t in site_tables], ignore_index=True)


def run_stats(cluster: Cluster, params: dict[str, Any]) -> dict[str, Any]:
    with cluster.client("alice") as alice:
        spec = alice.create_spec(
            "pooled-check", "stats@1.0.0", SITES, ["age", "bmi", "systolic_bp", "sex", "region"]
        )
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, params)
        alice.wait_job(job.id, timeout=120)
        return dict(alice.job_result(job.id).data)


def check_summary(row: dict[str, Any], values: pd.Series) -> None:
    assert row["count"] == values.count()
    for stat, expected in zip(
        MOMENTS, (values.sum(), values.mean(), values.var(), values.std()), strict=True
    ):
        assert math.isclose(row[stat], float(expected), rel_tol=1e-9), (row["column"], stat)
    # An extreme is published only where enough rows hold it (min_count 10), and is then exact.
    for stat, extreme in (("min", values.min()), ("max", values.max())):
        if row.get(stat) is None:
            assert f"{stat}: fewer than 10 rows hold it" in row["extremes_reason"]
        else:
            assert row[stat] == extreme and (values == extreme).sum() >= 10


def test_federated_stats_equal_pooled_pandas(cluster: Cluster, pooled: pd.DataFrame) -> None:
    params = {
        "columns": ["age", "bmi", "systolic_bp", "sex", "region"],
        "statistics": ["count", "sum", "mean", "variance", "std", "min", "max"],
        "histograms": [{"column": "age", "edges": AGE_EDGES}],
        "quantiles": [
            {"column": "bmi", "probs": [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]},
            {"column": "age", "probs": [0.5]},
        ],
    }
    result = run_stats(cluster, params)
    summaries = {r["column"]: r for r in result["summaries"] if r["group"] is None}
    for column in ("age", "bmi", "systolic_bp"):
        check_summary(summaries[column], pooled[column])
    for row in result["frequencies"]:
        assert row["count"] == (pooled[row["column"]] == row["category"]).sum()
    assert {r["category"] for r in result["frequencies"] if r["column"] == "region"} == set(pooled["region"])
    (hist,) = result["histograms"]
    assert hist["counts"] == np.histogram(pooled["age"], bins=AGE_EDGES)[0].tolist()
    published = [r for r in result["quantiles"] if not r.get("suppressed")]
    assert {(r["column"], r["prob"]) for r in result["quantiles"] if r.get("suppressed")} <= {
        ("bmi", 0.0),
        ("bmi", 1.0),
    }  # the tails, one person's value each
    assert summaries["age"]["min"] == 18  # held by many rows: published, and exact
    for row in published:
        assert row["value"] == pooled[row["column"]].quantile(row["prob"]), row


def test_grouped_federated_stats_equal_pooled_pandas(cluster: Cluster, pooled: pd.DataFrame) -> None:
    params = {
        "columns": ["bmi"],
        "statistics": ["count", "sum", "mean", "variance", "std", "min", "max"],
        "group_by": "sex",
        "quantiles": [{"column": "systolic_bp", "probs": [0.5]}],
        "filters": [{"column": "age", "op": ">=", "value": 40}],
    }
    result = run_stats(cluster, params)
    subset = pooled[pooled["age"] >= 40]
    for row in result["summaries"]:
        values = subset["bmi"] if row["group"] is None else subset.loc[subset["sex"] == row["group"], "bmi"]
        check_summary(row, values)
    grouped = {r["group"]: r["value"] for r in result["quantiles"]}
    for sex, values in subset.groupby("sex")["systolic_bp"]:
        assert grouped[sex] == values.quantile(0.5)


def test_bad_inputs_get_clear_errors_and_write_nothing(cluster: Cluster) -> None:
    with cluster.client("alice") as alice:
        before = len(alice.specs())
        with pytest.raises(PermissionDenied, match=r"does not grant column\(s\) postcode"):
            alice.create_spec("denied", "stats@1.0.0", SITES, ["age", "postcode"])
        with pytest.raises(InvalidInput, match="unknown column 'agee'"):
            alice.create_spec("typo", "stats@1.0.0", SITES, ["agee"])
        with pytest.raises(NotFound, match="unknown compute spec spec_missing"):
            alice.spec("spec_missing")
        assert len(alice.specs()) == before
        spec = alice.create_spec("ok", "stats@1.0.0", SITES, ["age"])
        alice.activate_spec(spec.id)
        with pytest.raises(InvalidInput, match="bmi"):
            alice.submit_job(spec.id, {"columns": ["bmi"]})


def test_other_org_cannot_see_a_job_by_id(cluster: Cluster) -> None:
    with cluster.client("alice") as alice, cluster.client("mallory") as mallory:
        spec = alice.create_spec("private", "stats@1.0.0", SITES, ["age"])
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, {"columns": ["age"]})
        alice.wait_job(job.id, timeout=60)
        with pytest.raises(NotFound):
            mallory.job(job.id)
        with pytest.raises(NotFound):
            mallory.job_result(job.id)
