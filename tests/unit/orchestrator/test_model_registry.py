"""The model registry through the real orchestrator app in process, with real kits.

Built-in models are registry entries; a lead researcher publishes a signed package (over the API and
through the SDK); gateways and users fetch its archive and verify it; tampered uploads, a member
researcher, another person's signature, and a second archive under a published version are refused.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custos.audit import read_events
from custos.core.errors import Conflict, InvalidInput
from custos.core.wire import ModelArchive, ModelKind, ModelSignature
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import KitAuth, sign_in
from custos.policy.permissions import permission_table
from custos.registry import PUBLISHER_ROLES, build_archive, seal_archive, sign_archive, verify_package
from custos.sdk import Client

MANIFEST = """\
name = "summary"
version = "1.0.0"
entrypoint = "summary:run"
description = "Row counts per region"
[parameters.region]
type = "string"
[columns]
region = "string"
[outputs.counts]
kind = "table"
max_rows = 50
"""
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("alice", "user", "university", "lead_researcher"),
    ("bob", "user", "university", "lead_researcher"),
    ("max", "user", "university", "member_researcher"),
]


@pytest.fixture(scope="module")
def kit_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("registry") / "project"
    participants = [{"name": n, "type": t, "org": o, **({"role": r} if r else {})} for n, t, o, r in PEOPLE]
    provision(ProjectSpec.model_validate({"name": "registry", "participants": participants}), out)
    return {p.name: p for p in out.iterdir() if (p / "config.json").exists()}


@pytest.fixture(scope="module")
def kits(kit_dirs: dict[str, Path]) -> dict[str, Kit]:
    return {name: load_kit(path) for name, path in kit_dirs.items()}


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, audit_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=audit_path)
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate)) as client:
        yield client


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "summary"
    folder.mkdir()
    (folder / "custos-model.toml").write_text(MANIFEST, encoding="utf-8")
    (folder / "summary.py").write_text("def run(dal, params):\n    return {}\n", encoding="utf-8")
    return folder


def auth(api: TestClient, kits: dict[str, Kit], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(api, kits[name]).token}"}


def upload(folder: Path, kit: Kit) -> dict[str, object]:
    built = build_archive(folder)
    signed = sign_archive(built, key=kit.private_key, certificate=kit.certificate)
    return {**signed.model_dump(mode="json"), "archive_b64": base64.b64encode(built.data).decode()}


def test_builtin_models_are_registry_entries(api: TestClient, kits: dict[str, Kit]) -> None:
    for who in ("max", "site-a"):
        r = api.get("/api/v1/models", headers=auth(api, kits, who))
        assert r.status_code == 200, r.text
        entries = {f"{m['name']}@{m['version']}": m for m in r.json()}
        assert {"stats@1.0.0", "glm@1.0.0", "fedavg@1.0.0"} <= set(entries)
        assert {m["kind"] for m in entries.values()} == {"builtin"}
        assert entries["stats@1.0.0"]["digest"] is None
    r = api.get("/api/v1/models/stats/1.0.0/archive", headers=auth(api, kits, "alice"))
    assert r.status_code == 404 and "built-in model" in r.json()["detail"]


def test_a_lead_researcher_publishes_and_gateways_fetch_a_verifiable_archive(
    api: TestClient, kits: dict[str, Kit], package: Path, audit_path: Path
) -> None:
    alice = auth(api, kits, "alice")
    r = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=alice)
    assert r.status_code == 201, r.text
    detail = r.json()
    digest = build_archive(package).digest
    assert (detail["kind"], detail["digest"], detail["signer"]) == ("package", digest, "alice")
    assert detail["manifest"]["entrypoint"] == "summary:run"
    assert detail["manifest"]["outputs"]["counts"]["max_rows"] == 50

    listed = {m["name"]: m for m in api.get("/api/v1/models", headers=alice).json()}
    assert listed["summary"]["digest"] == digest and listed["summary"]["signer_org"] == "university"
    shown = api.get("/api/v1/models/summary/1.0.0", headers=auth(api, kits, "max")).json()
    assert shown["description"] == "Row counts per region"

    r = api.get("/api/v1/models/summary/1.0.0/archive", headers=auth(api, kits, "site-a"))
    assert r.status_code == 200, r.text
    archive = ModelArchive.model_validate(r.json())
    data = base64.b64decode(archive.archive_b64)
    signature = ModelSignature.model_validate(archive.model_dump(include=set(ModelSignature.model_fields)))
    verified = verify_package(data, signature, lambda cert: kits["alice"].identity)
    assert verified.digest == digest and verified.manifest.ref == "summary@1.0.0"
    assert any(e.action == "model_published" and digest in e.message for e in read_events(audit_path))

    # the same archive again is a no-op; another archive under the same version is refused
    again = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=alice)
    assert again.status_code == 201 and again.json()["digest"] == digest
    (package / "summary.py").write_text("def run(dal, params):\n    return {'v': 2}\n", encoding="utf-8")
    changed = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=alice)
    assert changed.status_code == 409
    assert "never changes, publish a new one" in changed.json()["detail"]


def test_tampered_uploads_are_refused_with_their_reason(
    api: TestClient, kits: dict[str, Kit], package: Path, audit_path: Path
) -> None:
    alice = auth(api, kits, "alice")
    good = upload(package, kits["alice"])
    other = upload(package, kits["bob"])
    forged = {**good, "signature": other["signature"]}
    r = api.post("/api/v1/models", json=forged, headers=alice)
    assert r.status_code == 422 and "(bad_signature)" in r.json()["detail"]
    data = bytearray(base64.b64decode(str(good["archive_b64"])))
    data[len(data) // 2] ^= 0x01
    flipped = {**good, "archive_b64": base64.b64encode(bytes(data)).decode()}
    r = api.post("/api/v1/models", json=flipped, headers=alice)
    assert r.status_code == 422 and "(digest_mismatch)" in r.json()["detail"]
    assert [e.action for e in read_events(audit_path)].count("model_refused") == 2
    names = [m["name"] for m in api.get("/api/v1/models", headers=alice).json()]
    assert "summary" not in names


def test_who_may_publish(api: TestClient, kits: dict[str, Kit], package: Path, audit_path: Path) -> None:
    r = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=auth(api, kits, "max"))
    assert r.status_code == 403 and "member_researcher" in r.json()["detail"]
    assert any(e.action == "denied" and e.user == "max" for e in read_events(audit_path))
    r = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=auth(api, kits, "site-a"))
    assert r.status_code == 403
    r = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=auth(api, kits, "bob"))
    assert r.status_code == 403 and "signed by alice" in r.json()["detail"]


def test_a_builtin_name_cannot_be_published(api: TestClient, kits: dict[str, Kit], package: Path) -> None:
    text = MANIFEST.replace('name = "summary"', 'name = "stats"')
    (package / "custos-model.toml").write_text(text, encoding="utf-8")
    r = api.post("/api/v1/models", json=upload(package, kits["alice"]), headers=auth(api, kits, "alice"))
    assert r.status_code == 409 and "stats@1.0.0 is a built-in model already" in r.json()["detail"]


def test_the_sdk_lists_shows_and_publishes(
    api: TestClient, kits: dict[str, Kit], kit_dirs: dict[str, Path], package: Path
) -> None:
    http = TestClient(api.app, base_url="http://testserver/api/v1")
    http.auth = KitAuth(kits["alice"])
    client = Client(http, url="http://testserver")
    with pytest.raises(InvalidInput, match="signs it with a kit's key"):
        client.publish_model(package)
    published = client.publish_model(package, kit=kit_dirs["alice"])
    assert published.kind is ModelKind.PACKAGE and published.signer == "alice"
    assert {m.name for m in client.models()} >= {"stats", "summary"}
    shown = client.model("summary@1.0.0")
    assert shown.digest == published.digest and shown.manifest is not None
    assert client.model("stats@1.0.0").kind is ModelKind.BUILTIN
    (package / "summary.py").write_text("changed = True\n", encoding="utf-8")
    with pytest.raises(Conflict):
        client.publish_model(package, kit=kit_dirs["alice"])


def test_publisher_roles_match_the_permission_table() -> None:
    table = permission_table()
    assert set(table.operations["model.publish"]) == PUBLISHER_ROLES


def test_a_confidential_package_is_stored_and_served_as_ciphertext(
    api: TestClient, kits: dict[str, Kit], kit_dirs: dict[str, Path], package: Path, audit_path: Path
) -> None:
    (package / "summary.py").write_text("# OWNER-ONLY\ndef run(dal, params):\n    return {}\n")
    sealed = seal_archive(
        build_archive(package), key_id="key-summary-1", broker_url="https://127.0.0.1:9443",
        measurements=["ab" * 32],
    )  # fmt: skip
    http = TestClient(api.app, base_url="http://testserver/api/v1")
    http.auth = KitAuth(kits["alice"])
    client = Client(http, url="http://testserver")
    published = client.publish_confidential(sealed, kit=kit_dirs["alice"])
    assert published.kind is ModelKind.CONFIDENTIAL and published.digest == sealed.digest
    assert published.confidential == sealed.terms
    served = ModelArchive.model_validate(
        api.get("/api/v1/models/summary/1.0.0/archive", headers=auth(api, kits, "site-a")).json()
    )
    assert base64.b64decode(served.archive_b64) == sealed.data and served.confidential == sealed.terms
    assert b"OWNER-ONLY" not in base64.b64decode(served.archive_b64)
    # the terms are signed: a looser list of measurements under the same signature is refused
    looser = served.model_copy(
        update={
            "confidential": sealed.terms.model_copy(update={"measurements": ["cd" * 32]}),
            "version": "1.0.1",
        }
    )
    body = looser.model_dump(mode="json", exclude={"signer", "published_at"})
    r = api.post("/api/v1/models", json=body, headers=auth(api, kits, "alice"))
    assert r.status_code == 422 and "bad_signature" in r.json()["detail"]
    assert any(e.action == "model_refused" for e in read_events(audit_path))
