"""E43: guessing at sign-in, and the browser session's defences, against the real app in process.

- Failed sign-ins are counted per client address in the database, so every worker sees them: after
  five failures in fifteen minutes the address's next password attempt gets 429 with Retry-After,
  even with the right password, until the oldest failure leaves the window; another address is not
  slowed down. A success does not reset the count, and a burst of guesses sent at once gets no more
  than five tries. Guesses at one account from many addresses lock its password until its user
  signs in with the kit.
- A wrong kit signature spends its challenge and counts against the address; a genuine signature is
  never refused, so holding someone's (public) certificate does not let anyone lock them out.
- A wrong password, a name without a password and an unknown name get the same answer, and each runs
  Argon2, so neither the answer nor its time tells which it was.
- The session cookie is HttpOnly, Secure, SameSite=Strict; a state-changing request signed in by it
  must carry X-Custos-Request: 1.
- A revoked API token and an expired session are refused; neither a session nor an API token can set
  a password, so neither can be turned into a lasting hold on the account.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from custos.core.wire import auth_message
from custos.orchestrator.app import create_app
from custos.orchestrator.server import forwarding_options
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import certificate_pem, fingerprint
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in
from custos.pki.verify import sign

PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3 guess"
COOKIE = "custos_session"
CSRF = {"X-Custos-Request": "1"}
WRONG_PASSWORD = "wrong name or password; a user sets a password with `custos password set --kit KIT`"
# The client address of the test client `api`, as the orchestrator sees it.
ADDRESS = "192.0.2.10"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("e43") / "project"
    spec = ProjectSpec.model_validate(
        {
            "name": "e43",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "site-b", "type": "gateway", "org": "hospital-b"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
                {"name": "bob", "type": "user", "org": "university", "role": "member_researcher"},
            ],
        }
    )
    provision(spec, root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def settings(tmp_path: Path) -> OrchestratorSettings:
    return OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        audit_path=tmp_path / "audit.log",
        password_time_cost=1,
        password_memory_kib=1024,
        password_parallelism=1,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _serve(settings: OrchestratorSettings, kits: dict[str, Kit], clock: Clock) -> TestClient:
    return TestClient(
        create_app(settings, kits["orchestrator"].root_certificate, clock),
        base_url="https://testserver",
        client=(ADDRESS, 50000),
    )


def from_address(api: TestClient, address: str) -> TestClient:
    """Another client of the same orchestrator, connecting from `address`."""
    return TestClient(api.app, base_url="https://testserver", client=(address, 50000))


@pytest.fixture
def api(settings: OrchestratorSettings, kits: dict[str, Kit], clock: Clock) -> Iterator[TestClient]:
    with _serve(settings, kits, clock) as client:
        yield client


def kit_headers(api: TestClient, kit: Kit) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(api, kit).token}"}


def set_password(api: TestClient, kit: Kit, password: str = PASSWORD) -> None:
    r = api.post("/api/v1/auth/password", json={"password": password}, headers=kit_headers(api, kit))
    assert r.status_code == 204, r.text


def login(api: TestClient, name: str, password: str) -> httpx.Response:
    r = api.post("/api/v1/auth/login", json={"name": name, "password": password})
    api.cookies.clear()
    return r


def session(api: TestClient, name: str = "alice") -> dict[str, str]:
    r = login(api, name, PASSWORD)
    assert r.status_code == 200, r.text
    return {"Cookie": f"{COOKIE}={r.cookies[COOKIE]}"}


def forged_token_request(api: TestClient, victim: Kit, thief: Kit) -> dict[str, str]:
    """A token request for `victim`'s certificate signed with `thief`'s key."""
    pem = certificate_pem(victim.certificate)
    ch = api.post("/api/v1/auth/challenge", json={"certificate_pem": pem}).json()
    message = auth_message(ch["challenge_id"], ch["nonce"], fingerprint(victim.certificate))
    signature = base64.b64encode(sign(thief.private_key, message)).decode()
    return {"challenge_id": ch["challenge_id"], "certificate_pem": pem, "signature": signature}


# --- the rate limit ------------------------------------------------------------------------------


def test_e43_five_failures_refuse_the_address_even_the_right_password(
    api: TestClient, kits: dict[str, Kit], clock: Clock
) -> None:
    set_password(api, kits["alice"])
    assert [login(api, "alice", WRONG).status_code for _ in range(5)] == [401] * 5
    clock.now += timedelta(minutes=5)

    r = login(api, "alice", PASSWORD)
    assert r.status_code == 429
    retry_after = int(r.headers["Retry-After"])
    assert retry_after == 10 * 60, "the oldest failure leaves the 15-minute window in 10 minutes"
    retry_at = (clock.now + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M:%S")
    when = f"try again after {retry_at} UTC (in {retry_after} s)"
    assert r.json() == {"detail": f"too many failed sign-ins from {ADDRESS}; {when}"}
    assert COOKIE not in r.headers.get("set-cookie", "")

    clock.now += timedelta(seconds=retry_after - 1)
    assert login(api, "alice", PASSWORD).status_code == 429, "not before the window has passed"
    clock.now += timedelta(seconds=1)
    assert login(api, "alice", PASSWORD).status_code == 200


def test_e43_a_success_does_not_reset_the_count(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    for _ in range(4):
        assert login(api, "alice", WRONG).status_code == 401
    assert login(api, "alice", PASSWORD).status_code == 200
    assert login(api, "alice", WRONG).status_code == 401  # the fifth failure of the window
    assert login(api, "alice", PASSWORD).status_code == 429


def test_e43_the_count_is_per_address_not_per_account(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    set_password(api, kits["bob"])
    for _ in range(5):
        assert login(api, "alice", WRONG).status_code == 401
    assert login(api, "alice", PASSWORD).status_code == 429
    assert login(api, "bob", PASSWORD).status_code == 429, "the address is slowed, whatever it tries"
    elsewhere = from_address(api, "198.51.100.20")
    assert login(elsewhere, "alice", PASSWORD).status_code == 200, "alice is not locked out"
    assert login(elsewhere, "bob", PASSWORD).status_code == 200


def test_e43_unknown_names_are_counted_like_known_ones(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    for _ in range(5):
        assert login(api, "nobody", WRONG).status_code == 401
    assert login(api, "nobody", WRONG).status_code == 429, "an unknown name behaves like a known one"
    assert login(api, "alice", PASSWORD).status_code == 429


def test_e43_guesses_from_many_addresses_lock_the_password_until_the_kit_signs_in(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    set_password(api, kits["alice"])
    guessers = [from_address(api, f"198.51.100.{i}") for i in range(4)]
    for guesser in guessers:  # 4 addresses x 5 guesses: the account's 20 of the window
        assert [login(guesser, "alice", WRONG).status_code for _ in range(5)] == [401] * 5
    browser = from_address(api, "203.0.113.5")
    r = login(browser, "ALICE", PASSWORD)  # another spelling is the same account
    assert r.status_code == 429
    assert r.json()["detail"].startswith(
        "too many failed password sign-ins for alice from several addresses; sign in with your kit "
        "(any `custos` command) to lift this, or try again after "
    )
    assert int(r.headers["Retry-After"]) == 15 * 60
    assert login(from_address(api, "203.0.113.6"), "bob", WRONG).status_code == 401, "only alice's"

    assert sign_in(browser, kits["alice"]).name == "alice", "the kit always signs its holder in"
    assert login(browser, "alice", PASSWORD).status_code == 200, "and lifts the password's lock"
    assert login(guessers[0], "alice", PASSWORD).status_code == 429, "the guessers stay slowed down"


def test_e43_the_count_is_shared_by_every_worker(
    settings: OrchestratorSettings, kits: dict[str, Kit], clock: Clock
) -> None:
    with _serve(settings, kits, clock) as one, _serve(settings, kits, clock) as two:
        set_password(one, kits["alice"])
        for worker in (one, two, one, two, one):
            assert login(worker, "alice", WRONG).status_code == 401
        assert login(two, "alice", PASSWORD).status_code == 429
        assert login(one, "alice", PASSWORD).status_code == 429


def test_e43_a_burst_of_guesses_sent_at_once_gets_no_more_than_five(
    api: TestClient, kits: dict[str, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_password(api, kits["alice"])
    real_verify = PasswordHasher.verify

    def slow_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        time.sleep(0.3)  # as long as a real Argon2 run, so that the guesses overlap
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", slow_verify)
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: login(api, "alice", WRONG).status_code, range(12)))
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_e43_bad_kit_signatures_slow_the_address_never_the_key_holder(
    api: TestClient, kits: dict[str, Kit], clock: Clock
) -> None:
    victim, thief = kits["site-b"], kits["site-a"]
    for _ in range(5):
        r = api.post("/api/v1/auth/token", json=forged_token_request(api, victim, thief))
        assert r.status_code == 401
        assert "signature does not match" in r.json()["detail"]
    r = api.post("/api/v1/auth/token", json=forged_token_request(api, victim, thief))
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) == 15 * 60
    assert r.json()["detail"].startswith(f"too many failed sign-ins from {ADDRESS}; ")

    # A genuine signature from the very same address is never refused.
    assert sign_in(api, victim).name == "site-b"
    pem = certificate_pem(victim.certificate)
    ch = api.post("/api/v1/auth/challenge", json={"certificate_pem": pem}).json()
    message = auth_message(ch["challenge_id"], ch["nonce"], fingerprint(victim.certificate))
    genuine = base64.b64encode(sign(victim.private_key, message)).decode()
    body = {"challenge_id": ch["challenge_id"], "certificate_pem": pem, "signature": genuine}
    assert api.post("/api/v1/auth/token", json=body).status_code == 200
    assert api.post("/api/v1/auth/token", json=body).status_code == 401, "a challenge is spent once"
    assert sign_in(api, thief).name == "site-a"

    elsewhere = from_address(api, "198.51.100.30")
    r = elsewhere.post("/api/v1/auth/token", json=forged_token_request(elsewhere, victim, thief))
    assert r.status_code == 401, "another address has its own count"
    clock.now += timedelta(minutes=15)
    r = api.post("/api/v1/auth/token", json=forged_token_request(api, victim, thief))
    assert r.status_code == 401, "the window has passed"


def test_e43_only_a_trusted_proxy_names_the_client(
    settings: OrchestratorSettings, kits: dict[str, Kit], clock: Clock
) -> None:
    """The app as `custos orchestrator start` serves it, without and with `--trusted-proxy`."""
    app = create_app(settings, kits["orchestrator"].root_certificate, clock)
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    for trusted, counted in (((), "127.0.0.1"), (("127.0.0.0/8",), "198.51.100.7")):
        config = uvicorn.Config(app, **forwarding_options(trusted))
        config.load()
        client = TestClient(config.loaded_app, base_url="https://testserver", client=("127.0.0.1", 50000))
        guess = {"name": "alice", "password": WRONG}
        statuses = [
            client.post("/api/v1/auth/login", json=guess, headers=forwarded).status_code for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        r = client.post("/api/v1/auth/login", json=guess, headers=forwarded)
        assert r.json()["detail"].startswith(f"too many failed sign-ins from {counted}; ")


def test_e43_password_guesses_do_not_lock_the_kit(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    for _ in range(6):
        login(api, "alice", WRONG)
    assert login(api, "alice", PASSWORD).status_code == 429
    # The kit is the way back in (and a gateway has no password to be locked by).
    assert sign_in(api, kits["alice"]).name == "alice"
    for _ in range(6):
        login(api, "site-a", WRONG)
    assert sign_in(api, kits["site-a"]).name == "site-a"


def test_e43_refusals_and_rate_limits_are_audited(
    api: TestClient, kits: dict[str, Kit], settings: OrchestratorSettings
) -> None:
    set_password(api, kits["alice"])
    for _ in range(6):
        login(api, "alice", WRONG)
    api.post("/api/v1/auth/token", json=forged_token_request(api, kits["site-b"], kits["site-a"]))
    trail = settings.audit_path.read_text()
    assert trail.count("[U:alice][A:sign_in_refused]") == 5
    assert trail.count("[U:alice][A:sign_in_rate_limited]") == 1
    assert trail.count("[U:site-b][A:sign_in_refused]") == 1
    assert f"method=password from {ADDRESS}: limit of the address" in trail
    assert f"method=token from {ADDRESS}: signature does not match" in trail
    assert WRONG not in trail and PASSWORD not in trail


# --- no account enumeration ----------------------------------------------------------------------


def test_e43_wrong_password_no_password_and_unknown_name_look_the_same(
    api: TestClient, kits: dict[str, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_password(api, kits["alice"])
    sign_in(api, kits["bob"])  # bob is a user, but has no password
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(password))
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    answers = [login(api, name, WRONG) for name in ("alice", "bob", "nobody", "site-a")]
    assert {(r.status_code, r.json()["detail"]) for r in answers} == {(401, WRONG_PASSWORD)}
    assert {tuple(sorted(r.headers)) for r in answers} == {tuple(sorted(answers[0].headers))}
    assert verified == [WRONG] * 4, "Argon2 runs for every name, known or not"


# --- the session cookie --------------------------------------------------------------------------


def test_e43_the_session_cookie_is_httponly_secure_samesite_strict(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    set_password(api, kits["alice"])
    r = login(api, "alice", PASSWORD)
    header = r.headers["set-cookie"]
    name_value, *attributes = [part.strip() for part in header.split(";")]
    assert name_value.startswith(f"{COOKIE}=")
    assert len(name_value) > len(COOKIE) + 40, "the session id carries 256 random bits"
    flags = {a.split("=", 1)[0].lower(): (a.split("=", 1)[1] if "=" in a else True) for a in attributes}
    assert flags["httponly"] is True
    assert flags["secure"] is True
    assert str(flags["samesite"]).lower() == "strict"
    assert flags["path"] == "/"
    assert flags["max-age"] == str(8 * 3600)


def test_e43_a_state_change_by_cookie_needs_the_custom_header(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    cookie = session(api)
    r = api.post("/api/v1/tokens", json={"name": "csrf"}, headers=cookie)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "a POST signed in by the session cookie must carry the header X-Custos-Request: 1 "
        "(a defence against cross-site requests)"
    )
    assert (
        api.post(
            "/api/v1/tokens", json={"name": "csrf"}, headers=cookie | {"X-Custos-Request": "yes"}
        ).status_code
        == 403
    )
    assert api.post("/api/v1/auth/logout", headers=cookie).status_code == 403
    assert api.get("/api/v1/tokens", headers=cookie).json() == [], "nothing was created"
    assert api.get("/api/v1/me", headers=cookie).status_code == 200, "a read needs no header"
    assert api.post("/api/v1/tokens", json={"name": "csrf"}, headers=cookie | CSRF).status_code == 201
    # A bearer token is not sent by the browser on its own, so it needs no such header.
    assert (
        api.post("/api/v1/tokens", json={"name": "sdk"}, headers=kit_headers(api, kits["alice"])).status_code
        == 201
    )


def test_e43_an_expired_session_is_refused(api: TestClient, kits: dict[str, Kit], clock: Clock) -> None:
    set_password(api, kits["alice"])
    cookie = session(api)
    clock.now += timedelta(hours=8) - timedelta(seconds=1)
    assert api.get("/api/v1/me", headers=cookie).status_code == 200
    clock.now += timedelta(seconds=2)
    r = api.get("/api/v1/me", headers=cookie)
    assert r.status_code == 401
    assert r.json()["detail"] == "the session is unknown, ended or expired; sign in again"


def test_e43_a_forged_or_ended_session_is_refused(api: TestClient, kits: dict[str, Kit]) -> None:
    set_password(api, kits["alice"])
    cookie = session(api)
    assert api.get("/api/v1/me", headers={"Cookie": f"{COOKIE}=forged"}).status_code == 401
    value = cookie["Cookie"].split("=", 1)[1]
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {value}"}).status_code == 401, (
        "a session id is not a bearer token"
    )
    assert api.post("/api/v1/auth/logout", headers=cookie | CSRF).status_code == 204
    assert api.get("/api/v1/me", headers=cookie).status_code == 401


# --- API tokens and the password ---------------------------------------------------------------


def test_e43_a_revoked_api_token_is_refused(api: TestClient, kits: dict[str, Kit]) -> None:
    alice = kit_headers(api, kits["alice"])
    created = api.post("/api/v1/tokens", json={"name": "leaked"}, headers=alice).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert api.get("/api/v1/me", headers=bearer).status_code == 200
    assert api.delete(f"/api/v1/tokens/{created['id']}", headers=alice).status_code == 204
    assert api.get("/api/v1/me", headers=bearer).status_code == 401
    assert api.get("/api/v1/tokens", headers=bearer).status_code == 401


def test_e43_neither_a_session_nor_an_api_token_can_set_the_password(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    set_password(api, kits["alice"])
    alice = kit_headers(api, kits["alice"])
    token = api.post("/api/v1/tokens", json={"name": "t"}, headers=alice).json()["token"]
    takeover = {"password": "the attacker's password"}
    for headers in (session(api) | CSRF, {"Authorization": f"Bearer {token}"}):
        r = api.post("/api/v1/auth/password", json=takeover, headers=headers)
        assert r.status_code == 403
        assert "a password can be set only when signed in with your kit" in r.json()["detail"]
    assert login(api, "alice", takeover["password"]).status_code == 401
    assert login(api, "alice", PASSWORD).status_code == 200
