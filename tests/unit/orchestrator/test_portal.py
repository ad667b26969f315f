"""The portal in process: signing in and out through its form, the CSRF tokens of its forms, the
security headers and cookie flags, and pages that need a session sending the browser to sign in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.orchestrator.test_human_sign_in import PASSWORD, cheap_settings, kits  # noqa: F401

from custos.orchestrator.app import create_app
from custos.orchestrator.portal.security import CONTENT_SECURITY_POLICY
from custos.pki.kit import Kit
from custos.pki.signin import sign_in

CSRF_INPUT = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(cheap_settings(tmp_path), kits["orchestrator"].root_certificate)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        for name in ("alice", "bob"):
            token = sign_in(client, kits[name]).token
            r = client.post(
                "/api/v1/auth/password",
                json={"password": PASSWORD},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 204, r.text
        client.cookies.clear()
        yield client


def _form_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match is not None, html
    return match.group(1)


def _sign_in(api: TestClient, name: str = "alice", password: str = PASSWORD) -> object:
    form = api.get("/signin")
    assert form.status_code == 200
    return api.post("/signin", data={"csrf": _form_token(form.text), "name": name, "password": password})


def test_a_page_without_a_session_sends_the_browser_to_sign_in(api: TestClient) -> None:
    for path in ("/", "/datasets", "/datasets/site-a/patients"):
        r = api.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/signin", path


def test_signing_in_sets_a_strict_session_cookie_and_shows_the_home_page(api: TestClient) -> None:
    r = _sign_in(api)
    assert r.status_code == 303 and r.headers["location"] == "/"  # type: ignore[attr-defined]
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "custos_session=" in v)  # type: ignore[attr-defined]
    for flag in ("Secure", "HttpOnly", "SameSite=strict"):
        assert flag.lower() in cookie.lower()
    home = api.get("/")
    assert home.status_code == 200
    assert "Welcome, alice" in home.text
    assert "Your jobs" in home.text and "Your code requests" in home.text


def test_every_answer_carries_a_strict_content_security_policy(api: TestClient) -> None:
    for r in (api.get("/signin"), api.get("/static/portal.css"), api.get("/healthz")):
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    page = api.get("/signin").text
    assert "<script>" not in page and " style=" not in page and "<style" not in page


def test_a_wrong_password_shows_the_form_again_with_the_reason(api: TestClient) -> None:
    r = _sign_in(api, password="a wrong guess!")
    assert r.status_code == 401  # type: ignore[attr-defined]
    assert "wrong name or password" in r.text  # type: ignore[attr-defined]
    assert api.get("/").status_code == 303


def test_a_sign_in_form_without_its_token_signs_no_one_in(api: TestClient) -> None:
    api.get("/signin")
    r = api.post("/signin", data={"csrf": "0" * 64, "name": "alice", "password": PASSWORD})
    assert r.status_code == 403
    assert "custos_session" not in r.headers.get("set-cookie", "")


def test_sign_out_needs_the_forms_token_and_ends_the_session(api: TestClient) -> None:
    _sign_in(api)
    token = _form_token(api.get("/").text)
    refused = api.post("/signout", data={"csrf": "f" * 64})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert api.get("/").status_code == 200  # still signed in
    r = api.post("/signout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert api.get("/").status_code == 303


def test_a_bearer_token_does_not_open_a_page(api: TestClient, kits: dict[str, Kit]) -> None:  # noqa: F811
    token = sign_in(api, kits["alice"]).token
    r = api.get("/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 303


def test_an_unknown_static_file_is_not_found(api: TestClient) -> None:
    assert api.get("/static/htmx.min.js").status_code == 200
    assert api.get("/static/..%2Fsecurity.py").status_code == 404
    assert api.get("/static/security.py").status_code == 404
