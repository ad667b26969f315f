"""The deployment behind the disclosure-control attacks (D28, D32-D34): two sites holding one small
cohort, registered under several disclosure policies, and the people the attacks are after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

SITES = ("site-a", "site-b")
COLUMNS = ["age", "sex", "bmi"]
# All at site-a: the person whose sex is null, the one whose bmi lies above every histogram edge, and
# the only one with a bmi among the 15 rows of age 90.
NULL_SEX_BMI = 33.3
OUTLIER_BMI = 57.3
AGE_90_BMI = 29.9
# dataset -> its policy's privacy.disclosure
POLICIES: dict[str, dict[str, Any]] = {
    "cohort": {"min_count": 10},
    "cohort_r5": {"min_count": 10, "rounding": "nearest", "round_to": 5},
    "cohort_m6": {"min_count": 8, "rounding": "midpoint6"},
    "cohort_tfc": {"min_count": 10, "rounding": "nearest", "round_to": 5, "totals_from_cells": True},
    "cohort_ext": {"min_count": 10, "extremes_min_count": 20},
}


def cohort(site: int) -> pa.Table:
    """A site's rows: at each site 20 rows of age 18 (the minimum) and the rest 19 to 89; bmi from 16
    to 39.9 with one decimal; 152 women of 300 at site-a and 150 of 299 at site-b, so that rounded
    counts differ from the exact ones. site-a also holds the people above, and 14 more rows of age 90
    whose bmi is null."""
    rng = np.random.default_rng(31 + site)
    n, women = (300, 152) if site == 0 else (299, 150)
    sex: list[str | None] = ["F"] * women + ["M"] * (n - women)
    age = rng.integers(19, 90, n)
    age[:20] = 18
    bmi: list[float | None] = [float(v) for v in np.round(rng.uniform(16.0, 39.9, n), 1)]
    bmi = [20.0 if v in (NULL_SEX_BMI, AGE_90_BMI) else v for v in bmi]
    if site == 0:
        sex[25], bmi[25] = None, NULL_SEX_BMI
        bmi[26] = OUTLIER_BMI
        age[30:45] = 90
        bmi[30:45] = [AGE_90_BMI] + [None] * 14
    return pa.table({"age": pa.array(age, pa.int64()), "sex": sex, "bmi": pa.array(bmi, pa.float64())})


def pooled_frame() -> Any:
    return pa.concat_tables([cohort(i) for i in range(len(SITES))]).to_pandas()


def policy(dataset: str) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": COLUMNS}],
        "privacy": {"disclosure": POLICIES[dataset]},
    }


def start_cluster(work: Path) -> Cluster:
    gateways = [
        GatewaySetup(
            name,
            f"hospital-{name[-1]}",
            [DatasetSetup(dataset, cohort(i), policy(dataset)) for dataset in POLICIES],
        )
        for i, name in enumerate(SITES)
    ]
    cluster = Cluster(work, gateways=gateways, users=[UserSetup("alice", "university")])
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        cluster.stop()
        raise
    return cluster


def run_job(cluster: Cluster, dataset: str, params: dict[str, Any]) -> dict[str, Any]:
    """One stats job over `dataset` at both sites, as alice: its result."""
    alice = cluster.client("alice")
    spec = alice.create_spec(f"attack-{dataset}", "stats@1.0.0", [f"{s}/{dataset}" for s in SITES], COLUMNS)
    alice.activate_spec(spec.id)
    job = alice.submit_job(spec.id, params)
    alice.wait_job(job.id, timeout=120)
    return dict(alice.job_result(job.id).data)
