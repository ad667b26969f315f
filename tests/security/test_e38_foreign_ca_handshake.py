"""E38: a client certificate from another CA, a self-signed one, or none at all fails the mTLS handshake.

A real uvicorn server on loopback runs with `server_ssl_options` from the orchestrator's kit. Every
impostor below trusts the project's root (so it would accept the server) and claims a real
participant's name; only the project's own kit gets through. The app counts the requests that reach
it, to show a refused client never gets as far as the application.
"""

from __future__ import annotations

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
from fastapi import FastAPI

from custos.core.identity import Identity, Role
from custos.pki import (
    certificate_pem,
    client_ssl_context,
    create_root_ca,
    generate_key,
    issue_certificate,
    load_kit,
    private_key_pem,
    provision,
    server_ssl_options,
)
from custos.pki.project import ProjectSpec
from custos.pki.provision import CA_FOLDER

SITE_A = Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)


@dataclass
class Server:
    url: str
    hits: list[str]
    kits: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kits = tmp_path_factory.mktemp("e38") / "kits"
    spec = ProjectSpec.model_validate(
        {"name": "demo", "participants": [{"name": "site-a", "type": "gateway", "org": "hospital-a"}]}
    )
    provision(spec, kits)
    orchestrator = load_kit(kits / "orchestrator")
    hits: list[str] = []
    app = FastAPI()

    @app.get("/ping")
    def ping() -> str:
        hits.append("ping")
        return "pong"

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="critical", lifespan="off", **server_ssl_options(orchestrator))
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield Server(url=f"https://127.0.0.1:{sock.getsockname()[1]}", hits=hits, kits=kits)
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


def _exchange(server: Server, context: ssl.SSLContext) -> bytes:
    """Handshake, send one request, return the first bytes of the answer (b"" if the server hung up)."""
    with _connect(server, context) as tls:
        try:
            tls.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return tls.recv(1024)
        except OSError:  # includes ssl.SSLError and a reset: the server dropped us either way
            return b""


def _assert_refused(server: Server, context: ssl.SSLContext) -> None:
    before = len(server.hits)
    with httpx.Client(verify=context, timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(f"{server.url}/ping")
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
    with httpx.Client(verify=client_ssl_context(kit), timeout=10) as client:
        response = client.get(f"{server.url}/ping")
    tls12 = client_ssl_context(kit)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2

    assert response.status_code == 200
    assert response.json() == "pong"
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


def test_e38_client_without_a_certificate_fails_the_handshake(server: Server) -> None:
    context = ssl.create_default_context(cafile=str(server.kits / CA_FOLDER / "rootCA.pem"))

    _assert_refused(server, context)
