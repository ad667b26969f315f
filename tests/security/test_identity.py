"""Identity over the wire, against the real orchestrator process over HTTPS (threats E38-E40 and
C27 of docs/threats.md)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from custos.core.wire import auth_message
from custos.local.cluster import Cluster
from custos.pki.certs import certificate_pem, fingerprint
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context
from custos.pki.verify import sign


def _client(cluster: Cluster, kit: Kit, *, auth: bool = True) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.url, verify=client_ssl_context(kit), auth=KitAuth(kit) if auth else None, timeout=10
    )


def test_e38_certificate_from_another_ca_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    spec = ProjectSpec.model_validate(
        {
            "name": "impostors",
            "participants": [
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"}
            ],
        }
    )
    provision(spec, tmp_path / "foreign")
    foreign = load_kit(tmp_path / "foreign" / "alice")
    context = client_ssl_context(foreign)
    # Trust the real orchestrator, so that only the client certificate is wrong.
    context.load_verify_locations(cafile=str(load_kit(cluster.kit_dir("alice")).root_path))
    with (
        httpx.Client(base_url=cluster.url, verify=context, timeout=10) as client,
        pytest.raises(httpx.TransportError),
    ):
        # With TLS 1.3 the server refuses the certificate after the client's side of the handshake,
        # so the refusal surfaces on the first request as a dropped connection.
        client.get("/healthz")


def test_e40_a_gateway_cannot_poll_as_another_site(cluster: Cluster) -> None:
    with _client(cluster, load_kit(cluster.kit_dir("site-a"))) as client:
        r = client.get("/api/v1/gateway/tasks/next", params={"gateway": "site-b", "wait": 0})
        assert r.status_code == 403
        assert r.json()["detail"] == "gateway site-a may not poll for tasks of site-b"


def test_e40_site_a_key_cannot_sign_in_with_site_b_certificate(cluster: Cluster) -> None:
    site_a, site_b = load_kit(cluster.kit_dir("site-a")), load_kit(cluster.kit_dir("site-b"))
    with _client(cluster, site_a, auth=False) as client:
        pem = certificate_pem(site_b.certificate)
        challenge = client.post("/api/v1/auth/challenge", json={"certificate_pem": pem}).json()
        message = auth_message(challenge["challenge_id"], challenge["nonce"], fingerprint(site_b.certificate))
        signature = base64.b64encode(sign(site_a.private_key, message)).decode()
        body = {"challenge_id": challenge["challenge_id"], "certificate_pem": pem, "signature": signature}
        r = client.post("/api/v1/auth/token", json=body)
        assert r.status_code == 401
        assert "signature" in r.json()["detail"]


def test_c27_identity_fields_set_by_the_caller_are_ignored(cluster: Cluster) -> None:
    with _client(cluster, load_kit(cluster.kit_dir("mallory"))) as client:
        r = client.get(
            "/api/v1/me", headers={"X-User": "alice", "X-Org": "university", "X-Role": "org_admin"}
        )
        assert r.json()["name"] == "mallory"
        assert r.json()["org"] == "elsewhere"
    with _client(cluster, load_kit(cluster.kit_dir("mallory")), auth=False) as client:
        assert client.get("/api/v1/me", headers={"X-User": "alice"}).status_code == 401
