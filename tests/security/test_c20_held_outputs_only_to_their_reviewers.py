"""C20 (docs/threats.md) through real processes: a held output, a file's bytes included, reaches only
the reviewers of the org whose site produced it.

Approved custom code over `site-a` (hospital-a) and `site-b` (hospital-b) returns a CSV file from each
site, held for review. hospital-a's custodian lists, views and downloads site-a's file (its bytes are
checked against the digest); site-b's output and its blob answer 404 to them, as an unknown one does.
The researcher who wrote the code, a researcher of another org and a custodian of an org with no part
in the release fetch nothing. Every view and download is in the orchestrator's audit trail.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from custos.audit import read_events
from custos.core.errors import NotFound, PermissionDenied
from custos.local.cluster import Cluster
from custos.pki.kit import load_kit
from custos.sdk.session import root_ssl_context

pytestmark = pytest.mark.integration

DATASETS = ["site-a/patients_code", "site-b/patients_code"]
ADMIN_A, ADMIN_B, ADMIN_C = "admin@hospital-a", "admin@hospital-b", "admin@hospital-c"
SITE_A, SITE_B = DATASETS


def rows_as_csv(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    ages = dal.read(datasets[0], ["age"]).to_pandas()["age"]
    return f"rows,mean_age\n{len(ages)},{ages.mean():.3f}\n".encode()


def _get(cluster: Cluster, user: str, path: str) -> httpx.Response:
    """A raw GET of the API as `user`, as a portal or a script would make it."""
    with cluster.client(user) as client:
        token = client.create_token(f"c20-{user}").token
    kit = load_kit(cluster.kit_dir(user))
    with httpx.Client(base_url=cluster.url, verify=root_ssl_context(kit.root_path)) as http:
        return http.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def held(cluster: Cluster) -> tuple[str, str]:
    """A release of custom code's CSV files from site-a and site-b: (release id, job id)."""
    with (
        cluster.client("alice") as alice,
        cluster.client(ADMIN_A) as admin_a,
        cluster.client(ADMIN_B) as admin_b,
    ):
        request = alice.submit(rows_as_csv, DATASETS, output="file:csv")
        admin_a.approve_code(request.id, "a count per site")
        admin_b.approve_code(request.id, "a count per site")
        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"
        (release,) = [r for r in admin_a.releases() if r.job_id == job.id]
        return release.id, job.id


def test_c20_a_reviewer_fetches_their_own_site_s_file_and_nothing_of_another_org_s(
    cluster: Cluster, held: tuple[str, str], tmp_path: Path
) -> None:
    release_id, job_id = held
    with cluster.client(ADMIN_A) as admin_a, cluster.client(ADMIN_B) as admin_b:
        mine = admin_a.release_outputs(release_id)
        assert [(o.name, o.org, o.kind, o.file_type) for o in mine] == [(SITE_A, "hospital-a", "file", "csv")]
        (theirs,) = admin_b.release_outputs(release_id)
        assert theirs.name == SITE_B
        data = admin_a.fetch_release_output(release_id, SITE_A)
        assert isinstance(data, bytes) and data.startswith(b"rows,mean_age\n20000,")
        assert hashlib.sha256(data).hexdigest() == mine[0].blobs[0].sha256
        assert theirs.blobs[0].sha256 != mine[0].blobs[0].sha256  # the sites' data, so their files, differ

        # The attack: hospital-a's custodian asks for site-b's output by name, and for its bytes by digest.
        with pytest.raises(NotFound, match=f"has no output {SITE_B} that you review"):
            admin_a.release_output(release_id, SITE_B)
    stolen = _get(cluster, ADMIN_A, f"/releases/{release_id}/blobs/{theirs.blobs[0].sha256}")
    assert stolen.status_code == 404 and "site-b" not in stolen.text and b"mean_age" not in stolen.content
    by_path = _get(cluster, ADMIN_A, f"/releases/{release_id}/outputs/site-b/patients_code")
    assert by_path.status_code == 404

    # The CLI: one output on screen, and its bytes to a file.
    kit = str(cluster.kit_dir(ADMIN_A))
    argv = [sys.executable, "-m", "custos.cli", "release"]
    shown = subprocess.run(
        [*argv, "show", release_id, "--output", SITE_A, "--kit", kit],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "csv" in shown.stdout and mine[0].blobs[0].sha256 in shown.stdout
    out = tmp_path / "site-a.csv"
    fetched = subprocess.run(
        [*argv, "fetch", release_id, "--output", SITE_A, "--out", str(out), "--kit", kit],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == data
    refused = subprocess.run(
        [*argv, "fetch", release_id, "--output", SITE_B, "--out", str(tmp_path / "b.csv"), "--kit", kit],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert not (tmp_path / "b.csv").exists()

    events = [
        e for e in read_events(cluster.work_dir / "state" / "orchestrator" / "audit.log") if e.job == job_id
    ]
    viewed = {(e.action, e.user, e.message) for e in events if e.action.startswith("release_")}
    assert ("release_output_viewed", ADMIN_A, f"{release_id}: {SITE_A}") in viewed
    fetched_events = [e for e in events if e.action == "release_blob_fetched" and e.user == ADMIN_A]
    assert len(fetched_events) == 2  # the SDK's fetch and the CLI's (showing a file fetches no bytes)
    assert all(SITE_A in e.message and SITE_B not in e.message for e in fetched_events)


@pytest.mark.parametrize(
    ("user", "status"),
    [("alice", 403), ("mallory", 403), (ADMIN_C, 404)],
    ids=["the author", "a researcher of another org", "a custodian with no part"],
)
def test_c20_nobody_but_the_release_s_reviewers_fetches_a_held_output(
    cluster: Cluster, held: tuple[str, str], user: str, status: int
) -> None:
    release_id, _ = held
    with cluster.client(ADMIN_A) as admin_a:
        (output,) = admin_a.release_outputs(release_id)
    for path in (
        f"/releases/{release_id}/outputs",
        f"/releases/{release_id}/outputs/site-a/patients_code",
        f"/releases/{release_id}/blobs/{output.blobs[0].sha256}",
    ):
        answer = _get(cluster, user, path)
        assert answer.status_code == status, (path, answer.text)
        assert b"mean_age" not in answer.content
    with cluster.client(user) as client, pytest.raises(PermissionDenied if status == 403 else NotFound):
        client.fetch_release_output(release_id, SITE_A)
