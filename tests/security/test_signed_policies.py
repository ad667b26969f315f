"""Signed asset policies (issue 3, item 3): only an org admin of the dataset's org can sign one, and
nobody on the way (the orchestrator included) can change it or roll it back.

Each refusal is checked where policies are used: the gateway's PolicyKeeper (the last word), and the
orchestrator's policy route (an early, clear refusal for the admin who pushes)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from custos.core.clock import utcnow
from custos.core.wire import SignedPolicy, policy_message
from custos.gateway.policies import PolicyKeeper
from custos.gateway.trust import GatewayTrust
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import certificate_pem
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import CA_FOLDER, provision
from custos.pki.revocation import build_crl
from custos.pki.signin import sign_in
from custos.pki.verify import sign as raw_sign
from custos.policy.signing import PolicyRefused, sign_policy

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age]
"""
LAXER = POLICY.replace("columns: [age]", "columns: [age, postcode]")
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("admin-a", "user", "hospital-a", "org_admin"),
    ("admin-b", "user", "hospital-b", "org_admin"),
    ("lead-a", "user", "hospital-a", "lead_researcher"),
]


def _provision(out: Path, name: str) -> dict[str, Kit]:
    participants = [{"name": n, "type": t, "org": o, **({"role": r} if r else {})} for n, t, o, r in PEOPLE]
    provision(ProjectSpec.model_validate({"name": name, "participants": participants}), out)
    return {p.name: load_kit(p) for p in out.iterdir() if (p / "config.json").exists()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signed") / "project"


@pytest.fixture(scope="module")
def kits(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    kits = _provision(project, "signed")
    kits["foreign-admin-a"] = _provision(tmp_path_factory.mktemp("foreign") / "p", "foreign")["admin-a"]
    return kits


def sign(kits: dict[str, Kit], signer: str, text: str = POLICY, *, later: int = 0) -> SignedPolicy:
    kit = kits[signer]
    return sign_policy(
        text,
        "site-a/patients",
        key=kit.private_key,
        certificate=kit.certificate,
        now=utcnow() + timedelta(seconds=later),
    )


@pytest.fixture
def trust(kits: dict[str, Kit], tmp_path: Path) -> GatewayTrust:
    return GatewayTrust(kits["site-a"].root_certificate, tmp_path, utcnow)


@pytest.fixture
def keeper(trust: GatewayTrust, tmp_path: Path) -> PolicyKeeper:
    return PolicyKeeper("site-a", "hospital-a", tmp_path, trust.check_certificate)


def test_a_policy_signed_by_the_sites_org_admin_is_used(kits: dict[str, Kit], keeper: PolicyKeeper) -> None:
    policy = keeper.offer("patients", sign(kits, "admin-a"))
    assert policy.grants[0].columns == ["age"]
    assert keeper.current("patients") == policy


def test_a_policy_the_orchestrator_altered_is_refused(kits: dict[str, Kit], keeper: PolicyKeeper) -> None:
    signed = sign(kits, "admin-a")
    altered = signed.model_copy(update={"policy_yaml": LAXER})
    with pytest.raises(PolicyRefused, match="does not match its signature: it was changed after admin-a"):
        keeper.offer("patients", altered)
    later = signed.model_copy(update={"issued_at": signed.issued_at + timedelta(days=1)})
    with pytest.raises(PolicyRefused, match="does not match its signature"):
        keeper.offer("patients", later)
    assert keeper.current("patients") is None


def test_a_tampered_signature_is_refused(kits: dict[str, Kit], keeper: PolicyKeeper) -> None:
    signed = sign(kits, "admin-a")
    raw = bytearray(signed.signature.encode())
    raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
    with pytest.raises(PolicyRefused, match="does not match its signature"):
        keeper.offer("patients", signed.model_copy(update={"signature": raw.decode()}))


def test_a_policy_signed_by_another_orgs_admin_is_refused(kits: dict[str, Kit], keeper: PolicyKeeper) -> None:
    with pytest.raises(
        PolicyRefused, match="signed by admin-b of hospital-b; only an org_admin of hospital-a"
    ):
        keeper.offer("patients", sign(kits, "admin-b"))


def test_a_policy_signed_by_a_researcher_of_the_org_is_refused(
    kits: dict[str, Kit], keeper: PolicyKeeper
) -> None:
    with pytest.raises(PolicyRefused, match="lead-a is a lead_researcher; only an org_admin"):
        sign(kits, "lead-a")  # refused at signing, and, signed by hand, at the gateway:
    kit, issued = kits["lead-a"], utcnow()
    forged = SignedPolicy(
        dataset="site-a/patients",
        policy_yaml=POLICY,
        issued_at=issued,
        signer_certificate_pem=certificate_pem(kit.certificate),
        signature=base64.b64encode(
            raw_sign(kit.private_key, policy_message("site-a/patients", issued, POLICY))
        ).decode(),
    )
    with pytest.raises(PolicyRefused, match="signed by lead-a, a lead_researcher; only an org_admin"):
        keeper.offer("patients", forged)


def test_a_policy_signed_with_another_cas_certificate_is_refused(
    kits: dict[str, Kit], keeper: PolicyKeeper
) -> None:
    with pytest.raises(PolicyRefused, match="not signed by this project's CA"):
        keeper.offer("patients", sign(kits, "foreign-admin-a"))


def test_an_older_policy_cannot_replace_a_newer_one(kits: dict[str, Kit], keeper: PolicyKeeper) -> None:
    old = sign(kits, "admin-a", LAXER)
    new = sign(kits, "admin-a", later=1)
    keeper.offer("patients", new)
    with pytest.raises(PolicyRefused, match="is not newer than the one in use"):
        keeper.offer("patients", old)
    assert keeper.current("patients") is not None
    assert keeper.current("patients").grants[0].columns == ["age"]  # type: ignore[union-attr]


def test_a_newer_policy_survives_a_restart(kits: dict[str, Kit], trust: GatewayTrust, tmp_path: Path) -> None:
    first = PolicyKeeper("site-a", "hospital-a", tmp_path, trust.check_certificate)
    first.offer("patients", sign(kits, "admin-a", LAXER, later=5))
    restarted = PolicyKeeper("site-a", "hospital-a", tmp_path, trust.check_certificate)
    restarted.load({"patients": sign(kits, "admin-a")})  # the custodian's older file
    assert restarted.current("patients").grants[0].columns == ["age", "postcode"]  # type: ignore[union-attr]


def test_a_policy_of_a_revoked_signer_is_refused(
    kits: dict[str, Kit], project: Path, trust: GatewayTrust, keeper: PolicyKeeper
) -> None:
    ca = project / CA_FOLDER
    ca_key = serialization.load_pem_private_key((ca / "rootCA.key").read_bytes(), password=None)
    serial = kits["admin-a"].certificate.serial_number
    crl = build_crl(kits["site-a"].root_certificate, ca_key, [(serial, utcnow())], 7, utcnow())  # type: ignore[arg-type]
    from cryptography.hazmat.primitives.serialization import Encoding

    assert trust.update(crl.public_bytes(Encoding.PEM).decode())
    with pytest.raises(PolicyRefused, match="revoked"):
        keeper.offer("patients", sign(kits, "admin-a"))


# --- the orchestrator refuses the same policies when an admin pushes them ------------------------


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "a.log"
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate)) as client:
        schema = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 99}]}
        body = {"datasets": [{"name": "patients", "schema": schema, "row_count": 10, "mock_arrow_b64": ""}]}
        gw = {"Authorization": f"Bearer {sign_in(client, kits['site-a']).token}"}
        assert client.post("/api/v1/gateway/publish", json=body, headers=gw).status_code == 200
        yield client


def push(api: TestClient, kits: dict[str, Kit], caller: str, signed: SignedPolicy) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {sign_in(api, kits[caller]).token}"}
    r = api.put(
        "/api/v1/datasets/site-a/patients/policy", json=signed.model_dump(mode="json"), headers=headers
    )
    return r.status_code, r.json().get("detail", "")


def test_the_orchestrator_refuses_what_the_gateway_would(api: TestClient, kits: dict[str, Kit]) -> None:
    good = sign(kits, "admin-a")
    assert push(api, kits, "admin-a", good)[0] == 200
    status, detail = push(api, kits, "admin-a", good.model_copy(update={"policy_yaml": LAXER}))
    assert (status, "does not match its signature" in detail) == (403, True)
    status, detail = push(api, kits, "admin-a", sign(kits, "admin-a", LAXER, later=-60))
    assert (status, "not newer" in detail) == (403, True)
    # another org's admin may not push at all, whoever signed
    status, detail = push(api, kits, "admin-b", sign(kits, "admin-a", later=1))
    assert (status, "may not perform policy.write" in detail) == (403, True)
    info = api.get(
        "/api/v1/datasets/site-a/patients",
        headers={"Authorization": f"Bearer {sign_in(api, kits['admin-a']).token}"},
    ).json()
    assert info["policy_yaml"] == POLICY and info["policy_signer"] == "admin-a"
