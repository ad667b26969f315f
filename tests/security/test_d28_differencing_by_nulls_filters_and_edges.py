"""Threat D28 (docs/threats.md), differencing through margins whose cells do not add up to them, through
a real orchestrator and real gateways: a researcher subtracts published groups from all rows, bins
from a column's count, or a filtered job from an unfiltered one, to single out one person.

- The person whose sex is null counts in all rows and in no named group: all rows less the groups
  would give their count, sum, mean x count and histogram bin.
- The person whose bmi lies above the last histogram edge counts in the column's count and in no bin.
- A filter that leaves one person's bmi out (15 rows of age 90, all but one of them with a null bmi)
  gives their bmi as the difference of two jobs.

Each attack must come away without the value it is after.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.security.sdc_cohort import AGE_90_BMI, NULL_SEX_BMI, OUTLIER_BMI, run_job

from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

EDGES = [15, 20, 25, 30, 35, 40]
GROUPED: dict[str, Any] = {
    "columns": ["bmi"],
    "statistics": ["count", "sum", "mean"],
    "group_by": "sex",
    "histograms": [{"column": "bmi", "edges": EDGES}],
}


def difference(total: float | None, parts: list[float | None]) -> float | None:
    """total less the parts, or None when any figure is not published."""
    if total is None or any(p is None for p in parts):
        return None
    return total - sum(p for p in parts if p is not None)


def named_groups(result: dict[str, Any], kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The all-rows entry and the entries of the groups an attacker subtracts: the named ones."""
    entries = [e for e in result[kind] if e["column"] == "bmi"]
    overall = next(e for e in entries if e["group"] is None)
    return overall, [e for e in entries if e["group"] not in (None, "(missing)")]


def test_d28_the_person_whose_group_is_null_is_not_all_rows_less_the_groups(sdc_cluster: Cluster) -> None:
    result = run_job(sdc_cluster, "cohort", GROUPED)
    overall, groups = named_groups(result, "summaries")

    count = difference(overall.get("count"), [g.get("count") for g in groups])
    total = difference(overall.get("sum"), [g.get("sum") for g in groups])
    mean = overall.get("mean")
    weighted = difference(
        mean * overall["count"] if mean is not None and overall.get("count") is not None else None,
        [g["mean"] * g["count"] if g.get("mean") is not None else None for g in groups],
    )
    assert count != 1
    assert total is None or total != pytest.approx(NULL_SEX_BMI)
    assert weighted is None or weighted != pytest.approx(NULL_SEX_BMI)

    hist_all, hist_groups = named_groups(result, "histograms")
    bins = [
        difference(hist_all["counts"][k], [g["counts"][k] for g in hist_groups])
        for k in range(len(EDGES) - 1)
    ]
    assert bins != [0, 0, 0, 1, 0]  # the person's bmi, 33.3, in [30, 35)

    # The rows whose sex is null are a cell of their own, suppressed like any small cell.
    missing = next(e for e in result["summaries"] if e["group"] == "(missing)")
    assert missing["suppressed"] is True and "count" not in missing and "sum" not in missing
    assert missing["reason"].startswith("suppressed at site-a/cohort: ")


def test_d28_a_value_outside_the_histogram_edges_is_not_the_count_less_the_bins(sdc_cluster: Cluster) -> None:
    result = run_job(sdc_cluster, "cohort", GROUPED)
    summaries = {e["group"]: e for e in result["summaries"]}
    histograms = {e["group"]: e for e in result["histograms"]}

    for group in (None, "F"):  # the outlier is a woman
        left = difference(summaries[group].get("count"), list(histograms[group]["counts"]))
        assert left != 1, group
        assert histograms[group]["outside"] is None and histograms[group]["outside_suppressed"] is True
    assert OUTLIER_BMI not in {v for e in result["summaries"] for v in e.values() if isinstance(v, float)}


@pytest.mark.parametrize(
    ("leave_out", "secret"),
    [
        ({"column": "bmi", "op": "!=", "value": OUTLIER_BMI}, OUTLIER_BMI),
        ({"column": "age", "op": "!=", "value": 90}, AGE_90_BMI),
    ],
    ids=["one-value", "one-of-fifteen-rows"],
)
def test_d28_a_filter_leaving_one_person_out_does_not_give_them_away(
    sdc_cluster: Cluster, leave_out: dict[str, Any], secret: float
) -> None:
    params: dict[str, Any] = {"columns": ["bmi"], "statistics": ["count", "sum"], "group_by": "sex"}
    everyone = {e["group"]: e for e in run_job(sdc_cluster, "cohort", params)["summaries"]}
    filtered = {
        e["group"]: e for e in run_job(sdc_cluster, "cohort", {**params, "filters": [leave_out]})["summaries"]
    }

    for group in (None, "F"):
        count = difference(everyone[group].get("count"), [filtered[group].get("count")])
        total = difference(everyone[group].get("sum"), [filtered[group].get("sum")])
        assert count != 1, group
        assert total is None or total != pytest.approx(secret), group
    assert filtered[None]["reason"].endswith("the filters leave out fewer than 10 of this cell's rows")
