"""Custodians in real Chromium: reviewing code (highlighted, beside the author's mock run or saying
there is none, with the diff against the author's previous request, denied with a reason in the page,
approved with the CLI command the page shows), and releasing a table whose small cells the gateway
flagged, which needs a second reviewer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import SITE_AUTHORIZATION
from tests.e2e.harness import Portal, running_portal

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

DATASET = "site-a/patients_code"
POLICY = {
    "dataset": "patients_code",
    "grants": [{"orgs": ["university"], "models": ["custom"], "columns": ["age", "region", "diagnosis"]}],
    "custom_code": "review",
    "release": "two",
    "min_count": 10,
}
FIRST = """def counts(dal, datasets, params):
    frame = dal.read(datasets[0], ["region", "diagnosis"]).to_pandas()
    return frame.groupby("region", as_index=False).size()
"""
SECOND = """def counts(dal, datasets, params):
    frame = dal.read(datasets[0], ["region", "diagnosis"]).to_pandas()
    # By region and diagnosis: some cells will be small.
    return frame.groupby(["region", "diagnosis"], as_index=False).size()
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    table = synthetic_patients(150, site=0, seed=11)
    gateways = [
        GatewaySetup(
            "site-a",
            "hospital-a",
            [DatasetSetup("patients_code", table, POLICY)],
            authorization=SITE_AUTHORIZATION,
        )
    ]
    users = [
        UserSetup("alice", "university"),
        UserSetup("carol", "hospital-a", "org_admin"),
        UserSetup("dave", "hospital-a", "org_admin"),
    ]
    with running_portal(tmp_path_factory.mktemp("portal-review"), gateways=gateways, users=users) as p:
        yield p


def test_a_custodian_reviews_code_and_two_reviewers_release_a_flagged_table(portal: Portal) -> None:
    cluster = portal.cluster
    with cluster.client("alice") as alice:
        first = alice.submit(FIRST, [DATASET], function="counts")
        second = alice.submit(SECOND, [DATASET], function="counts", mock_run=True)
        mock_rows = alice.run_on_mock(SECOND, [DATASET], function="counts")[DATASET]

    with portal.session("carol") as (page, watch):
        portal.check_accessibility(page)
        queue = page.locator("table", has_text="Code waiting for hospital-a's review").inner_text()
        assert first.id in queue and second.id in queue

        portal.visit(page, f"/code/{first.id}")
        assert "No mock run was attached" in page.locator("section[aria-labelledby=mock]").inner_text()
        page.get_by_label("Reason (the researcher reads it)").fill(
            "by region alone says little; add the diagnosis"
        )
        page.get_by_role("button", name="Deny").click()
        page.wait_for_url(portal.url(f"/code/{first.id}"))
        assert "denied" in page.locator("dl.facts").inner_text()
        assert "add the diagnosis" in page.locator("#decisions ~ table").inner_text()

        portal.visit(page, f"/code/{second.id}")
        assert page.locator(".code .k", has_text="def").count() >= 1  # highlighted by Pygments
        added = page.locator(".diff pre.add").all_inner_texts()
        assert any('groupby(["region", "diagnosis"]' in line for line in added)
        assert f"custos code approve {second.id}" in page.locator("pre.text").inner_text()
        mock = page.locator("section[aria-labelledby=mock]")
        assert "Mock run (from the author's machine, not verified)" in mock.locator("h2").inner_text()
        assert (
            f"{DATASET} (a table of {len(mock_rows)} rows and 3 columns)" in mock.locator("h3").inner_text()
        )
        header = mock.locator("table.data th").all_inner_texts()
        assert header == ["region", "diagnosis", "size"]
        first_row = mock.locator("table.data tbody tr").first.locator("td").all_inner_texts()
        assert first_row == [str(v) for v in mock_rows.iloc[0].tolist()]
        assert mock.locator("table.data tbody tr").count() == len(mock_rows)
        portal.screenshot(page, "code-review")
        watch.check()

    with cluster.client("carol") as carol:
        carol.approve_code(second.id, "aggregates only")
    with cluster.client("alice") as alice:
        job = alice.run_code(second.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"

    with portal.session("carol") as (page, watch):
        portal.visit(page, "/releases")
        page.get_by_role("link", name=page.locator("td a[href^='/releases/']").first.inner_text()).click()
        portal.check_accessibility(page)
        assert "two distinct reviewers" in page.locator("#parts").inner_text()
        flagged = page.locator("td.flagged")
        assert flagged.count() >= 1
        assert "min_count" in flagged.first.inner_text()
        portal.screenshot(page, "release-review")
        page.get_by_label("Comment").fill("small cells checked")
        page.get_by_role("button", name="Approve for hospital-a").click()
        assert page.locator("#release-state").inner_text() == "partially_reviewed"
        assert "carol" in page.locator("#parts").inner_text()
        assert page.get_by_role("button", name="Approve for hospital-a").count() == 0  # one vote each
        release_url = page.url
        watch.check()

    with portal.session("dave") as (page, watch):
        page.goto(release_url)
        portal.check_accessibility(page)
        page.get_by_role("button", name="Approve for hospital-a").click()
        assert page.locator("#release-state").inner_text() == "released"
        watch.check()
    with cluster.client("alice") as alice:
        assert alice.job(job.id).state == "succeeded"
