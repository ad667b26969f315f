"""A researcher and a custodian in real Chromium: signing in and out, each role's home page, the
dataset catalogue with search, and a dataset page (schema, bounds, mock rows, the policy and its
signature, what the signed-in user may do). axe-core runs on every page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.harness import Portal, running_portal

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

POLICY = {
    "dataset": "patients",
    "grants": [
        {
            "orgs": ["university"],
            "models": ["stats@>=1.0,<2", "glm@>=1.0,<2"],
            "columns": ["age", "sex", "bmi"],
        }
    ],
    "min_count": 10,
    "release": "one",
    "privacy": {
        "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
        "budget": {"epsilon_per_researcher": 3.0, "epsilon_per_org": 10.0},
    },
}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    table = synthetic_patients(300, site=0, seed=3)
    gateways = [
        GatewaySetup(
            "site-a",
            "hospital-a",
            [
                DatasetSetup("patients", table, POLICY, description="Patients of Hospital A, 2019 to 2024"),
                DatasetSetup("registry", table, None, description="A registry nobody may use yet"),
            ],
        )
    ]
    users = [
        UserSetup("alice", "university"),
        UserSetup("carol", "hospital-a", "org_admin"),
        UserSetup("pat", "project-office", "project_admin"),
    ]
    with running_portal(tmp_path_factory.mktemp("portal-datasets"), gateways=gateways, users=users) as p:
        yield p


def test_a_researcher_finds_a_dataset_and_sees_what_she_may_do(portal: Portal) -> None:
    with portal.session("alice") as (page, watch):
        portal.check_accessibility(page)
        assert page.get_by_role("heading", name="Welcome, alice").is_visible()
        portal.screenshot(page, "home-researcher")

        portal.visit(page, "/datasets?q=2019")
        rows = page.locator("table tbody tr")
        assert rows.count() == 1 and "site-a/patients" in rows.first.inner_text()
        portal.visit(page, "/datasets")
        assert page.locator("table tbody tr").count() == 2
        portal.screenshot(page, "datasets")

        page.get_by_role("link", name="site-a/patients").click()
        portal.check_accessibility(page)
        may = page.locator("section", has=page.get_by_role("heading", name="What may I do here"))
        text = " ".join(may.inner_text().split())
        assert "stats@>=1.0,<2" in text and "age, bmi, sex" in text
        assert "your remaining ε 3 of 3 (nothing spent yet)" in text
        assert "one reviewer" in text and "laplace, ε 1.0 per job" in text
        assert "the signature verifies" in page.locator("#policy ~ p").first.inner_text()
        mock_rows = page.locator("table.data tbody tr")
        assert mock_rows.count() == 20
        portal.screenshot(page, "dataset")

        portal.visit(page, "/datasets/site-a/registry")
        assert "no policy: nobody may compute on it" in page.content()
        missing = page.goto(portal.url("/datasets/site-a/nothing"))
        assert missing is not None and missing.status == 404
        assert "unknown dataset site-a/nothing" in page.content()
        watch.check()


def test_a_custodian_and_an_admin_see_their_own_home_pages(portal: Portal) -> None:
    with portal.session("carol") as (page, watch):
        portal.check_accessibility(page)
        assert page.get_by_role("heading", name="Your review queue").is_visible()
        assert "site-a" in page.locator("#sites ~ table").inner_text()
        portal.screenshot(page, "home-custodian")
        watch.check()
    with portal.session("pat") as (page, watch):
        portal.check_accessibility(page)
        assert page.get_by_role("heading", name="Users").is_visible()
        users = page.locator("#users ~ table").inner_text()
        assert "alice" in users and "carol" in users
        watch.check()


def test_signing_out_ends_the_session(portal: Portal) -> None:
    with portal.session("alice") as (page, watch):
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(portal.url("/signin"))
        portal.check_accessibility(page)
        page.goto(portal.url("/datasets"))
        assert page.url == portal.url("/signin")
        watch.check()


def test_a_wrong_password_is_refused_on_the_page(portal: Portal, tmp_path: Path) -> None:
    with portal.session(None) as (page, watch):
        page.goto(portal.url("/signin"))
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        assert "wrong name or password" in page.get_by_role("alert").inner_text()
        portal.check_accessibility(page)
        watch.check()
