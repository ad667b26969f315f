"""Fixtures for the PKI tests: a provisioned project, and a real HTTPS server speaking the auth routes."""

from __future__ import annotations

import base64
import binascii
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from custos.core.clock import utcnow
from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity
from custos.core.wire import Challenge, ChallengeRequest, Me, TokenGrant, TokenRequest, auth_message
from custos.pki import Kit, load_kit, server_ssl_options
from custos.pki.certs import fingerprint, load_certificate_pem
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.verify import verify_certificate, verify_signature

PROJECT = {
    "name": "demo",
    "orchestrator": {"host": "127.0.0.1", "port": 8443},
    "participants": [
        {"name": "site-a", "type": "gateway", "org": "hospital-a"},
        {"name": "alice@uni.org", "type": "user", "org": "university", "role": "lead_researcher"},
    ],
}


@dataclass(frozen=True)
class Project:
    out: Path
    orchestrator: Kit
    gateway: Kit
    user: Kit


def provision_project(out: Path, name: str = "demo") -> Project:
    spec = ProjectSpec.model_validate({**PROJECT, "name": name})
    provision(spec, out)
    return Project(
        out=out,
        orchestrator=load_kit(out / "orchestrator"),
        gateway=load_kit(out / "site-a"),
        user=load_kit(out / "alice@uni.org"),
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provision_project(tmp_path_factory.mktemp("project") / "kits")


@pytest.fixture
def project_spec() -> ProjectSpec:
    return ProjectSpec.model_validate(PROJECT)


@pytest.fixture
def kits(tmp_path: Path, project_spec: ProjectSpec) -> Path:
    """A freshly provisioned output folder of PROJECT (CA folder and kits) that a test may change."""
    out = tmp_path / "kits"
    provision(project_spec, out)
    return out


@pytest.fixture
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap key derivation for tests that write many archives; both sides of a test use it alike."""
    monkeypatch.setattr("custos.pki.archive.SCRYPT_N", 2**10)


@pytest.fixture(scope="module")
def other_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A second project whose participants have the same names, under a different root CA."""
    return provision_project(tmp_path_factory.mktemp("other") / "kits", name="other")


@dataclass
class AuthServer:
    """The orchestrator's two auth routes and one protected route, as docs/architecture.md
    ("Sign-in") describes them.

    Knobs let a test make it misbehave: revoke every token, grant tokens that die at once, or answer
    sign-in with someone else's identity.
    """

    kit: Kit
    token_ttl: timedelta = timedelta(minutes=10)
    impersonate: Identity | None = None
    challenges: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokens: dict[str, Identity] = field(default_factory=dict)
    sign_ins: int = 0
    unauthorized: int = 0
    echoed: list[object] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.exception_handler(AuthenticationFailed)
        async def _refused(request: Request, exc: AuthenticationFailed) -> JSONResponse:
            return JSONResponse({"detail": exc.message}, status_code=401)

        @app.post("/api/v1/auth/challenge")
        def challenge(body: ChallengeRequest) -> Challenge:
            cert = load_certificate_pem(body.certificate_pem)
            verify_certificate(cert, self.kit.root_certificate, utcnow())
            challenge_id, nonce = secrets.token_hex(8), secrets.token_hex(16)
            self.challenges[challenge_id] = (nonce, fingerprint(cert))
            return Challenge(
                challenge_id=challenge_id, nonce=nonce, expires_at=utcnow() + timedelta(minutes=1)
            )

        @app.post("/api/v1/auth/token")
        def token(body: TokenRequest) -> TokenGrant:
            cert = load_certificate_pem(body.certificate_pem)
            identity = verify_certificate(cert, self.kit.root_certificate, utcnow())
            nonce, expected = self.challenges.pop(body.challenge_id, ("", ""))
            if not nonce or expected != fingerprint(cert):
                raise AuthenticationFailed("challenge is unknown or was issued for another certificate")
            try:
                signature = base64.b64decode(body.signature, validate=True)
            except binascii.Error as exc:
                raise AuthenticationFailed("signature is not base64") from exc
            verify_signature(cert, auth_message(body.challenge_id, nonce, expected), signature)
            granted = self.impersonate or identity
            value = secrets.token_urlsafe(24)
            self.tokens[value] = granted
            self.sign_ins += 1
            return TokenGrant(
                token=value,
                expires_at=utcnow() + self.token_ttl,
                name=granted.name,
                org=granted.org,
                role=granted.role.value,
            )

        def caller(authorization: str | None) -> Identity:
            scheme, _, value = (authorization or "").partition(" ")
            identity = self.tokens.get(value) if scheme == "Bearer" else None
            if identity is None:
                self.unauthorized += 1
                raise AuthenticationFailed("token is missing, expired or revoked; sign in again")
            return identity

        @app.get("/api/v1/me")
        def me(authorization: Annotated[str | None, Header()] = None) -> Me:
            who = caller(authorization)
            return Me(name=who.name, org=who.org, role=who.role.value, fingerprint="")

        @app.post("/api/v1/echo")
        def echo(body: dict[str, object], authorization: Annotated[str | None, Header()] = None) -> object:
            caller(authorization)
            self.echoed.append(body)
            return body

        return app


@dataclass
class RunningServer:
    url: str
    auth: AuthServer


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_in_thread(app: FastAPI, kit: Kit) -> Iterator[str]:
    """Run `app` under uvicorn with the kit's mTLS settings on a free loopback port; yield its URL."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **server_ssl_options(kit))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test HTTPS server did not start")
            time.sleep(0.02)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the test HTTPS server did not stop"


@pytest.fixture
def auth_server(project: Project) -> Iterator[RunningServer]:
    auth = AuthServer(kit=project.orchestrator)
    with serve_in_thread(auth.app(), project.orchestrator) as url:
        yield RunningServer(url=url, auth=auth)
