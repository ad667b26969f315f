"""Threat D33 (docs/threats.md): an unrounded count hidden in the figures published beside a rounded
one, through a real orchestrator and real gateways. Under nearest-5 and midpoint-6 rounding a
researcher divides each published sum by its mean, and, on an integer column, looks for the count that
makes the mean a ratio of whole numbers; neither may give back a count other than the published one.
And with `totals_from_cells`, all rows is published as the sum of its published groups.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.security.sdc_cohort import pooled_frame, run_job

from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

PARAMS: dict[str, Any] = {
    "columns": ["age", "bmi"],
    "statistics": ["count", "sum", "mean", "variance", "std"],
    "group_by": "sex",
}


def exact_count(column: str, group: str | None) -> int:
    frame = pooled_frame()
    rows = frame if group is None else frame[frame["sex"] == group]
    return int(rows[column].count())


def counts_a_mean_allows(mean: float, around: int) -> set[int]:
    """The counts near `around` over which `mean` is a whole sum, as it is for an integer column."""
    return {n for n in range(max(1, around - 3), around + 4) if abs(mean * n - round(mean * n)) < 1e-7}


@pytest.mark.parametrize("dataset", ["cohort_r5", "cohort_m6"])
def test_d33_sum_over_mean_gives_only_the_rounded_count(sdc_cluster: Cluster, dataset: str) -> None:
    result = run_job(sdc_cluster, dataset, PARAMS)
    published = [e for e in result["summaries"] if not e.get("suppressed")]
    assert published
    hidden = 0
    for entry in published:
        exact = exact_count(entry["column"], entry["group"])
        hidden += exact != entry["count"]
        recovered = round(entry["sum"] / entry["mean"])
        assert recovered == entry["count"], (entry, exact)
        if entry["column"] == "age":  # integer values: the mean's digits must not pin the count
            assert counts_a_mean_allows(entry["mean"], entry["count"]) != {exact} or exact == entry["count"]
        assert entry["variance"] is None and entry["std"] is None
    assert hidden  # the attack had something to find
    assert result["rounding"] in ("nearest 5", "midpoint6")
    assert any("variance and std are withheld" in note for note in result["notes"])


def test_d33_totals_from_cells_publishes_all_rows_as_the_sum_of_its_groups(sdc_cluster: Cluster) -> None:
    params = {**PARAMS, "histograms": [{"column": "age", "edges": [18, 40, 60, 90]}]}
    result = run_job(sdc_cluster, "cohort_tfc", params)

    for column in ("age", "bmi"):
        entries = [e for e in result["summaries"] if e["column"] == column]
        overall = next(e for e in entries if e["group"] is None)
        groups = [e for e in entries if e["group"] is not None and not e.get("suppressed")]
        assert groups
        assert overall["count"] == sum(e["count"] for e in groups)
        assert overall["sum"] == pytest.approx(sum(e["sum"] for e in groups))
        assert overall["count"] != round(exact_count(column, None) / 5) * 5  # not the rounded total
    rows = {e["group"]: e for e in result["histograms"]}
    groups = [r for g, r in rows.items() if g is not None]
    for k, count in enumerate(rows[None]["counts"]):
        published = [r["counts"][k] for r in groups if r["counts"][k] is not None]
        assert count == sum(published)
    assert any("totals_from_cells" in note for note in result["notes"])
