"""A9 on held files: custom code returns files whose bytes are hostile, and a reviewer opens them in
the portal in real Chromium, through a real deployment (gateway, sandbox, release review).

- a PNG with a page of HTML and script after its last chunk: shown inline (it still decodes), and
  opened on its own it is an image (`image/png`, nosniff, a sandboxing CSP), never a page;
- a CSV whose header and cells are markup: a paged table of text;
- a PDF whose OpenAction is JavaScript that opens a dialog: its pages are PNG images PDFium drew, the
  file itself only a download;
- JSON holding markup: text;
- and a custodian's reason of markup for denying code, read back from the audit trail's page.

The attack wins if a dialog opens, an element the file describes appears, a file answers as a
document the browser would render, or another org's reviewer reaches the file (C23).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from tests.conftest import SITE_AUTHORIZATION
from tests.e2e.harness import Portal, running_portal
from tests.held_files import pdf_bytes, png_bytes

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

pytestmark = pytest.mark.integration

XSS = "<img src=x id=pwned onerror=\"alert('xss')\"><script>alert('xss')</script>"
DATASET = "site-a/patients_code"
POLICY = {
    "dataset": "patients_code",
    "grants": [{"orgs": ["university"], "models": ["custom"], "columns": ["age", "region"]}],
    "custom_code": "review",
    "custom_outputs": "allow_row_level",
    "release": "one",
    "min_count": 10,
}
FILES = {
    "png": png_bytes(trailer=f"<html><body>{XSS}</body></html>".encode()),
    "csv": pd.DataFrame({XSS: [XSS, "south"], "n": [12, 30]}).to_csv(index=False).encode(),
    "pdf": pdf_bytes(["Counts by region: north 12, south 30", XSS], script="app.alert('xss')"),
    "json": json.dumps({"note": XSS, "n": 12}).encode(),
}


@dataclass
class Held:
    portal: Portal
    releases: dict[str, str]  # file type -> release id


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Held]:
    table = synthetic_patients(120, site=0, seed=5)
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
        UserSetup("oscar", "hospital-b", "org_admin"),
    ]
    with running_portal(tmp_path_factory.mktemp("held-files"), gateways=gateways, users=users) as portal:
        cluster = portal.cluster
        jobs = {}
        with cluster.client("alice") as alice, cluster.client("carol") as carol:
            for file_type, data in FILES.items():
                code = f"def write(dal, datasets, params):\n    return {data!r}\n"
                request = alice.submit(code, [DATASET], function="write", output=f"file:{file_type}")
                carol.approve_code(request.id, "a file")
                jobs[file_type] = alice.run_code(request.id).id
            denied = alice.submit(
                "def noop(dal, datasets, params):\n    return {}\n", [DATASET], function="noop"
            )
            carol.deny_code(denied.id, f"no: {XSS}")
            for job_id in jobs.values():
                assert alice.wait_job(job_id, timeout=180).state == "awaiting_release"
            by_job = {r.job_id: r.id for r in carol.releases()}
        yield Held(portal, {t: by_job[j] for t, j in jobs.items()})


def _nothing_ran(page: object) -> None:
    page.wait_for_timeout(300)  # type: ignore[attr-defined]  # time for an onerror handler to fire
    assert page.locator("#pwned").count() == 0  # type: ignore[attr-defined]
    assert page.locator("main script").count() == 0  # type: ignore[attr-defined]


def test_a9_held_files_are_shown_and_nothing_in_them_runs(held: Held) -> None:
    portal = held.portal
    with portal.session("carol") as (page, watch):
        portal.visit(page, f"/releases/{held.releases['png']}")
        image = page.locator("img.held-image")
        assert image.get_attribute("src") == f"/releases/{held.releases['png']}/files/{DATASET}"
        assert page.evaluate("() => document.querySelector('img.held-image').naturalWidth") == 1
        _nothing_ran(page)

        portal.visit(page, f"/releases/{held.releases['csv']}")
        table = page.locator("table.data")
        assert XSS in table.locator("th").first.inner_text() and XSS in table.locator("td").first.inner_text()
        _nothing_ran(page)

        portal.visit(page, f"/releases/{held.releases['pdf']}")
        pages = page.locator("img.held-page")
        assert pages.count() == 2
        for i in range(2):
            assert page.evaluate(f"() => document.querySelectorAll('img.held-page')[{i}].naturalWidth") > 100
        _nothing_ran(page)
        portal.screenshot(page, "release-review-pdf")

        portal.visit(page, f"/releases/{held.releases['json']}")
        assert "<script>alert('xss')</script>" in page.locator("pre.text").inner_text()
        _nothing_ran(page)
        watch.check()

        # Opened on its own, the PNG is an image: the HTML after its last chunk is never a page.
        png_url = portal.url(f"/releases/{held.releases['png']}/files/{DATASET}")
        answer = page.goto(png_url)
        assert answer is not None and answer.status == 200
        headers = answer.headers
        assert headers["content-type"] == "image/png"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-disposition"].startswith("inline;")
        assert "sandbox" in headers["content-security-policy"]
        assert page.locator("body *").count() <= 1  # Chromium's own <img> viewer, nothing of the file
        _nothing_ran(page)
        # (The file's CSP blocks even the inline style of Chromium's image viewer: no watch.check here.)
        assert watch.dialogs == [] and watch.errors == []

        # Every other type is only ever a download, of exact bytes.
        for file_type in ("csv", "pdf", "json"):
            fetched = page.request.get(portal.url(f"/releases/{held.releases[file_type]}/files/{DATASET}"))
            assert fetched.status == 200
            assert fetched.headers["content-type"] == "application/octet-stream"
            assert fetched.headers["content-disposition"].startswith("attachment;")
            assert fetched.body() == FILES[file_type]
        rendered = page.request.get(portal.url(f"/releases/{held.releases['pdf']}/files/{DATASET}/pages/1"))
        assert rendered.headers["content-type"] == "image/png" and rendered.body().startswith(b"\x89PNG")
        assert (
            page.request.get(portal.url(f"/releases/{held.releases['pdf']}/files/{DATASET}/pages/3")).status
            == 404
        )
    assert watch.dialogs == []


def test_c23_another_orgs_reviewer_cannot_fetch_a_held_file(held: Held) -> None:
    portal = held.portal
    with portal.session("oscar") as (page, watch):
        for path in (
            f"/releases/{held.releases['png']}/files/{DATASET}",
            f"/releases/{held.releases['pdf']}/files/{DATASET}/pages/1",
        ):
            answer = page.request.get(portal.url(path))
            assert answer.status == 404, path
            assert answer.body() != FILES["png"]
        watch.check()
    with portal.session("alice") as (page, _):  # the author reviews nothing of their own
        assert page.request.get(portal.url(f"/releases/{held.releases['png']}/files/{DATASET}")).status == 403


def test_a9_an_audit_message_with_markup_is_text(held: Held) -> None:
    portal = held.portal
    with portal.session("carol") as (page, watch):
        portal.visit(page, "/audit?user=carol&action=code_denied")
        messages = page.locator("#events td:last-child").all_inner_texts()
        assert any(XSS in m for m in messages), messages
        _nothing_ran(page)
        portal.visit(page, "/audit?action=release_blob_fetched")
        assert page.locator("#events tbody tr").count() >= 4  # every file the reviewer opened
        portal.screenshot(page, "audit")
        watch.check()
