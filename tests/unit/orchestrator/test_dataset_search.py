"""The dataset catalogue at the orchestrator: published notes and licence are stored and shown, the
owner org comes from the gateway's certificate, and search ranks what matches every word."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema
from custos.core.wire import DatasetInfo
from custos.orchestrator.app import create_app
from custos.orchestrator.services.datasets import search_score, search_words
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in

PATIENTS = {
    "columns": [
        {
            "name": "age",
            "type": "integer",
            "kind": "numeric",
            "description": "Age at enrolment",
            "unit": "years",
        },
        {
            "name": "hba1c",
            "type": "float",
            "kind": "numeric",
            "description": "Glycated haemoglobin",
            "unit": "%",
        },
    ],
    "licence": "Research use only; no linkage",
}
VISITS = {"columns": [{"name": "diabetes_type", "type": "string", "kind": "other"}]}


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("kits")
    spec = ProjectSpec.model_validate(
        {
            "name": "search-test",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "site-b", "type": "gateway", "org": "clinic-b"},
                {"name": "alice", "type": "user", "org": "university", "role": "member_researcher"},
            ],
        }
    )
    provision(spec, root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        audit_path=tmp_path / "audit.log",
        max_body_bytes=1 << 20,
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate)) as client:
        yield client


def bearer(api: TestClient, kit: Kit) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(api, kit).token}"}


def publish(
    api: TestClient, kit: Kit, name: str, description: str, schema: dict[str, Any], **extra: Any
) -> int:
    dataset = {
        "name": name,
        "description": description,
        "schema": schema,
        "row_count": 100,
        "mock_arrow_b64": "",
    }
    body = {"datasets": [{**dataset, **extra}]}
    return api.post("/api/v1/gateway/publish", json=body, headers=bearer(api, kit)).status_code


def search(api: TestClient, kits: dict[str, Kit], text: str) -> list[str]:
    r = api.get("/api/v1/datasets", params={"q": text}, headers=bearer(api, kits["alice"]))
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()]


@pytest.fixture
def published(api: TestClient, kits: dict[str, Kit]) -> TestClient:
    assert publish(api, kits["site-a"], "patients", "Adult cohort with diabetes follow-up", PATIENTS) == 200
    assert publish(api, kits["site-b"], "visits", "Clinic visits", VISITS) == 200
    return api


def test_notes_licence_and_owner_org_are_stored_and_shown(
    published: TestClient, kits: dict[str, Kit]
) -> None:
    r = published.get("/api/v1/datasets/site-a/patients", headers=bearer(published, kits["alice"]))
    info = DatasetInfo.model_validate(r.json())
    assert info.owner_org == "hospital-a"
    assert info.dataset_schema.licence == "Research use only; no linkage"
    assert info.dataset_schema.column("age").unit == "years"
    assert info.dataset_schema.column("hba1c").description == "Glycated haemoglobin"


def test_a_gateway_cannot_claim_an_owner_org(published: TestClient, kits: dict[str, Kit]) -> None:
    assert publish(published, kits["site-b"], "visits", "x", VISITS, owner_org="hospital-a") == 400
    assert search(published, kits, "hospital-a") == ["site-a/patients"]


def test_search_is_case_insensitive_over_every_catalogue_field(
    published: TestClient, kits: dict[str, Kit]
) -> None:
    assert search(published, kits, "GLYCATED") == ["site-a/patients"]  # a column description
    assert search(published, kits, "years") == ["site-a/patients"]  # a unit
    assert search(published, kits, "linkage") == ["site-a/patients"]  # the licence
    assert search(published, kits, "clinic-b") == ["site-b/visits"]  # the owner org
    assert search(published, kits, "hba1c") == ["site-a/patients"]  # a column name
    assert search(published, kits, "age years") == ["site-a/patients"]  # every word must match
    assert search(published, kits, "age clinic") == []


def test_search_ranks_a_column_name_above_a_description(published: TestClient, kits: dict[str, Kit]) -> None:
    # "diabetes" is a column name of visits and only a word in patients' description.
    assert search(published, kits, "diabetes") == ["site-b/visits", "site-a/patients"]


def test_a_blank_search_is_a_clear_400(published: TestClient, kits: dict[str, Kit]) -> None:
    r = published.get("/api/v1/datasets", params={"q": "  "}, headers=bearer(published, kits["alice"]))
    assert r.status_code == 400
    assert "at least one word" in r.json()["detail"]


def _info(name: str, description: str = "", org: str = "org") -> DatasetInfo:
    return DatasetInfo(
        id=f"site/{name}",
        gateway="site",
        name=name,
        description=description,
        dataset_schema=DatasetSchema(columns=[]),
        row_count=0,
        policy_yaml=None,
        owner_org=org,
    )


def test_an_exact_name_outranks_a_partial_one() -> None:
    words = search_words("cohort")
    assert search_score(_info("cohort"), words) > search_score(_info("cohort2"), words)
    assert search_score(_info("cohort2"), words) > search_score(_info("x", "a cohort"), words)
    assert search_score(_info("x", "nothing"), words) == 0


def test_search_words_bounds_the_text() -> None:
    with pytest.raises(InvalidInput, match="at most 200 characters"):
        search_words("a" * 201)
    assert search_words("Age  YEARS") == ["age", "years"]
