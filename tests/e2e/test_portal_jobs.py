"""A researcher's jobs in real Chromium: the list, a finished job's tasks and its histogram drawn as
SVG with the numbers behind it, the downloads; a job whose site is down shows its waiting task and,
by itself (htmx polling), that the site went offline; the cancel button cancels it; after a DP job,
her budget page charts what it spent with the ledger behind the chart."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from tests.e2e.harness import Portal, running_portal

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": ["age", "sex", "bmi"]}],
    "min_count": 10,
}
DP_POLICY = POLICY | {
    "dataset": "patients_dp",
    "privacy": {
        "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
        "budget": {"epsilon_per_researcher": 3.0, "epsilon_per_org": 10.0},
    },
}
SITES = ["site-a/patients", "site-b/patients"]
PARAMS = {
    "columns": ["age", "bmi"],
    "statistics": ["count", "mean"],
    "histograms": [{"column": "age", "edges": [0, 20, 40, 60, 80, 120]}],
}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    dp = [DatasetSetup("patients_dp", synthetic_patients(400, site=0, seed=6), DP_POLICY)]
    gateways = [
        GatewaySetup(
            name,
            org,
            [DatasetSetup("patients", synthetic_patients(400, site=i, seed=5), POLICY)]
            + (dp if i == 0 else []),
        )
        for i, (name, org) in enumerate([("site-a", "hospital-a"), ("site-b", "hospital-b")])
    ]
    users = [UserSetup("alice", "university"), UserSetup("bob", "university", "member_researcher")]
    with running_portal(tmp_path_factory.mktemp("portal-jobs"), gateways=gateways, users=users) as p:
        yield p


def _spec(portal: Portal) -> str:
    with portal.cluster.client("alice") as alice:
        spec = alice.create_spec("ages", "stats@1.0.0", SITES, ["age", "bmi"])
        alice.activate_spec(spec.id)
        return spec.id


def test_a_researcher_reads_her_jobs_histogram_and_downloads_it(portal: Portal) -> None:
    spec_id = _spec(portal)
    with portal.cluster.client("alice") as alice:
        job = alice.submit_job(spec_id, PARAMS)
        alice.wait_job(job.id, timeout=120)
    with portal.session("alice") as (page, watch):
        portal.visit(page, "/jobs")
        assert job.id in page.locator("table").inner_text()
        page.get_by_role("link", name=job.id).click()
        portal.check_accessibility(page)
        assert page.locator("#job-state").inner_text() == "succeeded"
        chart = page.get_by_role("img", name="Histogram of age")
        assert chart.is_visible()
        assert chart.locator("rect.bar").count() == 5
        page.get_by_text("The numbers behind “Histogram of age”").click()
        numbers = page.locator("figure table").first.inner_text()
        assert "from" in numbers and "count" in numbers
        portal.screenshot(page, "job")

        csv_link = page.get_by_role("link", name="Download summaries as CSV")
        answer = page.request.get(portal.url(csv_link.get_attribute("href") or ""))
        assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text())))
        assert {r["column"] for r in rows} == {"age", "bmi"}
        as_json = page.request.get(portal.url(f"/jobs/{job.id}/result.json"))
        assert as_json.json()["result"]["histograms"][0]["column"] == "age"
        watch.check()
    with portal.session("bob") as (page, watch):  # a member researcher sees the job, not its result
        portal.visit(page, f"/jobs/{job.id}")
        assert "may not perform result.download" in page.locator("#result ~ p").inner_text()
        assert page.request.get(portal.url(f"/jobs/{job.id}/result.json")).status == 403
        watch.check()


def test_a_waiting_job_updates_by_itself_and_the_cancel_button_cancels_it(portal: Portal) -> None:
    spec_id = _spec(portal)
    portal.cluster.stop_gateway("site-b")
    try:
        with portal.cluster.client("alice") as alice:
            job = alice.submit_job(spec_id, PARAMS)
        with portal.session("alice") as (page, watch):
            portal.visit(page, f"/jobs/{job.id}")
            assert page.locator("#progress[hx-trigger]").count() == 1  # polled while it runs
            tasks = page.locator("#progress table").first
            tasks.locator("tr", has_text="site-a").locator("text=done").wait_for(timeout=60_000)
            assert "pending" in tasks.locator("tr", has_text="site-b").inner_text()
            # Once site-b has been unseen for a long poll and a margin, the page says so by itself.
            waiting = page.get_by_role("status").filter(has_text="waiting for site-b, offline since")
            waiting.wait_for(timeout=90_000)
            portal.check_accessibility(page)
            portal.screenshot(page, "job-running")
            page.get_by_role("button", name="Cancel this job").click()
            page.wait_for_url(portal.url(f"/jobs/{job.id}"))
            assert page.locator("#job-state").inner_text() == "cancelled"
            assert page.get_by_role("button", name="Cancel this job").count() == 0
            assert page.locator("#progress[hx-trigger]").count() == 0  # no more polling
            portal.visit(page, "/jobs")
            assert "cancelled" in page.locator("tr", has_text=job.id).inner_text()
            watch.check()
    finally:
        portal.cluster.start_gateway("site-b")


def test_a_researcher_reads_her_budget_over_time_and_the_ledger_behind_it(portal: Portal) -> None:
    with portal.cluster.client("alice") as alice:
        spec = alice.create_spec("dp ages", "stats@1.0.0", ["site-a/patients_dp"], ["age"])
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=120)
    with portal.session("alice") as (page, watch):
        portal.visit(page, "/budget")
        title = "ε on site-a/patients_dp for alice (hours since the first change)"
        chart = page.get_by_role("img", name=title, exact=True)
        assert chart.is_visible()
        assert chart.locator("polyline").count() == 2  # spent and remaining
        page.get_by_text("The ledger behind “site-a/patients_dp: alice”").click()
        ledger = page.locator("figure", has=chart).locator("table.budget-changes").inner_text()
        assert job.id in ledger
        portal.screenshot(page, "budget")
        watch.check()
