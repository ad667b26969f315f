"""Human sign-in through the real app in process: passwords and browser sessions, API tokens, the
SDK methods that drive them, and the `custos password` and `custos token` commands."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from custos.cli import password as password_cli
from custos.cli import token as token_cli
from custos.cli.main import app as cli_app
from custos.core.errors import InvalidInput, NotFound, PermissionDenied
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import fingerprint
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import KitAuth, sign_in
from custos.sdk import Client
from custos.sdk.session import BearerToken

PASSWORD = "correct horse battery staple"
COOKIE = "custos_session"
CSRF = {"X-Custos-Request": "1"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Orchestrator:
    api: TestClient
    app: FastAPI
    clock: Clock
    kits: dict[str, Kit]
    db_url: str
    audit: Path

    def kit_headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign_in(self.api, self.kits[name]).token}"}

    def set_password(self, name: str, password: str = PASSWORD) -> None:
        r = self.api.post(
            "/api/v1/auth/password", json={"password": password}, headers=self.kit_headers(name)
        )
        assert r.status_code == 204, r.text

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        r = self.api.post("/api/v1/auth/login", json={"name": name, "password": password})
        # Each test sends the cookie itself, so that nothing is authenticated by accident.
        self.api.cookies.clear()
        return r

    def session(self, name: str, password: str = PASSWORD) -> dict[str, str]:
        r = self.login(name, password)
        assert r.status_code == 200, r.text
        return {"Cookie": f"{COOKIE}={r.cookies[COOKIE]}"}

    def create_token(self, headers: dict[str, str], name: str = "laptop", **extra: object) -> httpx.Response:
        return self.api.post("/api/v1/tokens", json={"name": name, **extra}, headers=headers)

    def sql(self, statement: str, **params: object) -> None:
        engine = create_engine(self.db_url)
        with engine.begin() as conn:
            conn.execute(text(statement), params)
        engine.dispose()


def _project() -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "name": "sign-in-test",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
                {"name": "bob", "type": "user", "org": "university", "role": "member_researcher"},
            ],
        }
    )


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("kits") / "project"
    provision(_project(), root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


def cheap_settings(tmp_path: Path, **overrides: object) -> OrchestratorSettings:
    """Settings whose Argon2 cost is low, so that a test can sign in many times."""
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'o.db'}",
        "audit_path": tmp_path / "audit.log",
        "password_time_cost": 1,
        "password_memory_kib": 1024,
        "password_parallelism": 1,
    }
    values.update(overrides)
    return OrchestratorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> OrchestratorSettings:
    """Cheap settings; a test overrides some with `parametrize("settings", [{...}], indirect=True)`."""
    return cheap_settings(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def orch(kits: dict[str, Kit], settings: OrchestratorSettings) -> Iterator[Orchestrator]:
    clock = Clock()
    app = create_app(settings, kits["orchestrator"].root_certificate, clock)
    with TestClient(app, base_url="https://testserver") as api:
        yield Orchestrator(api, app, clock, kits, settings.database_url, settings.audit_path)


def audit_actions(orch: Orchestrator) -> list[tuple[str, str]]:
    """(user, action) of every audit line."""
    pairs = []
    for line in orch.audit.read_text().splitlines():
        user = line.split("[U:", 1)[1].split("]", 1)[0]
        action = line.split("[A:", 1)[1].split("]", 1)[0]
        pairs.append((user, action))
    return pairs


# --- passwords and browser sessions --------------------------------------------------------------


def test_a_password_set_with_the_kit_opens_a_session_as_the_user(orch: Orchestrator) -> None:
    orch.set_password("alice")
    r = orch.login("alice")
    assert r.status_code == 200, r.text
    alice = orch.kits["alice"]
    assert r.json() == {
        "name": "alice",
        "org": "university",
        "role": "lead_researcher",
        "fingerprint": fingerprint(alice.certificate),
    }
    cookie = {"Cookie": f"{COOKIE}={r.cookies[COOKIE]}"}
    assert orch.api.get("/api/v1/me", headers=cookie).json()["name"] == "alice"


def test_a_name_is_matched_whatever_its_case(orch: Orchestrator) -> None:
    orch.set_password("alice")
    assert orch.login(" Alice ").json()["name"] == "alice"


def test_a_session_carries_the_org_and_role_of_the_last_kit_sign_in(orch: Orchestrator) -> None:
    orch.set_password("alice")
    cookie = orch.session("alice")
    # What the caller claims is ignored; what the users table holds is used.
    r = orch.api.get("/api/v1/me", headers=cookie | {"X-Org": "elsewhere", "X-Role": "project_admin"})
    assert (r.json()["org"], r.json()["role"]) == ("university", "lead_researcher")
    orch.sql("UPDATE users SET role = 'member_researcher' WHERE name = 'alice'")
    assert orch.api.get("/api/v1/me", headers=cookie).json()["role"] == "member_researcher"
    # The next kit sign-in records the certificate's role again.
    orch.kit_headers("alice")
    assert orch.api.get("/api/v1/me", headers=cookie).json()["role"] == "lead_researcher"


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("short pass1", "password: String should have at least 12 characters"),
        ("x" * 1025, "password: String should have at most 1024 characters"),
    ],
)
def test_a_password_of_the_wrong_length_is_refused_clearly(
    orch: Orchestrator, password: str, expected: str
) -> None:
    r = orch.api.post("/api/v1/auth/password", json={"password": password}, headers=orch.kit_headers("alice"))
    assert r.status_code == 400
    assert r.json()["detail"] == expected
    assert password not in r.text
    assert orch.login("alice", password).status_code != 200, "nothing was stored"


def test_a_password_of_1024_characters_is_accepted(orch: Orchestrator) -> None:
    orch.set_password("alice", "y" * 1024)
    assert orch.login("alice", "y" * 1024).status_code == 200


def test_a_gateway_has_no_password(orch: Orchestrator) -> None:
    r = orch.api.post(
        "/api/v1/auth/password", json={"password": PASSWORD}, headers=orch.kit_headers("site-a")
    )
    assert r.status_code == 403
    assert r.json()["detail"] == "this route is for users only"


def test_a_new_password_ends_the_users_sessions_and_the_old_password(orch: Orchestrator) -> None:
    orch.set_password("alice")
    old_session = orch.session("alice")
    orch.set_password("bob")
    bob_session = orch.session("bob")
    orch.set_password("alice", "a brand new passphrase")
    assert orch.api.get("/api/v1/me", headers=old_session).status_code == 401
    assert orch.api.get("/api/v1/me", headers=bob_session).status_code == 200, "only alice's sessions end"
    assert orch.login("alice").status_code == 401
    assert orch.login("alice", "a brand new passphrase").status_code == 200


def test_logout_ends_the_session_and_clears_the_cookie(orch: Orchestrator) -> None:
    orch.set_password("alice")
    cookie = orch.session("alice")
    r = orch.api.post("/api/v1/auth/logout", headers=cookie | CSRF)
    assert r.status_code == 204
    cleared = r.headers["set-cookie"]
    assert cleared.startswith(f"{COOKIE}=")
    assert "Max-Age=0" in cleared
    assert orch.api.get("/api/v1/me", headers=cookie).status_code == 401
    assert ("alice", "session_ended") in audit_actions(orch)


def test_logout_needs_a_session(orch: Orchestrator) -> None:
    r = orch.api.post("/api/v1/auth/logout", headers=orch.kit_headers("alice"))
    assert r.status_code == 403
    assert "logout ends a browser session" in r.json()["detail"]
    assert orch.api.post("/api/v1/auth/logout").status_code == 401


def test_the_login_body_is_checked(orch: Orchestrator) -> None:
    r = orch.api.post("/api/v1/auth/login", json={"name": "alice"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("password:")
    r = orch.api.post("/api/v1/auth/login", json={"name": "alice", "password": "x" * 1025})
    assert r.status_code == 400


# --- API tokens ----------------------------------------------------------------------------------


def test_an_api_token_is_shown_once_and_authenticates_as_its_user(orch: Orchestrator) -> None:
    r = orch.create_token(orch.kit_headers("alice"), "laptop")
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["token"]
    assert token.startswith("cst_")
    assert len(token) == len("cst_") + 43
    assert created["last_used_at"] is None
    expires = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert expires == timedelta(days=90)

    bearer = {"Authorization": f"Bearer {token}"}
    me = orch.api.get("/api/v1/me", headers=bearer).json()
    assert (me["name"], me["org"], me["role"]) == ("alice", "university", "lead_researcher")
    assert me["fingerprint"] == fingerprint(orch.kits["alice"].certificate)

    listed = orch.api.get("/api/v1/tokens", headers=bearer).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert set(listed[0]) == {"id", "name", "created_at", "expires_at", "last_used_at"}
    assert listed[0]["last_used_at"] is not None
    assert token not in orch.api.get("/api/v1/tokens", headers=bearer).text


def test_the_token_list_is_the_callers_own(orch: Orchestrator) -> None:
    alice, bob = orch.kit_headers("alice"), orch.kit_headers("bob")
    mine = orch.create_token(alice, "mine").json()
    orch.create_token(bob, "bobs")
    assert [t["name"] for t in orch.api.get("/api/v1/tokens", headers=alice).json()] == ["mine"]
    assert [t["name"] for t in orch.api.get("/api/v1/tokens", headers=bob).json()] == ["bobs"]
    # Bob cannot revoke alice's token: it does not exist as far as he can tell.
    r = orch.api.delete(f"/api/v1/tokens/{mine['id']}", headers=bob)
    assert r.status_code == 404
    assert r.json()["detail"] == f"unknown API token {mine['id']}; `custos token list` shows yours"
    assert orch.api.get("/api/v1/me", headers={"Authorization": f"Bearer {mine['token']}"}).status_code == 200


def test_a_revoked_token_stops_working_at_once(orch: Orchestrator) -> None:
    alice = orch.kit_headers("alice")
    created = orch.create_token(alice).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert orch.api.get("/api/v1/me", headers=bearer).status_code == 200
    assert orch.api.delete(f"/api/v1/tokens/{created['id']}", headers=alice).status_code == 204
    r = orch.api.get("/api/v1/me", headers=bearer)
    assert r.status_code == 401
    assert r.json()["detail"] == "the token is unknown, revoked or expired; sign in again"
    assert orch.api.get("/api/v1/tokens", headers=alice).json() == []
    assert orch.api.delete(f"/api/v1/tokens/{created['id']}", headers=alice).status_code == 404


def test_a_token_expires_after_its_days(orch: Orchestrator) -> None:
    created = orch.create_token(orch.kit_headers("alice"), days=1).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    orch.clock.now += timedelta(days=1) - timedelta(seconds=1)
    assert orch.api.get("/api/v1/me", headers=bearer).status_code == 200
    orch.clock.now += timedelta(seconds=2)
    assert orch.api.get("/api/v1/me", headers=bearer).status_code == 401


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "x", "days": 0}, "days: Input should be greater than or equal to 1"),
        ({"name": "x", "days": 366}, "days: Input should be less than or equal to 365"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"name": "a\nb"}, "name: String should match pattern"),
        ({"name": "x", "token": "cst_mine"}, "token: Extra inputs are not permitted"),
    ],
)
def test_token_requests_are_checked(orch: Orchestrator, body: dict[str, object], expected: str) -> None:
    alice = orch.kit_headers("alice")
    r = orch.api.post("/api/v1/tokens", json=body, headers=alice)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(expected)
    assert orch.api.get("/api/v1/tokens", headers=alice).json() == []


def test_a_token_lasts_up_to_365_days(orch: Orchestrator) -> None:
    created = orch.create_token(orch.kit_headers("alice"), days=365).json()
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert lifetime == timedelta(days=365)


def test_gateways_get_no_api_tokens(orch: Orchestrator) -> None:
    site = orch.kit_headers("site-a")
    assert orch.create_token(site).status_code == 403
    assert orch.api.get("/api/v1/tokens", headers=site).status_code == 403
    assert orch.api.delete("/api/v1/tokens/tok_0", headers=site).status_code == 403


def test_an_api_token_cannot_create_another_but_can_list_and_revoke(orch: Orchestrator) -> None:
    created = orch.create_token(orch.kit_headers("alice")).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    r = orch.create_token(bearer, "offspring")
    assert r.status_code == 403
    assert "an API token cannot create another" in r.json()["detail"]
    assert len(orch.api.get("/api/v1/tokens", headers=bearer).json()) == 1
    assert orch.api.delete(f"/api/v1/tokens/{created['id']}", headers=bearer).status_code == 204


def test_a_session_can_create_a_token(orch: Orchestrator) -> None:
    orch.set_password("alice")
    r = orch.create_token(orch.session("alice") | CSRF, "portal")
    assert r.status_code == 201


@pytest.mark.parametrize("settings", [{"api_tokens_per_user": 2}], indirect=True)
def test_a_user_holds_a_bounded_number_of_tokens(orch: Orchestrator) -> None:
    alice = orch.kit_headers("alice")
    assert [orch.create_token(alice).status_code for _ in range(2)] == [201, 201]
    r = orch.create_token(alice)
    assert r.status_code == 409
    assert "already holds 2 API tokens" in r.json()["detail"]
    # An expired token no longer counts.
    orch.clock.now += timedelta(days=91)
    assert orch.create_token(orch.kit_headers("alice"), days=1).status_code == 201


# --- the audit trail -----------------------------------------------------------------------------


def test_sign_in_events_are_audited_without_their_secrets(orch: Orchestrator) -> None:
    orch.set_password("alice")
    orch.login("alice", "not the password")
    cookie = orch.session("alice")
    created = orch.create_token(cookie | CSRF).json()
    assert orch.api.delete(f"/api/v1/tokens/{created['id']}", headers=cookie | CSRF).status_code == 204
    assert orch.api.post("/api/v1/auth/logout", headers=cookie | CSRF).status_code == 204

    events = audit_actions(orch)
    for expected in [
        ("alice", "sign_in"),
        ("alice", "password_set"),
        ("alice", "sign_in_refused"),
        ("alice", "api_token_created"),
        ("alice", "api_token_revoked"),
        ("alice", "session_ended"),
    ]:
        assert expected in events
    trail = orch.audit.read_text()
    assert "method=password: lead_researcher of university" in trail
    assert "method=token: lead_researcher of university" in trail
    for secret in (PASSWORD, "not the password", created["token"], cookie["Cookie"].split("=", 1)[1]):
        assert secret not in trail


# --- the SDK ------------------------------------------------------------------------------------


def kit_client(orch: Orchestrator, name: str) -> Client:
    http = TestClient(orch.app, base_url="https://testserver/api/v1")
    http.auth = KitAuth(orch.kits[name])
    return Client(http, url="https://testserver")


def token_client(orch: Orchestrator, token: str) -> Client:
    http = TestClient(orch.app, base_url="https://testserver/api/v1")
    http.auth = BearerToken(token)
    return Client(http, url="https://testserver")


def test_the_sdk_sets_a_password_and_manages_tokens(orch: Orchestrator) -> None:
    with kit_client(orch, "alice") as client:
        client.set_password(PASSWORD)
        token = client.create_token("notebook", days=7)
        assert token.token.startswith("cst_")
        assert token.expires_at - token.created_at == timedelta(days=7)
        assert [(t.id, t.name) for t in client.tokens()] == [(token.id, "notebook")]
    assert orch.login("alice").status_code == 200

    with token_client(orch, token.token) as by_token:
        assert by_token.me().name == "alice"
        with pytest.raises(PermissionDenied, match="password can be set only when signed in with your kit"):
            by_token.set_password("another long password")
        by_token.revoke_token(token.id)
    with kit_client(orch, "alice") as client:
        assert client.tokens() == []
        with pytest.raises(NotFound, match=token.id):
            client.revoke_token(token.id)


def test_the_sdk_refuses_bad_input_before_sending(orch: Orchestrator, tmp_path: Path) -> None:
    with kit_client(orch, "alice") as client:
        with pytest.raises(InvalidInput, match="12 to 1024 characters, not 5") as refused:
            client.set_password("short")
        assert "short" not in str(refused.value)
        with pytest.raises(InvalidInput, match="not an API token id"):
            client.revoke_token("../specs/x")
    with pytest.raises(InvalidInput, match="starts with 'cst_'"):
        Client.from_token("https://orchestrator:8443", "abc", root_ca=tmp_path / "rootCA.pem")
    with pytest.raises(InvalidInput, match="is not a file"):
        Client.from_token("https://orchestrator:8443", "cst_abc", root_ca=tmp_path / "rootCA.pem")
    (tmp_path / "rootCA.pem").write_text("not a certificate")
    with pytest.raises(InvalidInput, match="is not a PEM certificate"):
        Client.from_token("https://orchestrator:8443", "cst_abc", root_ca=tmp_path / "rootCA.pem")


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli(orch: Orchestrator, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`custos password` and `custos token` with their client pointed at the app in process."""

    def open_client(kit: Path) -> Client:
        return kit_client(orch, kit.name)

    monkeypatch.setattr(password_cli, "open_client", open_client)
    monkeypatch.setattr(token_cli, "open_client", open_client)
    return CliRunner()


def test_cli_token_create_prints_the_token_once(orch: Orchestrator, cli: CliRunner) -> None:
    run = cli.invoke(cli_app, ["token", "create", "--kit", "kits/alice", "--name", "laptop", "--days", "30"])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("API token tok_") and "(laptop), valid until " in lines[0]
    assert lines[1].startswith("cst_")
    assert lines[2] == "It will not be shown again: store it now, e.g. in a password manager."
    token = lines[1]
    assert orch.api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "alice"

    listed = cli.invoke(cli_app, ["token", "list", "--kit", "kits/alice"])
    assert listed.exit_code == 0, listed.output
    token_id = lines[0].split()[2]
    row = next(line for line in listed.output.splitlines() if token_id in line)
    assert row.split()[:2] == [token_id, "laptop"]
    assert row.split()[-2] == f"{orch.clock.now:%Y-%m-%d}", "used once, by the /me above"
    assert token not in listed.output

    revoked = cli.invoke(cli_app, ["token", "revoke", "--kit", "kits/alice", token_id])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output == f"revoked API token {token_id}\n"
    assert orch.api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    empty = cli.invoke(cli_app, ["token", "list", "--kit", "kits/alice"])
    assert empty.output.startswith("you have no API tokens")


def test_cli_token_days_are_bounded(cli: CliRunner) -> None:
    run = cli.invoke(cli_app, ["token", "create", "--kit", "kits/alice", "--name", "x", "--days", "366"])
    assert run.exit_code == 2
    assert "Invalid value for '--days'" in run.output
    assert "less than or equal to 365" in run.output


def test_cli_password_set_from_a_file(orch: Orchestrator, cli: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text(PASSWORD + "\n")
    run = cli.invoke(cli_app, ["password", "set", "--kit", "kits/alice", "--password-file", str(file)])
    assert run.exit_code == 0, run.output
    assert run.output.splitlines() == [
        "password set for alice (university); sign in to the portal at https://testserver with it",
        "browser sessions you had open have been signed out",
    ]
    assert orch.login("alice").status_code == 200


def test_cli_password_set_asks_twice(orch: Orchestrator, cli: CliRunner) -> None:
    answers = f"too short\ntoo short\n{PASSWORD}\nmistyped password\n{PASSWORD}\n{PASSWORD}\n"
    run = cli.invoke(cli_app, ["password", "set", "--kit", "kits/alice"], input=answers)
    assert run.exit_code == 0, run.output
    assert "a password must have 12 to 1024 characters, not 9; try again" in run.output
    assert "do not match" in run.output
    assert "too short" not in run.output
    assert PASSWORD not in run.output
    assert orch.login("alice").status_code == 200


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("short\n", "a password must have 12 to 1024 characters, not 5"),
        (f"{PASSWORD}\nsecond line\n", "holds more than one line"),
    ],
)
def test_cli_password_file_is_checked(
    orch: Orchestrator, cli: CliRunner, tmp_path: Path, content: str, expected: str
) -> None:
    file = tmp_path / "pw"
    file.write_text(content)
    run = cli.invoke(cli_app, ["password", "set", "--kit", "kits/alice", "--password-file", str(file)])
    assert isinstance(run.exception, InvalidInput)
    assert expected in str(run.exception)
    assert orch.login("alice").status_code == 401


def test_secrets_are_stored_only_as_hashes(orch: Orchestrator) -> None:
    orch.set_password("alice")
    cookie = orch.session("alice")["Cookie"].split("=", 1)[1]
    token = orch.create_token(orch.kit_headers("alice")).json()["token"]
    engine = create_engine(orch.db_url)
    with engine.connect() as conn:
        sessions = conn.execute(text("SELECT token_hash FROM sessions")).scalars().all()
        tokens = conn.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
        passwords = conn.execute(text("SELECT hash FROM passwords")).scalars().all()
    engine.dispose()
    assert sessions == [hashlib.sha256(cookie.encode()).hexdigest()]
    assert tokens == [hashlib.sha256(token.encode()).hexdigest()]
    assert len(passwords) == 1 and passwords[0].startswith("$argon2id$")
    assert PASSWORD not in passwords[0]
