"""Threat D32 (docs/threats.md) in a dataset's public metadata: a category that fewer rows than the
policy's `min_count` hold is a small cell, and naming it tells everyone that someone has it. Through a
real gateway: neither the published schema nor the mock names such a category (it is published as
`(other)`), and the rows computations read hold `(other)` in its place, so a frequency table cannot
show it and a filter naming it finds nothing.

`cohort` has the policy's older top-level `min_count: 10`; `cohort_strict` the same rows with
`min_count: 5` and `privacy.disclosure.min_count: 20`, of which the larger is in force.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

OTHER = "(other)"
COLUMNS = ["age", "sex", "region", "diagnosis"]
# 600 rows: two categories under 10 rows, one of exactly 10, one of 15 (under 20), and nulls.
DIAGNOSES = {"asthma": 220, "copd": 200, "diabetes": 151, "hypertension": 15, "lupus": 10}
RARE = {"rare-disorder": 3, "very-rare": 1}
MIN_COUNT = {"cohort": 10, "cohort_strict": 20}


def cohort_table() -> pa.Table:
    rng = np.random.default_rng(37)
    diagnosis = [d for d, n in {**DIAGNOSES, **RARE}.items() for _ in range(n)]
    rng.shuffle(diagnosis)
    table = synthetic_patients(len(diagnosis), site=0, seed=37).select(["patient_id", *COLUMNS])
    return table.set_column(table.schema.get_field_index("diagnosis"), "diagnosis", pa.array(diagnosis))


TABLE = cohort_table()


def policy(dataset: str, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": COLUMNS}],
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    datasets = [
        DatasetSetup("cohort", TABLE, policy("cohort", min_count=10)),
        DatasetSetup(
            "cohort_strict",
            TABLE,
            policy("cohort_strict", min_count=5, privacy={"disclosure": {"min_count": 20}}),
        ),
    ]
    site = GatewaySetup("site-a", "hospital-a", datasets)
    work = tmp_path_factory.mktemp("rare-categories")
    with Cluster(work, gateways=[site], users=[UserSetup("alice", "university")], project="rare") as c:
        yield c


def held_by(column: str) -> Counter[str]:
    return Counter(v for v in TABLE.column(column).to_pylist() if v is not None)


@pytest.mark.parametrize("dataset", ["cohort", "cohort_strict"])
def test_d32_the_schema_and_the_mock_name_no_category_under_min_count(cluster: Cluster, dataset: str) -> None:
    least = MIN_COUNT[dataset]
    with cluster.client("alice") as alice:
        published = alice.dataset(f"site-a/{dataset}")
        mock = alice.mock(f"site-a/{dataset}")

    categorical = {c.name: c.categories or [] for c in published.schema.columns if c.kind == "categorical"}
    assert set(categorical) == {"sex", "region", "diagnosis"}
    for column, categories in categorical.items():
        counts = held_by(column)
        assert all(counts[c] >= least for c in categories if c != OTHER), (column, categories)
        # Every value the data holds is a published category or counted under (other).
        assert (OTHER in categories) == any(0 < n < least for n in counts.values()), column
    kept = sorted(d for d, n in DIAGNOSES.items() if n >= least)
    assert categorical["diagnosis"] == [*kept, OTHER]

    hidden = {d for d, n in {**DIAGNOSES, **RARE}.items() if n < least}
    for column, categories in categorical.items():
        assert set(mock[column].dropna()) <= set(categories), column
    text = {str(v) for column in mock.columns for v in mock[column].dropna()}
    assert not text & hidden


def run_stats(alice: Client, params: dict[str, Any]) -> dict[str, Any]:
    spec = alice.create_spec("probe", "stats@1.0.0", ["site-a/cohort"], COLUMNS)
    alice.activate_spec(spec.id)
    job = alice.submit_job(spec.id, params)
    alice.wait_job(job.id, timeout=120)
    return dict(alice.job_result(job.id).data)


def test_d32_a_frequency_table_or_a_filter_cannot_show_a_rare_category(cluster: Cluster) -> None:
    with cluster.client("alice") as alice:
        table = run_stats(alice, {"columns": ["diagnosis"]})
        probe = run_stats(
            alice,
            {
                "columns": ["age"],
                "statistics": ["count"],
                "filters": [{"column": "diagnosis", "op": "==", "value": "rare-disorder"}],
            },
        )

    rows = {r["category"]: r for r in table["frequencies"] if r["column"] == "diagnosis"}
    assert set(rows) == {*DIAGNOSES, OTHER}
    # 4 rows: suppressed like any small cell, with its reason and without its count.
    assert rows[OTHER]["suppressed"] is True and "count" not in rows[OTHER]
    assert rows["asthma"]["count"] == DIAGNOSES["asthma"]
    # The rare value is (other) in every row a computation reads: the filter matches nothing, and
    # its count is a published 0, the same as for a value nobody has.
    (everyone,) = [r for r in probe["summaries"] if r["group"] is None]
    assert everyone["count"] == 0
