"""E38: a client certificate from another CA, or a self-signed one, fails the TLS handshake; a client
with no certificate gets through TLS but is refused (401) by every route that needs a sign-in.

The real orchestrator app runs under uvicorn on loopback with the TLS options `custos orchestrator
start` uses: a client certificate is optional (so a browser can sign in with a password), but one
that is presented must chain to the project's root. Every impostor below trusts the project's root
(so it would accept the server) and presents a certificate with a real participant's name. The app
counts the requests that reach it, to show a refused client never gets as far as the application.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from starlette.types import Receive, Scope, Send

from custos.core.identity import Identity, Role
from custos.orchestrator.app import create_app
from custos.orchestrator.server import orchestrator_ssl_options
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki import (
    certificate_pem,
    client_ssl_context,
    create_root_ca,
    generate_key,
    issue_certificate,
    load_kit,
    private_key_pem,
)
from custos.pki.project import ProjectSpec
from custos.pki.provision import CA_FOLDER, provision
from custos.pki.signin import KitAuth
from custos.sdk import Client

SITE_A = Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)
# The routes a caller may use before signing in; every other route must answer 401 to a caller with
# no credentials.
SIGN_IN_NOT_NEEDED = {
    ("GET", "/healthz"),
    ("POST", "/api/v1/auth/challenge"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/crl"),  # a revocation list is public by nature
}


@dataclass
class Server:
    url: str
    hits: list[str]
    kits: Path
    routes: list[tuple[str, str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("e38")
    kits = work / "kits"
    spec = ProjectSpec.model_validate(
        {
            "name": "demo",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
            ],
        }
    )
    provision(spec, kits)
    orchestrator = load_kit(kits / "orchestrator")
    settings = OrchestratorSettings(database_url=f"sqlite:///{work / 'o.db'}", audit_path=work / "audit.log")
    app = create_app(settings, orchestrator.root_certificate)
    # Every route of the API, as its OpenAPI description lists them.
    routes = sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)
    hits: list[str] = []

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hits.append(scope["path"])
        await app(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        counting, log_level="critical", lifespan="on", **orchestrator_ssl_options(orchestrator)
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield Server(url=f"https://127.0.0.1:{sock.getsockname()[1]}", hits=hits, kits=kits, routes=routes)
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
        sock.close()
    assert not thread.is_alive(), "server did not stop"


def _context_presenting(
    server: Server, cert: x509.Certificate, key_pem: bytes, tmp_path: Path
) -> ssl.SSLContext:
    """A client that trusts the project's root but presents `cert`."""
    (tmp_path / "cert.pem").write_text(certificate_pem(cert))
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(cafile=str(server.kits / CA_FOLDER / "rootCA.pem"))
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    return context


def _connect(server: Server, context: ssl.SSLContext) -> ssl.SSLSocket:
    port = httpx.URL(server.url).port or 443
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    # The TLS socket takes over the raw one's descriptor, so closing it closes both.
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def _exchange(server: Server, context: ssl.SSLContext, path: str = "/healthz") -> bytes:
    """Handshake, send one request, return the first bytes of the answer (b"" if the server hung up)."""
    with _connect(server, context) as tls:
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            return tls.recv(1024)
        except OSError:  # includes ssl.SSLError and a reset: the server dropped us either way
            return b""


def _assert_refused(server: Server, context: ssl.SSLContext) -> None:
    before = len(server.hits)
    with httpx.Client(verify=context, timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(f"{server.url}/healthz")
    # Under TLS 1.3 the server judges our certificate after our side of the handshake is done, so the
    # refusal shows as a connection dropped without an answer.
    assert _exchange(server, context) == b""
    # Under TLS 1.2 it judges before finishing, so the handshake itself fails.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(OSError):
        _connect(server, context).close()
    assert len(server.hits) == before, "a refused client reached the application"


def test_the_projects_own_kit_is_accepted(server: Server) -> None:
    kit = load_kit(server.kits / "site-a")
    with httpx.Client(
        base_url=server.url, verify=client_ssl_context(kit), auth=KitAuth(kit), timeout=10
    ) as client:
        health = client.get("/healthz")
        me = client.get("/api/v1/me")
    tls12 = client_ssl_context(kit)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2

    assert health.json() == {"status": "ok"}
    assert me.json()["name"] == "site-a"
    assert _exchange(server, client_ssl_context(kit)).startswith(b"HTTP/1.1 200 OK")
    assert _exchange(server, tls12).startswith(b"HTTP/1.1 200 OK")


def test_e38_certificate_from_another_ca_fails_the_handshake(server: Server, tmp_path: Path) -> None:
    # Another CA with the same project name, issuing a certificate with site-a's exact identity.
    foreign_ca, foreign_ca_key = create_root_ca("demo")
    key = generate_key()
    forged = issue_certificate(foreign_ca, foreign_ca_key, SITE_A, key.public_key())
    context = _context_presenting(server, forged, private_key_pem(key), tmp_path)

    _assert_refused(server, context)


def test_e38_self_signed_certificate_fails_the_handshake(server: Server, tmp_path: Path) -> None:
    key = generate_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "site-a"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hospital-a"),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "gateway"),
        ]
    )
    root = load_kit(server.kits / "site-a").root_certificate
    self_signed = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.subject)  # claims the project's CA as issuer; the signature says otherwise
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.not_valid_before_utc)
        .not_valid_after(root.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    context = _context_presenting(server, self_signed, private_key_pem(key), tmp_path)

    _assert_refused(server, context)


def _no_certificate(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.kits / CA_FOLDER / "rootCA.pem"))


def test_e38_client_without_a_certificate_completes_tls_and_is_refused_by_every_protected_route(
    server: Server,
) -> None:
    tls12 = _no_certificate(server)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert _exchange(server, _no_certificate(server)).startswith(b"HTTP/1.1 200 OK")
    assert _exchange(server, tls12).startswith(b"HTTP/1.1 200 OK")
    assert _exchange(server, tls12, "/api/v1/me").startswith(b"HTTP/1.1 401 Unauthorized")

    protected = [(m, p) for m, p in server.routes if (m, p) not in SIGN_IN_NOT_NEEDED]
    assert {("GET", "/api/v1/me"), ("POST", "/api/v1/auth/password"), ("GET", "/api/v1/tokens")} <= set(
        protected
    )
    answers = {}
    with httpx.Client(base_url=server.url, verify=_no_certificate(server), timeout=10) as client:
        for method, path in protected:
            # Any value will do for a path parameter: the caller is refused before it is looked at.
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            answers[(method, path)] = client.request(method, concrete).status_code
    assert answers == dict.fromkeys(protected, 401)


def test_an_api_token_signs_in_without_a_client_certificate(server: Server) -> None:
    kit = load_kit(server.kits / "alice")
    http = httpx.Client(
        base_url=f"{server.url}/api/v1", verify=client_ssl_context(kit), auth=KitAuth(kit), timeout=10
    )
    with Client(http, url=server.url) as by_kit:
        created = by_kit.create_token("e38", days=1)
    root = server.kits / CA_FOLDER / "rootCA.pem"
    with Client.from_token(server.url, created.token, root_ca=root, timeout=10) as by_token:
        me = by_token.me()
        by_token.revoke_token(created.id)
    assert (me.name, me.org, me.role) == ("alice", "university", "lead_researcher")
    with httpx.Client(base_url=server.url, verify=_no_certificate(server), timeout=10) as client:
        revoked = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created.token}"})
    assert revoked.status_code == 401
