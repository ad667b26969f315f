"""Threat D32 (docs/threats.md) for custom code: a table that approved code returns is checked by the
gateway under the dataset's disclosure rules before it reaches its reviewers. A count of 3 (and the
cell that would give it back by subtraction, and the mean beside each) is flagged in the release
record, which `custos release show` prints; under `custom_outputs: enforce` those cells are suppressed
and the counts rounded as the policy says, so what the reviewers approve is what leaves.

Real processes: an orchestrator and a gateway on loopback, the real sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from custos.core.wire import ReleaseDetail
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

ADMIN = "admin@hospital-a"
TABLE = synthetic_patients(600, site=0, seed=1)
DIAGNOSES = Counter(TABLE.column("diagnosis").to_pylist())
COLUMNS = ["age", "diagnosis"]
AUTHORIZATION: dict[str, Any] = {
    "format_version": 1,
    "permissions": {
        "org_admin": {"submit_job": "o:site", "activate_spec": "o:site"},
        "lead_researcher": {"submit_job": "any", "activate_spec": "any", "custom_code": "any"},
    },
}


def policy(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": name,
        "grants": [{"orgs": ["university"], "models": ["custom"], "columns": COLUMNS}],
        "custom_code": "review",
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    enforce = policy(
        "patients_enforce",
        custom_outputs="enforce",
        privacy={"disclosure": {"rounding": "nearest", "round_to": 5}},
    )
    datasets = [
        DatasetSetup("patients", TABLE, policy("patients")),
        DatasetSetup("patients_enforce", TABLE, enforce),
    ]
    site = GatewaySetup("site-a", "hospital-a", datasets, authorization=AUTHORIZATION)
    work = tmp_path_factory.mktemp("d32-custom")
    with Cluster(work, gateways=[site], users=[UserSetup("alice", "university")], project="d32c") as c:
        yield c


def by_diagnosis(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    frame = dal.read(datasets[0], ["diagnosis", "age"]).to_pandas()
    return frame.groupby("diagnosis", as_index=False).agg(n=("age", "size"), mean_age=("age", "mean"))


def held(cluster: Cluster, dataset: str) -> ReleaseDetail:
    with cluster.client("alice") as alice, cluster.client(ADMIN) as admin:
        request = alice.submit(by_diagnosis, [f"site-a/{dataset}"], {}, output="table")
        admin.approve_code(request.id, "counts and means by diagnosis")
        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"
        release = next(r for r in admin.releases() if r.job_id == job.id)
        return admin.release(release.id)


def custos(*args: str) -> str:
    """The `custos` command line, as a reviewer runs it; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    done = subprocess.run(
        [sys.executable, "-m", "custos.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_d32_a_count_of_three_in_a_custom_table_is_flagged_in_the_release_record(cluster: Cluster) -> None:
    assert DIAGNOSES["rare-disorder"] == 3  # the small cell this test is about
    release = held(cluster, "patients")
    output = release.result["sites"]["site-a/patients"]
    labels = [row[0] for row in output["rows"]]
    rare, copd = labels.index("rare-disorder"), labels.index("copd")
    assert output["rows"][rare][1] == 3  # flagged, not changed: the reviewers decide
    found = {(f.row, f.column, f.rule, f.value_class, f.action) for f in release.flags}
    assert (rare, "n", "min_count", "count", "flagged") in found
    assert (rare, "mean_age", "min_count", "magnitude", "flagged") in found
    # The next smallest count, which would give the 3 back from the total, is flagged too.
    assert DIAGNOSES["copd"] == min(n for d, n in DIAGNOSES.items() if d != "rare-disorder")
    assert (copd, "n", "secondary", "count", "flagged") in found
    assert {f.dataset for f in release.flags} == {"site-a/patients"}
    assert all("3" not in f.reason for f in release.flags if f.row == rare)  # no value in a flag

    shown = custos("release", "show", release.id, "--kit", str(cluster.kit_dir(ADMIN)))
    assert "automatic checks of site-a/patients" in shown
    cells = [line.split()[:5] for line in shown.splitlines()]
    assert [str(rare), "n", "min_count", "count", "flagged"] in cells, shown


def test_d32_under_custom_outputs_enforce_the_cells_are_suppressed_and_the_counts_rounded(
    cluster: Cluster,
) -> None:
    release = held(cluster, "patients_enforce")
    rows = {row[0]: row[1:] for row in release.result["sites"]["site-a/patients_enforce"]["rows"]}
    assert rows["rare-disorder"] == [None, None] and rows["copd"] == [None, None]
    for diagnosis, (n, mean_age) in rows.items():
        if n is not None:
            assert n % 5 == 0 and abs(n - DIAGNOSES[diagnosis]) <= 2 and mean_age is not None
    actions = {(f.column, f.rule, f.action) for f in release.flags}
    assert ("n", "min_count", "suppressed") in actions and ("n", "rounding", "rounded") in actions
    with cluster.client(ADMIN) as admin, cluster.client("alice") as alice:
        admin.approve_release(release.id, "suppressed by the gateway")
        released = alice.code_result(release.job_id)["site-a/patients_enforce"]
    assert released.set_index("diagnosis").loc["rare-disorder"].isna().all()
