"""The orchestrator's part of a FedAvg job's rounds: a round goes on without a site that fails while
`min_clients` sites answer (below that the job fails with every site's reason); the final weights are
withheld unless every policy allows model release; and the orchestrator's own task filters (its
privacy.yaml) change round inputs and site results. The orchestrator runs in process; the three
gateways are played by this test over the real API, computing their parts with the real model on
real tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from custos.computations.fedavg.model import FedAvgModel
from custos.core.blobs import externalize, internalize
from custos.core.clock import utcnow
from custos.core.errors import InvalidInput
from custos.core.wire import result_digest
from custos.data.table_reader import TableDalReader
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit
from custos.policy.signing import sign_policy
from custos.testing.inprocess import Person, bearer, orchestrator_in_process, provision_people

SITES = ["site-a", "site-b", "site-c"]
POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["fedavg@>=1.0,<2"]
    columns: [age, bmi, smoker]
min_count: 10
"""
SCHEMA = {
    "columns": [
        {"name": "age", "type": "float", "kind": "numeric", "min": 0, "max": 100},
        {"name": "bmi", "type": "float", "kind": "numeric", "min": 10, "max": 60},
        {"name": "smoker", "type": "string", "kind": "categorical", "categories": ["no", "yes"]},
    ]
}
PARAMS: dict[str, Any] = {
    "model": "logistic",
    "features": ["age", "bmi"],
    "label": "smoker",
    "positive": "yes",
    "rounds": 3,
    "batch_size": 16,
    "learning_rate": 0.1,
    "holdout": 0.0,
    "standardize": False,
    "min_clients": 2,
    "seed": 5,
}
MODEL = FedAvgModel()


def _table(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    age, bmi = rng.uniform(20, 80, 60), rng.uniform(18, 40, 60)
    smoker = np.where(rng.random(60) < 1 / (1 + np.exp(-(age - 50) / 10)), "yes", "no")
    return pa.table({"age": age, "bmi": bmi, "smoker": smoker})


TABLES = {site: _table(i) for i, site in enumerate(SITES)}


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people: list[Person] = [("alice", "user", "university", "lead_researcher")]
    for i, site in enumerate(SITES):
        people += [
            (site, "gateway", f"hospital-{i}", None),
            (f"admin-{i}", "user", f"hospital-{i}", "org_admin"),
        ]
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "partial", people)


@pytest.fixture
def privacy_yaml() -> str | None:
    """The orchestrator's privacy.yaml; a test parametrizes it to give one."""
    return None


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, privacy_yaml: str | None) -> Iterator[TestClient]:
    privacy = tmp_path / "privacy.yaml" if privacy_yaml else None
    if privacy is not None and privacy_yaml:
        privacy.write_text(privacy_yaml)
    with orchestrator_in_process(kits, tmp_path, privacy_path=privacy) as client:
        yield client


def _upload(
    api: TestClient, gw: dict[str, str], task: dict[str, Any], status: str, result: Any, error: Any
) -> None:
    message, blobs = externalize(result)
    for digest, data in blobs.items():
        r = api.put(f"/api/v1/gateway/tasks/{task['task_id']}/blobs/{digest}", content=data, headers=gw)
        assert r.status_code == 200, r.text
    upload = {
        "attempt": task["attempt"],
        "status": status,
        "result": message,
        "error": error,
        "digest": result_digest(status, message, error),
    }
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=gw)
    assert r.status_code == 200, r.text


def _answer(
    api: TestClient, gw: dict[str, str], site: str, *, fail: bool, seen: list[dict[str, Any]] | None = None
) -> int:
    """Play gateway `site` for one task: fail it, or compute it with the model on the site's table."""
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    if fail:
        _upload(api, gw, task, "failed", None, f"{site} ran out of memory")
        return int(task["round"])

    def fetch(digest: str, _size: int) -> bytes:
        return api.get(f"/api/v1/gateway/tasks/{task['task_id']}/blobs/{digest}", headers=gw).content

    round_input = internalize(task["round_input"], fetch)
    if seen is not None:
        seen.append(round_input)
    raw = MODEL.compute_site(TableDalReader({"patients": TABLES[site]}), "patients", PARAMS, round_input)
    _upload(api, gw, task, "done", MODEL.filter_site_result(PARAMS, raw, 10), None)
    return int(task["round"])


def _submit(api: TestClient, kits: dict[str, Kit], params: dict[str, Any]) -> Any:
    """Publish the three sites, activate a fedavg spec over them, and submit a job with `params`."""
    gateways = {site: bearer(api, kits[site]) for site in SITES}
    for i, site in enumerate(SITES):
        admin = kits[f"admin-{i}"]
        signed = sign_policy(
            POLICY, f"{site}/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
        )
        dataset = {"name": "patients", "schema": SCHEMA, "row_count": 60, "mock_arrow_b64": ""}
        body = {"datasets": [dataset | {"policy": signed.model_dump(mode="json")}]}
        assert api.post("/api/v1/gateway/publish", json=body, headers=gateways[site]).status_code == 200
    alice = bearer(api, kits["alice"])
    refs = [f"{site}/patients" for site in SITES]
    spec = {"name": "s", "model": "fedavg@1.0.0", "datasets": refs, "columns": ["age", "bmi", "smoker"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    for site in SITES:
        task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gateways[site]).json()["task"]
        _upload(api, gateways[site], task, "done", {"validated": True}, None)
    return (
        api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": params}, headers=alice),
        alice,
        gateways,
    )


@pytest.fixture
def job(api: TestClient, kits: dict[str, Kit]) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    r, alice, gateways = _submit(api, kits, PARAMS)
    assert r.status_code == 201, r.text
    return r.json()["id"], alice, gateways


def test_a_round_goes_on_without_a_failed_site_while_min_clients_answer(
    api: TestClient, job: tuple[str, dict[str, str], dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    job_id, alice, gateways = job
    for _ in range(PARAMS["rounds"] + 1):  # three training rounds and the evaluation
        for site in SITES:
            _answer(api, gateways[site], site, fail=site == "site-a")
    state = api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()
    assert state["state"] == "succeeded", state
    result = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice).json()["result"]
    assert [row["clients"] for row in result["history"]] == [2, 2, 2]
    assert {row["site"] for row in result["site_metrics"]} == {"site-b/patients", "site-c/patients"}
    # The policies do not say `model_release: true`: the metrics come back, the weights do not.
    assert result["weights"] is None
    assert result["weights_withheld"].startswith("the policy of site-a/patients, site-b/patients, site-c/")
    audit = (tmp_path / "audit.log").read_text()
    assert "round 1 goes on without site-a: site-a ran out of memory" in audit


def test_a_round_below_min_clients_fails_the_job_with_every_sites_reason(
    api: TestClient, job: tuple[str, dict[str, str], dict[str, dict[str, str]]]
) -> None:
    job_id, alice, gateways = job
    for site in ("site-a", "site-b"):
        assert _answer(api, gateways[site], site, fail=True) == 0  # the job's first round
    # Two of three failed: the round cannot reach min_clients, and site-c's task is called off.
    assert api.get("/api/v1/gateway/tasks/next?wait=0", headers=gateways["site-c"]).json()["task"] is None
    state = api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()
    assert state["state"] == "failed"
    assert state["reason"] == (
        "site-a failed: site-a ran out of memory; site-b failed: site-b ran out of memory "
        "(round 0 needs 2 of 3 sites)"
    )


ORCHESTRATOR_PRIVACY = """
scopes:
  audited:
    task_data_filters:
      - {name: exclude_keys, args: {keys: [mean, std]}}
    task_result_filters:
      - {name: exclude_keys, args: {keys: [train_seconds]}}
      - {name: round_counts, args: {to: 10, keys: [n_train]}}
"""


@pytest.mark.parametrize("privacy_yaml", [ORCHESTRATOR_PRIVACY])
def test_the_orchestrators_filters_of_the_jobs_scope_change_round_inputs_and_site_results(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    params = {**PARAMS, "rounds": 1, "scope": "audited"}
    r, alice, gateways = _submit(api, kits, params)
    assert r.status_code == 201, r.text
    seen: list[dict[str, Any]] = []
    for _ in range(2):  # one training round and the evaluation
        for site in SITES:
            _answer(api, gateways[site], site, fail=False, seen=seen)
    assert all("mean" not in given and "std" not in given for given in seen)
    result = api.get(f"/api/v1/jobs/{r.json()['id']}/result", headers=alice).json()["result"]
    assert [row["train_seconds"] for row in result["site_metrics"]] == [0.0, 0.0, 0.0]
    assert [row["n_train"] for row in result["site_metrics"]] == [60, 60, 60]
    assert result["history"][0]["n_train"] == 180


@pytest.mark.parametrize("privacy_yaml", [ORCHESTRATOR_PRIVACY])
def test_a_scope_the_orchestrator_does_not_define_is_refused_at_submit(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    r, _, _ = _submit(api, kits, {**PARAMS, "scope": "public"})
    assert r.status_code == 403
    assert r.json()["detail"] == "scope 'public' is not defined at the orchestrator (its scopes: audited)"


def test_an_orchestrator_config_with_a_gateway_only_filter_is_refused(
    tmp_path: Path, kits: dict[str, Kit]
) -> None:
    privacy = tmp_path / "privacy.yaml"
    privacy.write_text("scopes:\n  dp:\n    task_result_filters:\n      - {name: clip_and_noise}\n")
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "audit.log", privacy_path=privacy
    )
    with pytest.raises(InvalidInput, match="clip_and_noise runs at gateways only"):
        create_app(settings, kits["orchestrator"].root_certificate)
