"""A project with a model owner, their key broker, two custodians' gateways and an outsider; a broker
app in process, and helpers that build a gateway's release request as the gateway does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi.testclient import TestClient

from custos.attestation.software import sign_evidence
from custos.attestation.wrap import public_key_b64
from custos.core.clock import utcnow
from custos.core.wire.datasets import SignedPolicy
from custos.core.wire.keybroker import KeyPolicy, KeyReleaseRequest, SoftwareEvidence
from custos.keybroker.app import create_app
from custos.keybroker.server import open_broker
from custos.keybroker.service import KeyBroker
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.policy.signing import sign_policy
from custos.sdk.keybroker import signed_owner_request

MEASUREMENT = "5e" * 32
CIPHERTEXT = "c1" * 32
PLAINTEXT = "9a" * 32
PACKAGE = "secret-sauce@1.0.0"
KEY_ID = "key-sauce-0001"
DATA_KEY = bytes(range(32))


@dataclass
class Project:
    out: Path
    kits: dict[str, Kit]


def provision_project(out: Path, name: str, participants: list[dict[str, object]]) -> Project:
    provision(ProjectSpec.model_validate({"name": name, "participants": participants}), out)
    return Project(out, {p.name: load_kit(p) for p in out.iterdir() if (p / "config.json").exists()})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provision_project(
        tmp_path_factory.mktemp("broker") / "project",
        "broker",
        [
            {"name": "site-a", "type": "gateway", "org": "hospital-a"},
            {"name": "site-b", "type": "gateway", "org": "hospital-b"},
            {"name": "carol", "type": "user", "org": "hospital-a", "role": "org_admin"},
            {"name": "olga", "type": "user", "org": "modelco", "role": "lead_researcher"},
            {"name": "mallory", "type": "user", "org": "hospital-a", "role": "lead_researcher"},
            {"name": "broker", "type": "keybroker", "org": "modelco", "host": "127.0.0.1", "port": 9443},
        ],
    )


@pytest.fixture
def broker(project: Project, tmp_path: Path) -> KeyBroker:
    return open_broker(project.out / "broker", tmp_path / "broker-state", b"\x11" * 32)


@pytest.fixture
def api(broker: KeyBroker) -> Iterator[TestClient]:
    with TestClient(create_app(broker)) as client:
        yield client


def key_policy(**changes: object) -> KeyPolicy:
    base = KeyPolicy(package=PACKAGE, ciphertext_digest=CIPHERTEXT, plaintext_digest=PLAINTEXT,
                     measurements=[MEASUREMENT])  # fmt: skip
    return base.model_copy(update=changes)


def deposit(api: TestClient, owner: Kit, **changes: object) -> None:
    body = signed_owner_request(owner, "deposit", KEY_ID, policy=key_policy(**changes), data_key=DATA_KEY)
    r = api.post("/api/v1/owner", json=body.model_dump(mode="json"))
    assert r.status_code == 200, r.text


def grant(custodian: Kit, dataset: str = "site-a/patients", models: list[str] | None = None) -> SignedPolicy:
    policy = {"dataset": dataset.split("/")[1], "grants": [{"orgs": ["university"],
              "models": models or ["secret-sauce@>=1.0,<2"], "columns": ["age"]}]}  # fmt: skip
    return sign_policy(yaml.safe_dump(policy), dataset, key=custodian.private_key,
                       certificate=custodian.certificate, now=utcnow())  # fmt: skip


def release_request(
    api: TestClient,
    gateway: Kit,
    custodian: Kit,
    runtime: X25519PrivateKey,
    *,
    nonce: str | None = None,
    measurement: str = MEASUREMENT,
    package_digest: str = CIPHERTEXT,
    key_id: str = KEY_ID,
    dataset: str | None = None,
    issued_at: datetime | None = None,
    signed_grant: SignedPolicy | None = None,
) -> KeyReleaseRequest:
    dataset = dataset or f"{gateway.identity.name}/patients"
    evidence = SoftwareEvidence(
        measurement=measurement, package_digest=package_digest, key_id=key_id, dataset=dataset,
        nonce=nonce or api.post("/api/v1/nonces").json()["nonce"], public_key=public_key_b64(runtime),
        issued_at=issued_at or utcnow(),
    )  # fmt: skip
    certificate, signature = sign_evidence(gateway, evidence)
    return KeyReleaseRequest(
        evidence=evidence, gateway_certificate_pem=certificate, signature=signature,
        grant=signed_grant or grant(custodian, dataset),
    )  # fmt: skip


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)
