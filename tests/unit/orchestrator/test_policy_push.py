"""A pushed policy whose grants name a column the dataset lacks, or a model the registry does not hold,
is refused with a 400 that names them, and the policy in force stays as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custos.core.clock import utcnow
from custos.pki.kit import Kit
from custos.policy.signing import sign_policy
from custos.testing.inprocess import Person, bearer, orchestrator_in_process, provision_people

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["{model}"]
    columns: [{columns}]
"""
SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100},
        {"name": "bmi", "type": "float", "kind": "numeric", "min": 10, "max": 60},
    ]
}
DATASET = "site-a/patients"
URL = f"/api/v1/datasets/{DATASET}/policy"


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people: list[Person] = [
        ("site-a", "gateway", "hospital-a", None),
        ("admin-a", "user", "hospital-a", "org_admin"),
    ]
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "push", people)


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    with orchestrator_in_process(kits, tmp_path) as client:
        dataset = {"name": "patients", "schema": SCHEMA, "row_count": 1000, "mock_arrow_b64": ""}
        published = client.post(
            "/api/v1/gateway/publish", json={"datasets": [dataset]}, headers=bearer(client, kits["site-a"])
        )
        assert published.status_code == 200, published.text
        yield client


def signed(kits: dict[str, Kit], model: str, columns: str) -> dict[str, object]:
    admin = kits["admin-a"]
    text = POLICY.format(model=model, columns=columns)
    policy = sign_policy(
        text, "site-a/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
    )
    return policy.model_dump(mode="json")


def test_a_policy_naming_what_exists_is_put_in_force(api: TestClient, kits: dict[str, Kit]) -> None:
    answer = api.put(
        URL, json=signed(kits, "stats@>=1.0,<2", "age, bmi"), headers=bearer(api, kits["admin-a"])
    )
    assert answer.status_code == 200, answer.text
    assert "columns: [age, bmi]" in answer.json()["policy_yaml"]


@pytest.mark.parametrize(
    ("model", "columns", "expected"),
    [
        ("stats@>=1.0,<2", "age, agee", f"column(s) agee, which {DATASET} does not have (it has: age, bmi)"),
        (
            "stat@1.0",
            "age",
            "model(s) stat, which the registry does not hold (it holds: custom, fedavg, glm, stats)",
        ),
    ],
)
def test_a_policy_granting_an_unknown_column_or_model_is_refused_at_push(
    api: TestClient, kits: dict[str, Kit], model: str, columns: str, expected: str
) -> None:
    admin = bearer(api, kits["admin-a"])
    before = api.put(URL, json=signed(kits, "stats", "age"), headers=admin).json()["policy_yaml"]

    answer = api.put(URL, json=signed(kits, model, columns), headers=admin)

    assert answer.status_code == 400
    assert answer.json()["detail"] == f"the policy for {DATASET} is refused: grant 1 names {expected}"
    assert api.get("/api/v1/datasets/site-a/patients", headers=admin).json()["policy_yaml"] == before
