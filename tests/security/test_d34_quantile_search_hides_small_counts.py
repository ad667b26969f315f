"""D34 (docs/threats.md): the quantile search must not show the orchestrator a site's small counts.

Exact quantiles are found by bisection: every round each site counts its values between thresholds
near the order statistic sought. Near the end those counts are 0, 1, 2: far below the minimum cell
count, and for a small group at one site they describe that site's few people value by value.

Through a real orchestrator and two real gateways on loopback, the orchestrator plays the attacker:
after a grouped quantile job it reads every message the sites sent it (the task results in its own
database) and tries to read one site's count for any search of any round. It wins if a single count
below `min_count` comes out as the site computed it. What it may learn is the pooled count, and the
quantiles stay exactly pandas'.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from custos.computations.stats.quantiles import counts_in, float_keys, thresholds
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

pytestmark = pytest.mark.integration

MIN_COUNT = 10
POLICY = {
    "dataset": "cohort",
    "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": ["bmi", "sex"]}],
    "min_count": MIN_COUNT,
}
PARAMS = {
    "columns": ["bmi"],
    "statistics": ["count"],
    "group_by": "sex",
    "quantiles": [{"column": "bmi", "probs": [0.1, 0.5, 0.9]}],
}


def cohort(seed: int, groups: dict[str, int]) -> pa.Table:
    rng = np.random.default_rng(seed)
    sex = [label for label, n in groups.items() for _ in range(n)]
    bmi = np.round(rng.normal(26, 4, len(sex)), 2)
    return pa.table({"bmi": pa.array(bmi), "sex": pa.array(sex)})


# site-b holds a group of 12 (it passes min_count 10 at the site and pooled), so it is searched.
TABLES = {
    "site-a/cohort": cohort(1, {"F": 140, "M": 130, "X": 30}),
    "site-b/cohort": cohort(2, {"F": 25, "M": 23, "X": 12}),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    gateways = [
        GatewaySetup(site.split("/")[0], f"hospital-{site[5]}", [DatasetSetup("cohort", table, POLICY)])
        for site, table in TABLES.items()
    ]
    cluster = Cluster(
        tmp_path_factory.mktemp("d34-quantiles"), gateways=gateways, users=[UserSetup("alice", "university")]
    )
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def site_messages(cluster: Cluster, job_id: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(site, round input, result) of every task of the job, as the orchestrator stored them."""
    database = cluster.work_dir / "state" / "orchestrator" / "orchestrator.db"
    query = "SELECT gateway, dataset, round_input, result FROM tasks WHERE job_id = ? ORDER BY round"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(query, (job_id,)).fetchall()
    return [(f"{g}/{d}", json.loads(r), json.loads(res)) for g, d, r, res in rows]


def true_counts(site: str, search: dict[str, Any], cuts: int) -> list[int]:
    """What the site computes for one search: its values of the cell in (lo, t] for each threshold t."""
    frame = TABLES[site].to_pandas()
    cell = frame if search["group"] is None else frame[frame["sex"] == search["group"]]
    keys = np.sort(float_keys(cell[search["column"]].dropna().to_numpy(dtype=np.float64)))
    return counts_in(keys, search["lo"], thresholds(search["lo"], search["hi"], cuts))


def read_counts(answer: dict[str, Any]) -> list[int]:
    """The attacker's reading of one site's answer: its counts as sent, or its opaque field decoded
    as the integers it carries."""
    if "counts" in answer:
        return [int(c) for c in answer["counts"]]
    raw = base64.b64decode(answer["masked"])
    return [int(v) for v in np.frombuffer(raw, dtype="<u8")]


def test_d34_the_orchestrator_reads_no_site_count_of_the_search_only_pooled_ones(
    deployment: Cluster,
) -> None:
    with deployment.client("alice") as alice:
        spec = alice.create_spec("quantiles", "stats@1.0.0", sorted(TABLES), ["bmi", "sex"])
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, PARAMS)
        alice.wait_job(job.id, timeout=180)
        result = dict(alice.job_result(job.id).data)

    # The exactness is kept: every quantile, grouped too, equals pandas on the pooled rows.
    pooled = pd.concat([t.to_pandas() for t in TABLES.values()], ignore_index=True)
    assert len(result["quantiles"]) == 4 * 3
    for entry in result["quantiles"]:
        cell = pooled if entry["group"] is None else pooled[pooled["sex"] == entry["group"]]
        if entry.get("suppressed"):  # read from a group's tail: one person's value (the extremes rule)
            assert "smallest or largest values are withheld" in entry["reason"], entry
            continue
        assert entry["value"] == cell["bmi"].quantile(entry["prob"]), entry
    assert any(not e.get("suppressed") for e in result["quantiles"])

    small_seen = 0
    leaks: list[tuple[int, str]] = []
    pooled_sums: dict[tuple[int, int], list[int]] = {}
    truths: dict[tuple[int, int], list[int]] = {}
    for site, round_input, message in site_messages(deployment, job.id):
        if round_input["phase"] != "quantiles":
            continue
        searches = {s["id"]: s for s in round_input["searches"]}
        for answer in message["searches"]:
            search = searches[answer["id"]]
            truth = true_counts(site, search, round_input["thresholds"])
            seen = read_counts(answer)
            small = [j for j, count in enumerate(truth) if count < MIN_COUNT]
            small_seen += len(small)
            where = f"{site}, round {round_input['round']}, search {search['id']} (group {search['group']})"
            leaks += [(truth[j], f"{where}: {truth[j]}") for j in small if seen[j] == truth[j]]
            key = (round_input["round"], search["id"])
            before = pooled_sums.get(key, [0] * len(seen))
            pooled_sums[key] = [(a + b) % 2**64 for a, b in zip(before, seen, strict=True)]
            truths[key] = [a + b for a, b in zip(truths.get(key, [0] * len(truth)), truth, strict=True)]
    # The attack had something to find: a bisection's counts end small at every site.
    assert small_seen > 100
    shown = [text for _, text in sorted(leaks, key=lambda leak: leak[0] == 0)[:6]]
    assert not leaks, (
        f"the orchestrator reads {len(leaks)} counts below {MIN_COUNT} as sites sent them: {shown}"
    )
    # What the orchestrator does learn is the pooled count of each step, and only that.
    assert pooled_sums == truths
