"""E42: attestation evidence that is stale, replayed, of the wrong runtime, from a revoked or foreign
gateway, for another dataset's grant or another package's key gets no key. The broker here is the
real broker app (its vault, nonce book, verifier and audit trail) with real kits; each refusal
answers 403 with its reason and is on the broker's own hash-chained trail with that reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi.testclient import TestClient
from tests.unit.keybroker.conftest import (
    CIPHERTEXT,
    KEY_ID,
    Project,
    ago,
    deposit,
    grant,
    key_policy,
    provision_project,
    release_request,
)

from custos.audit import read_events
from custos.audit.verify import verify_trail
from custos.core.wire.keybroker import KeyReleaseRequest
from custos.keybroker.app import create_app
from custos.keybroker.server import open_broker
from custos.keybroker.service import KeyBroker
from custos.pki.revocation import revoke_participant
from custos.sdk.keybroker import signed_owner_request


@pytest.fixture
def project(tmp_path: Path) -> Project:  # per test: some tests revoke a certificate
    return provision_project(
        tmp_path / "project",
        "e42",
        [
            {"name": "site-a", "type": "gateway", "org": "hospital-a"},
            {"name": "site-b", "type": "gateway", "org": "hospital-b"},
            {"name": "carol", "type": "user", "org": "hospital-a", "role": "org_admin"},
            {"name": "bert", "type": "user", "org": "hospital-b", "role": "org_admin"},
            {"name": "olga", "type": "user", "org": "modelco", "role": "lead_researcher"},
            {"name": "broker", "type": "keybroker", "org": "modelco", "host": "127.0.0.1", "port": 9443},
        ],
    )


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provision_project(
        tmp_path_factory.mktemp("foreign") / "project",
        "other",
        [
            {"name": "site-a", "type": "gateway", "org": "hospital-a"},
            {"name": "carol", "type": "user", "org": "hospital-a", "role": "org_admin"},
        ],
    )


@pytest.fixture
def broker(project: Project, tmp_path: Path) -> KeyBroker:
    return open_broker(project.out / "broker", tmp_path / "broker-state", b"\x11" * 32)


@pytest.fixture
def api(broker: KeyBroker, project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(broker)) as client:
        deposit(client, project.kits["olga"])
        yield client


def refused(api: TestClient, broker: KeyBroker, body: KeyReleaseRequest, reason: str) -> str:
    r = api.post("/api/v1/keys/release", json=body.model_dump(mode="json"))
    assert r.status_code == 403, r.text
    detail: str = r.json()["detail"]
    assert detail.startswith(f"key release refused ({reason})"), detail
    trail = broker.vault._state / "audit.log"
    last = read_events(trail)[-1]
    assert last.action == "key_refused" and f"({reason})" in last.message
    assert verify_trail(trail).ok
    return detail


def runtime() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def test_e42_stale_evidence_gets_no_key(api: TestClient, broker: KeyBroker, project: Project) -> None:
    k = project.kits
    body = release_request(api, k["site-a"], k["carol"], runtime(), issued_at=ago(600))
    refused(api, broker, body, "stale")


def test_e42_a_replayed_nonce_gets_no_key(api: TestClient, broker: KeyBroker, project: Project) -> None:
    k = project.kits
    first = release_request(api, k["site-a"], k["carol"], runtime())
    assert api.post("/api/v1/keys/release", json=first.model_dump(mode="json")).status_code == 200
    refused(api, broker, first, "nonce")  # the very same evidence again
    again = release_request(api, k["site-a"], k["carol"], runtime(), nonce=first.evidence.nonce)
    refused(api, broker, again, "nonce")  # fresh evidence, old nonce
    made_up = release_request(api, k["site-a"], k["carol"], runtime(), nonce="not-from-the-broker")
    refused(api, broker, made_up, "nonce")


def test_e42_a_wrong_measurement_gets_no_key(api: TestClient, broker: KeyBroker, project: Project) -> None:
    k = project.kits
    body = release_request(api, k["site-a"], k["carol"], runtime(), measurement="00" * 32)
    refused(api, broker, body, "measurement")


def test_e42_a_revoked_gateway_gets_no_key(api: TestClient, broker: KeyBroker, project: Project) -> None:
    k = project.kits
    revoke_participant(project.out, "site-a", reason="stolen")
    crl = (project.out / "ca" / "revoked.crl.pem").read_text()
    body = release_request(api, k["site-a"], k["carol"], runtime()).model_copy(update={"crl_pem": crl})
    assert "revoked" in refused(api, broker, body, "untrusted_gateway")
    # the list stays in force: the next request needs not carry it
    refused(api, broker, release_request(api, k["site-a"], k["carol"], runtime()), "untrusted_gateway")


def test_e42_a_foreign_gateway_gets_no_key(
    api: TestClient, broker: KeyBroker, project: Project, foreign: Project
) -> None:
    body = release_request(api, foreign.kits["site-a"], foreign.kits["carol"], runtime())
    refused(api, broker, body, "untrusted_gateway")


def test_e42_evidence_signed_by_another_gateway_gets_no_key(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    k = project.kits
    body = release_request(api, k["site-a"], k["carol"], runtime())
    other = release_request(api, k["site-b"], k["bert"], runtime())
    swapped = body.model_copy(update={"gateway_certificate_pem": other.gateway_certificate_pem})
    refused(api, broker, swapped, "bad_evidence")


def test_e42_a_grant_for_another_dataset_gets_no_key(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    k = project.kits
    body = release_request(
        api, k["site-a"], k["carol"], runtime(), signed_grant=grant(k["carol"], "site-a/visits")
    )
    assert "another dataset" in refused(api, broker, body, "grant")
    # a grant signed by another site's custodian for their own dataset does not help either
    body = release_request(
        api, k["site-a"], k["carol"], runtime(), signed_grant=grant(k["bert"], "site-b/patients")
    )
    refused(api, broker, body, "grant")
    # a grant of this dataset that does not allow the package
    body = release_request(
        api, k["site-a"], k["carol"], runtime(), signed_grant=grant(k["carol"], models=["stats@>=1.0,<2"])
    )
    assert "does not grant secret-sauce@1.0.0" in refused(api, broker, body, "grant")


def test_e42_a_request_for_another_packages_key_gets_no_key(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    k = project.kits
    body = release_request(api, k["site-a"], k["carol"], runtime(), package_digest="ee" * 32)
    refused(api, broker, body, "wrong_package")
    unknown = release_request(api, k["site-a"], k["carol"], runtime(), key_id="key-nobody-0001")
    refused(api, broker, unknown, "unknown_key")


def test_e42_a_revoked_key_and_an_expired_policy_release_nothing(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    k = project.kits
    expired = signed_owner_request(k["olga"], "policy", KEY_ID, policy=key_policy(expires_at=ago(1)))
    assert api.post("/api/v1/owner", json=expired.model_dump(mode="json")).status_code == 200
    refused(api, broker, release_request(api, k["site-a"], k["carol"], runtime()), "expired")
    revoke = signed_owner_request(k["olga"], "revoke", KEY_ID, reason="licence ended")
    assert api.post("/api/v1/owner", json=revoke.model_dump(mode="json")).status_code == 200
    detail = refused(api, broker, release_request(api, k["site-a"], k["carol"], runtime()), "revoked")
    assert "licence ended" in detail


def test_e42_a_gateway_the_policy_does_not_name_gets_no_key(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    k = project.kits
    only_a = signed_owner_request(k["olga"], "policy", KEY_ID, policy=key_policy(gateways=["site-a"]))
    assert api.post("/api/v1/owner", json=only_a.model_dump(mode="json")).status_code == 200
    body = release_request(api, k["site-b"], k["bert"], runtime())
    refused(api, broker, body, "gateway_not_allowed")
    assert CIPHERTEXT  # the policy still names the package
