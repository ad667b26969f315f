"""Safe people, end to end with real processes (issue 3): a site's own authorization file overrules
the orchestrator, a site added later joins without touching anyone's kit, and a revoked certificate
is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.core.errors import AuthenticationFailed, Conflict
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.pki.revocation import revoke_participant

pytestmark = pytest.mark.integration

POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university", "elsewhere"], "models": ["stats@>=1.0,<2"], "columns": ["age"]}],
    "min_count": 10,
}
BLOCK_MALLORY = {
    "format_version": 1,
    "permissions": {
        "project_admin": "any",
        "lead_researcher": {
            "submit_job": ["not n:mallory", "any"],
            "activate_spec": ["not n:mallory", "any"],
        },
    },
}
COUNT = {"columns": ["age"], "statistics": ["count"]}


def _site(name: str, org: str, seed: int, authorization: dict[str, object] | None = None) -> GatewaySetup:
    table = synthetic_patients(200, site=seed, seed=seed)
    return GatewaySetup(name, org, [DatasetSetup("patients", table, POLICY)], authorization=authorization)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(
        tmp_path_factory.mktemp("lifecycle"),
        gateways=[_site("site-a", "hospital-a", 1, BLOCK_MALLORY), _site("site-b", "hospital-b", 2)],
        users=[
            UserSetup("alice", "university"),
            UserSetup("mallory", "elsewhere"),
            UserSetup("root", "operator", "project_admin"),
        ],
    ) as running:
        yield running


def test_c22_a_site_refuses_a_submitter_its_authorization_blocks(cluster: Cluster) -> None:
    with cluster.client("mallory") as mallory:
        # The orchestrator accepts: the asset policy grants mallory's org.
        spec = mallory.create_spec("blocked", "stats@1.0.0", ["site-a/patients"], ["age"])
        with pytest.raises(Conflict, match=r"site-a refused.*blocked by 'not n:mallory'"):
            mallory.activate_spec(spec.id, timeout=60)
        # site-b has the default rules, and lets mallory in.
        other = mallory.create_spec("allowed", "stats@1.0.0", ["site-b/patients"], ["age"])
        assert mallory.activate_spec(other.id, timeout=60).state == "active"


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "ca" not in p.relative_to(folder).parts
    }


def test_a_site_added_later_joins_and_no_existing_kit_changes(cluster: Cluster) -> None:
    before = _digests(cluster.kits_dir)
    cluster.add_gateway(_site("site-d", "hospital-d", 4))
    after = _digests(cluster.kits_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert {k.split("/")[0] for k in after.keys() - before.keys()} == {"site-d", "admin@hospital-d"}
    with cluster.client("alice") as alice:
        spec = alice.create_spec("new-site", "stats@1.0.0", ["site-a/patients", "site-d/patients"], ["age"])
        alice.activate_spec(spec.id, timeout=60)
        job = alice.wait_job(alice.submit_job(spec.id, COUNT).id, timeout=120)
        assert job.state == "succeeded"
        assert {t.gateway for t in job.tasks} == {"site-a", "site-d"}


def test_e39_a_revoked_certificate_is_refused_once_the_list_is_pushed(cluster: Cluster) -> None:
    with cluster.client("alice") as before:
        assert before.me().name == "alice"
    revocation = revoke_participant(cluster.kits_dir, "alice", reason="left the project")
    with cluster.client("root") as root:
        root.publish_revocations(revocation.path.read_text())
    with (
        pytest.raises(AuthenticationFailed, match="certificate for alice was revoked on"),
        cluster.client("alice") as after,
    ):
        after.me()
    with cluster.client("mallory") as mallory:  # everyone else carries on
        assert mallory.me().name == "mallory"
