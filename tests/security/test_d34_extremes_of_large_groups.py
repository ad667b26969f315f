"""Threat D34 (docs/threats.md), through a real orchestrator and real gateways: min, max and the
quantiles at 0 and 1 are one person's exact value even in a large group. Under a policy with
`extremes_min_count: 20`, an extreme is published only when at least 20 rows hold it (the minimum
age, 18, which 20 rows of each site hold, but not the maximum age, 90, which 15 rows hold); the outlier
bmi, held by one person, is never published. Without `extremes_min_count`, the same holds with
`min_count` as the threshold: an extreme follows the rule for cells.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.security.sdc_cohort import OUTLIER_BMI, run_job

from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

PARAMS: dict[str, Any] = {
    "columns": ["age", "bmi"],
    "statistics": ["count", "min", "max"],
    "group_by": "sex",
    "quantiles": [{"column": "bmi", "probs": [0.0, 0.5, 1.0]}],
}


def published_values(result: dict[str, Any]) -> set[float]:
    values = {v for e in result["summaries"] for k, v in e.items() if k in ("min", "max") and v is not None}
    return values | {e["value"] for e in result["quantiles"] if e.get("value") is not None}


def test_d34_an_extreme_one_person_holds_is_never_published(sdc_cluster: Cluster) -> None:
    result = run_job(sdc_cluster, "cohort_ext", PARAMS)

    assert OUTLIER_BMI not in published_values(result)
    summaries = {(e["column"], e["group"]): e for e in result["summaries"]}
    assert summaries[("bmi", None)]["count"] > 500  # a large group: the old rule published its max
    assert summaries[("bmi", None)]["max"] is None
    assert "max: fewer than 20 rows hold it" in summaries[("bmi", None)]["extremes_reason"]
    quantiles = {(e["group"], e["prob"]): e for e in result["quantiles"]}
    assert quantiles[(None, 1.0)]["suppressed"] is True and quantiles[(None, 0.5)]["value"] is not None


def test_d34_without_extremes_min_count_an_extreme_needs_min_count_rows(sdc_cluster: Cluster) -> None:
    result = run_job(sdc_cluster, "cohort", PARAMS)

    assert OUTLIER_BMI not in published_values(result)
    summaries = {(e["column"], e["group"]): e for e in result["summaries"]}
    assert summaries[("bmi", None)]["max"] is None
    assert "max: fewer than 10 rows hold it" in summaries[("bmi", None)]["extremes_reason"]
    assert summaries[("age", None)]["min"] == 18  # held by 20 rows of each site
    quantiles = {(e["group"], e["prob"]): e for e in result["quantiles"]}
    assert quantiles[(None, 1.0)]["suppressed"] is True and quantiles[(None, 0.5)]["value"] is not None


def test_d34_an_extreme_that_enough_rows_hold_is_published(sdc_cluster: Cluster) -> None:
    result = run_job(sdc_cluster, "cohort_ext", PARAMS)

    summaries = {(e["column"], e["group"]): e for e in result["summaries"]}
    assert summaries[("age", None)]["min"] == 18
    assert summaries[("age", "F")]["min"] == 18  # the rows of age 18 are women at both sites
    assert summaries[("age", None)]["max"] is None  # age 90: 15 rows, all at site-a
