"""E42 with AWS Nitro documents at the key broker: the broker pins a root (here a test root, injected
by configuration as the AWS Nitro root would be) and refuses a debug-mode enclave, a wrong PCR0, a
chain to another root, a replayed nonce; each refusal is on the broker's trail with its reason. A
document that passes gets the key wrapped for the public key the enclave put in it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from tests.unit.attestation.nitro_documents import PCR0, EnclavePki, document, payload
from tests.unit.keybroker.conftest import DATA_KEY, Project, deposit, release_request

from custos.attestation.wrap import public_bytes, unwrap_key
from custos.audit import read_events
from custos.core.wire.keybroker import EvidenceKind, KeyReleaseRequest, WrappedKey
from custos.keybroker.app import create_app
from custos.keybroker.server import open_broker
from custos.keybroker.service import KeyBroker


@pytest.fixture(scope="module")
def pki() -> EnclavePki:
    return EnclavePki()


@pytest.fixture
def broker(project: Project, pki: EnclavePki, tmp_path: Path) -> KeyBroker:
    root = tmp_path / "nitro-root.pem"
    root.write_bytes(pki.root.public_bytes(Encoding.PEM))
    return open_broker(project.out / "broker", tmp_path / "state", b"\x11" * 32, nitro_root=root)


@pytest.fixture
def api(broker: KeyBroker, project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(broker)) as client:
        deposit(client, project.kits["olga"], measurements=[PCR0.hex()])
        yield client


def nitro_request(api: TestClient, project: Project, pki: EnclavePki, runtime: X25519PrivateKey,
                  **changes: object) -> KeyReleaseRequest:  # fmt: skip
    body = release_request(api, project.kits["site-a"], project.kits["carol"], runtime)
    doc = payload(pki, nonce=body.evidence.nonce.encode(), public_key=public_bytes(runtime.public_key()))
    doc.update(changes)
    return as_nitro(body, document(pki, doc))


def as_nitro(body: KeyReleaseRequest, data: bytes) -> KeyReleaseRequest:
    return body.model_copy(
        update={"kind": EvidenceKind.NITRO, "nitro_document_b64": base64.b64encode(data).decode()}
    )


def refused(api: TestClient, broker: KeyBroker, body: KeyReleaseRequest, reason: str) -> None:
    r = api.post("/api/v1/keys/release", json=body.model_dump(mode="json"))
    assert r.status_code == 403 and f"({reason})" in r.json()["detail"], r.text
    last = read_events(broker.vault._state / "audit.log")[-1]
    assert last.action == "key_refused" and f"({reason})" in last.message


def test_e42_an_enclave_with_the_allowed_pcr0_gets_the_key(
    api: TestClient, broker: KeyBroker, project: Project, pki: EnclavePki
) -> None:
    runtime = X25519PrivateKey.generate()
    r = api.post(
        "/api/v1/keys/release", json=nitro_request(api, project, pki, runtime).model_dump(mode="json")
    )
    assert r.status_code == 200, r.text
    assert unwrap_key(WrappedKey.model_validate(r.json()), runtime) == DATA_KEY


def test_e42_debug_enclave_wrong_pcr0_foreign_root_and_replay_get_no_key(
    api: TestClient, broker: KeyBroker, project: Project, pki: EnclavePki
) -> None:
    runtime = X25519PrivateKey.generate()
    zeros = {i: bytes(48) for i in range(3)}
    refused(api, broker, nitro_request(api, project, pki, runtime, pcrs=zeros), "debug_enclave")
    refused(api, broker, nitro_request(api, project, pki, runtime, pcrs={0: b"\x07" * 48}), "measurement")
    other = EnclavePki()
    body = release_request(api, project.kits["site-a"], project.kits["carol"], runtime)
    doc = payload(other, nonce=body.evidence.nonce.encode(), public_key=public_bytes(runtime.public_key()))
    foreign = as_nitro(body, document(other, doc))
    refused(api, broker, foreign, "untrusted_root")
    good = nitro_request(api, project, pki, runtime)
    assert api.post("/api/v1/keys/release", json=good.model_dump(mode="json")).status_code == 200
    refused(api, broker, good, "nonce")
    # a document made for another nonce than the request's
    stale_nonce = nitro_request(api, project, pki, runtime, nonce=b"an-old-nonce")
    refused(api, broker, stale_nonce, "nonce")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from tests.unit.keybroker.conftest import provision_project

    return provision_project(
        tmp_path_factory.mktemp("nitro") / "project",
        "nitro",
        [
            {"name": "site-a", "type": "gateway", "org": "hospital-a"},
            {"name": "carol", "type": "user", "org": "hospital-a", "role": "org_admin"},
            {"name": "olga", "type": "user", "org": "modelco", "role": "lead_researcher"},
            {"name": "broker", "type": "keybroker", "org": "modelco", "host": "127.0.0.1", "port": 9443},
        ],
    )
