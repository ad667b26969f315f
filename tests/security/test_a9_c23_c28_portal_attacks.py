"""Attacks on the portal through a real deployment and real Chromium.

A9: stored cross-site scripting. Text someone else wrote reaches a reviewer's or researcher's browser:
a dataset's description and its category names (schema, mock rows), the code under review and its
parameter names, the author's mock run beside it (its table's cells, and the error of a run that
failed), a held output's cells, review reasons. Each carries markup that would open a dialog or add
an element if it were interpreted; the attack wins if a dialog opens or the element exists. The mock
run also carries an escape sequence and a bidi override, which must reach the page and `custos code
show` as visible escapes.

C23: another org's job, code request or release by id, page or download: not found, nothing done.

C28: cross-site request forgery. A page on another origin posts the cancel form to the portal in the
signed-in researcher's browser; the attack wins if the job is cancelled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pytest
from tests.conftest import SITE_AUTHORIZATION
from tests.e2e.harness import Portal, running_portal

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

pytestmark = pytest.mark.integration

XSS = "<img src=x id=pwned onerror=\"alert('xss')\"><script>alert('xss')</script>"
# Erase the line and print over it; then turn the rest around.
HOSTILE = f"{XSS} \x1b[2K\x1b[1Gapproved \u202egnp.exe"
SHOWN = f"{XSS} \\x1b[2K\\x1b[1Gapproved \\u202egnp.exe"  # as a reviewer must read it
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
STATS_POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": ["age", "region"]}],
    "min_count": 10,
}
CODE_POLICY = {
    "dataset": "patients_code",
    "grants": [{"orgs": ["university"], "models": ["custom"], "columns": ["age", "region"]}],
    "custom_code": "review",
    "custom_outputs": "allow_row_level",
    "release": "one",
    "min_count": 10,
}
HOSTILE_CODE = f'''def labelled(dal, datasets, params):
    """</pre></div>{XSS}"""
    frame = dal.read(datasets[0], ["region"]).to_pandas()
    table = frame.groupby("region", as_index=False).size()
    table["note"] = {HOSTILE!r}
    return table
'''
FAILING_CODE = f"""{HOSTILE_CODE}

def failing(dal, datasets, params):
    raise ValueError({HOSTILE!r})
"""


@dataclass
class Hostile:
    portal: Portal
    code_id: str
    denied_id: str
    job_id: str
    release_id: str
    stuck_job_id: str


@pytest.fixture(scope="module")
def portal_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    table = synthetic_patients(200, site=0, seed=13)
    # A category whose name is markup: shown in the schema and the mock rows.
    regions = [XSS if i % 3 == 0 else r for i, r in enumerate(table.column("region").to_pylist())]
    table = table.set_column(table.schema.get_field_index("region"), "region", pa.array(regions))
    gateways = [
        GatewaySetup(
            "site-a",
            "hospital-a",
            [
                DatasetSetup("patients", table, STATS_POLICY, description=f"Patients {XSS}"),
                DatasetSetup("patients_code", table, CODE_POLICY),
            ],
            authorization=SITE_AUTHORIZATION,
        ),
        GatewaySetup("site-b", "hospital-b", [DatasetSetup("patients", table, STATS_POLICY)]),
    ]
    users = [
        UserSetup("alice", "university"),
        UserSetup("mallory", "elsewhere"),
        UserSetup("carol", "hospital-a", "org_admin"),
    ]
    with running_portal(tmp_path_factory.mktemp("portal-attacks"), gateways=gateways, users=users) as portal:
        cluster = portal.cluster
        with cluster.client("alice") as alice, cluster.client("carol") as carol:
            request = alice.submit(
                HOSTILE_CODE, ["site-a/patients_code"], {XSS: XSS}, function="labelled", mock_run=True
            )
            denied = alice.submit(FAILING_CODE, ["site-a/patients_code"], function="failing", mock_run=True)
            carol.deny_code(denied.id, f"no: {XSS}")
            carol.approve_code(request.id, f"ok {XSS}")
            job = alice.run_code(request.id)
            alice.wait_job(job.id, timeout=120)
            (release,) = [r for r in carol.releases() if r.job_id == job.id]
            spec = alice.create_spec("stuck", "stats@1.0.0", ["site-a/patients", "site-b/patients"], ["age"])
            alice.activate_spec(spec.id)
            cluster.stop_gateway("site-b")  # its task waits: the job stays running
            stuck = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        yield Hostile(portal, request.id, denied.id, job.id, release.id, stuck.id)


def _no_injected_markup(page: object) -> None:
    assert page.locator("#pwned").count() == 0  # type: ignore[attr-defined]
    assert page.locator("main script").count() == 0  # type: ignore[attr-defined]


def test_a9_hostile_text_stays_text_on_every_page(portal_cluster: Hostile) -> None:
    h = portal_cluster
    shows_it = {
        "alice": ["/datasets", "/datasets/site-a/patients", f"/code/{h.code_id}", f"/code/{h.denied_id}"],
        "carol": [f"/code/{h.code_id}", f"/code/{h.denied_id}", f"/releases/{h.release_id}"],
    }
    for user, paths in shows_it.items():
        with h.portal.session(user) as (page, watch):
            for path in [*paths, "/", "/code", "/jobs"]:
                response = page.goto(h.portal.url(path))
                assert response is not None and response.status == 200, path
                page.wait_for_timeout(200)  # time for an onerror handler to fire, if one were there
                _no_injected_markup(page)
                if path in paths:
                    assert "alert('xss')" in page.locator("main").inner_text(), f"{path} does not show it"
            watch.check()
            assert watch.dialogs == []


def test_a9_a_hostile_mock_run_is_inert_text_on_the_code_page(portal_cluster: Hostile) -> None:
    h = portal_cluster
    with h.portal.session("carol") as (page, watch):
        h.portal.visit(page, f"/code/{h.code_id}")
        mock = page.locator("section[aria-labelledby=mock]")
        assert "not verified" in mock.locator("h2").inner_text()
        notes = mock.locator("table.data td", has_text="gnp.exe").all_inner_texts()
        assert notes and all(n == SHOWN for n in notes), notes
        assert mock.locator("table.data td", has_text="<img src=x").count() > len(notes)  # the regions too
        assert "hidden character(s)" in mock.locator("p.warn").inner_text()
        page.wait_for_timeout(200)  # time for an onerror handler to fire, if one were there
        _no_injected_markup(page)
        assert not RAW.findall(mock.inner_text())

        h.portal.visit(page, f"/code/{h.denied_id}")
        error = page.locator("section[aria-labelledby=mock] pre.text").inner_text()
        assert 'File "<custom:failing>", line 10, in failing' in error
        assert f"ValueError: {SHOWN}" in error and not RAW.findall(error)
        page.wait_for_timeout(200)
        _no_injected_markup(page)
        watch.check()


def test_a9_a_hostile_mock_run_reaches_the_terminal_inert(portal_cluster: Hostile) -> None:
    kit = str(portal_cluster.portal.cluster.kit_dir("carol"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")} | {"COLUMNS": "400"}
    expectations = {portal_cluster.code_id: SHOWN, portal_cluster.denied_id: f"ValueError: {SHOWN}"}
    for request_id, expected in expectations.items():
        done = subprocess.run(
            [sys.executable, "-m", "custos.cli", "code", "show", request_id, "--kit", kit],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "mock run (from the author's machine, not verified) on site-a/patients_code" in done.stdout
        assert expected in done.stdout
        assert not RAW.findall(done.stdout + done.stderr)


def test_a9_a_held_output_cell_with_markup_is_shown_as_text(portal_cluster: Hostile) -> None:
    h = portal_cluster
    with h.portal.session("carol") as (page, watch):
        page.goto(h.portal.url(f"/releases/{h.release_id}"))
        cells = page.locator("table.data td", has_text="<img src=x")
        assert cells.count() >= 1
        _no_injected_markup(page)
        watch.check()


def test_c23_another_orgs_job_code_and_release_are_not_found(portal_cluster: Hostile) -> None:
    h = portal_cluster
    with h.portal.session("mallory") as (page, watch):
        for path in (f"/jobs/{h.job_id}", f"/jobs/{h.job_id}/result.json", f"/code/{h.code_id}"):
            response = page.goto(h.portal.url(path))
            assert response is not None and response.status == 404, path
        response = page.goto(h.portal.url(f"/releases/{h.release_id}"))
        assert response is not None and response.status == 403  # a researcher reviews no release
        # A cancel posted with mallory's own, valid form token: still not found, and nothing done.
        page.goto(h.portal.url("/"))
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        answer = page.request.post(
            h.portal.url(f"/jobs/{h.stuck_job_id}/cancel"), form={"csrf": token or ""}, max_redirects=0
        )
        assert answer.status == 404
        watch.check()
    with h.portal.cluster.client("alice") as alice:
        assert alice.job(h.stuck_job_id).state in ("queued", "running")


def test_c28_a_form_on_another_site_cannot_cancel_a_job(portal_cluster: Hostile) -> None:
    h = portal_cluster
    with h.portal.session("alice") as (page, watch):
        attacker = page.context.new_page()
        attacker.set_content(
            f'<form method="post" action="{h.portal.url(f"/jobs/{h.stuck_job_id}/cancel")}">'
            '<input name="csrf" value="guessed"></form>'
        )
        with attacker.expect_navigation():
            attacker.evaluate("document.forms[0].submit()")
        # SameSite=Strict: the cookie was not sent, so the portal asked the attacker's page to sign in.
        assert attacker.url == h.portal.url("/signin")
        # The same form sent from the portal's own origin (cookie attached) still lacks the token.
        page.goto(h.portal.url("/"))
        refused = page.request.post(
            h.portal.url(f"/jobs/{h.stuck_job_id}/cancel"), form={"csrf": "0" * 64}, max_redirects=0
        )
        assert refused.status == 403
        watch.check()
    with h.portal.cluster.client("alice") as alice:
        assert alice.job(h.stuck_job_id).state in ("queued", "running")
