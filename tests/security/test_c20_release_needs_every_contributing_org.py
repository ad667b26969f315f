"""C20 (docs/threats.md) through real processes: a custodian releases only their own org's part.

Approved custom code over `site-a` (hospital-a) and `site-b` (hospital-b) is run on both sites' data
and held for review. hospital-b's custodian approving releases nothing: the job still waits, and the
researcher cannot download the result, hospital-a's output included, until hospital-a's custodian
approves too. Each custodian reads only their own site's output in the held result. `custos release
show` prints each org's part of the review.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner, Result

from custos.cli.main import app as cli_app
from custos.core.errors import Conflict
from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

DATASETS = ["site-a/patients_code", "site-b/patients_code"]
ADMIN_A, ADMIN_B = "admin@hospital-a", "admin@hospital-b"


def rows_per_site(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    return {"rows": dal.read(datasets[0], ["age"]).num_rows}


def custos_cli(cluster: Cluster, user: str, *args: str) -> Result:
    """The `custos` command line, in process, signed in as `user`."""
    env = {"COLUMNS": "200", "CUSTOS_KIT": str(cluster.kit_dir(user))}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_c20_one_org_s_approval_releases_nothing_of_a_two_org_result(cluster: Cluster) -> None:
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin_a:
        with cluster.client(ADMIN_B) as admin_b:
            request = alice.submit(rows_per_site, DATASETS, output="json")
            assert request.orgs == ["hospital-a", "hospital-b"]
            admin_a.approve_code(request.id, "counts only")
            admin_b.approve_code(request.id, "counts only")
            job = alice.run_code(request.id)
            assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"
            (held,) = [r for r in admin_b.releases() if r.job_id == job.id]
            assert held.orgs == ["hospital-a", "hospital-b"]

            voted = admin_b.approve_release(held.id, "site-b's count is fine")
            assert (voted.state, voted.job_state) == ("partially_reviewed", "awaiting_release")
            assert (voted.approvals, voted.required) == (1, 2)
            assert [(p.org, p.state, p.approvals, p.required) for p in voted.parts] == [
                ("hospital-a", "pending", 0, 1),
                ("hospital-b", "approved", 1, 1),
            ]
            # hospital-b's custodian reviews site-b's output; site-a's is hospital-a's to read.
            seen_by_b = admin_b.release(held.id)
            assert list(seen_by_b.result["sites"]) == ["site-b/patients_code"]
            assert seen_by_b.withheld == ["site-a/patients_code"]
            seen_by_a = admin_a.release(held.id)
            assert list(seen_by_a.result["sites"]) == ["site-a/patients_code"]
            assert seen_by_a.withheld == ["site-b/patients_code"]
            # Nothing of the result leaves, hospital-a's part least of all.
            with pytest.raises(
                Conflict, match=r"held for release review \(1 of 2 reviews; waiting for hospital-a\)"
            ):
                alice.code_result(job.id)
            assert alice.job(job.id).state == "awaiting_release"
            # hospital-b cannot approve again, nor stand in for hospital-a.
            with pytest.raises(Conflict, match=f"{ADMIN_B} already voted approve"):
                admin_b.approve_release(held.id)

            shown = custos_cli(cluster, ADMIN_B, "release", "show", held.id)
            assert shown.exit_code == 0, shown.output
            lines = [" ".join(line.split()) for line in shown.output.splitlines()]
            assert "reviews 1 of 2 approvals; waiting for hospital-a" in lines
            assert "hospital-a site-a/patients_code 0 of 1 pending" in lines
            assert f"hospital-b site-b/patients_code 1 of 1 approved {ADMIN_B}" in lines
            assert "not shown, other orgs' parts: site-a/patients_code" in lines

            released = admin_a.approve_release(held.id, "site-a's count is fine")
            assert (released.state, released.job_state) == ("released", "succeeded")
            assert [p.state for p in released.parts] == ["approved", "approved"]
        outputs = alice.code_result(job.id)
    assert set(outputs) == set(DATASETS)
    assert all(output["rows"] > 0 for output in outputs.values())
