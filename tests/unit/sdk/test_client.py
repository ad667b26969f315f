"""The SDK's requests and waits, against a scripted orchestrator on loopback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from custos.core.errors import Conflict, InvalidInput
from custos.core.states import JobState, SpecState
from custos.data.ipc import table_to_ipc_b64
from custos.sdk import Result, WaitTimeout

from .conftest import ScriptedServer

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()


def spec_json(state: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "spec_1",
        "name": "bmi",
        "model": "stats@1.0.0",
        "datasets": ["site-a/patients"],
        "columns": ["age", "bmi"],
        "resources": {},
        "state": state,
        "reason": reason,
        "owner": "alice",
        "org": "university",
        "created_at": NOW,
    }


def job_json(state: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "job_1",
        "spec_id": "spec_1",
        "model": "stats@1.0.0",
        "state": state,
        "round": 0,
        "reason": reason,
        "submitter": "alice",
        "org": "university",
        "created_at": NOW,
        "finished_at": None,
        "tasks": [
            {
                "id": "task_1",
                "gateway": "site-a",
                "dataset": "patients",
                "kind": "compute",
                "round": 0,
                "state": "done",
                "attempt": 1,
                "error": None,
            }
        ],
    }


DATASET_JSON = {
    "id": "ds_1",
    "gateway": "site-a",
    "name": "patients",
    "description": "synthetic",
    "schema": {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 18, "max": 95}]},
    "row_count": 1000,
    "policy_yaml": None,
}


def test_create_spec_sends_the_spec_and_returns_it(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs", (201, spec_json("created")))
    with server.client() as client:
        spec = client.create_spec(
            "bmi", "stats@1.0.0", ["site-a/patients"], ["age", "bmi"], {"memory_mb": 512}
        )
    assert spec.state is SpecState.CREATED
    method, path, body = server.requests[-1]
    assert (method, path) == ("POST", "/api/v1/specs")
    assert body["datasets"] == ["site-a/patients"]
    assert body["columns"] == ["age", "bmi"]
    assert body["resources"]["memory_mb"] == 512


@pytest.mark.parametrize(
    ("model", "dataset", "message"),
    [
        ("stats", "site-a/patients", "name@version"),
        ("stats@latest", "site-a/patients", "name@version"),
        ("stats@1.0.0", "site-a", "gateway/dataset"),
    ],
)
def test_create_spec_refuses_bad_refs_before_sending(
    server: ScriptedServer, model: str, dataset: str, message: str
) -> None:
    with server.client() as client, pytest.raises(InvalidInput, match=message):
        client.create_spec("x", model, [dataset], ["age"])
    assert server.requests == []


def test_activate_polls_until_active(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs/spec_1/activate", (200, spec_json("activating")))
    server.reply(
        "GET", "/api/v1/specs/spec_1", (200, spec_json("activating")), (200, spec_json("activating")),
        (200, spec_json("active")),
    )  # fmt: skip
    with server.client() as client:
        spec = client.activate_spec("spec_1", timeout=30)
    assert spec.state is SpecState.ACTIVE
    assert [p for _, p, _ in server.requests].count("/api/v1/specs/spec_1") == 3


def test_activate_failure_raises_with_the_gateways_reason(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs/spec_1/activate", (200, spec_json("activating")))
    server.reply(
        "GET", "/api/v1/specs/spec_1", (200, spec_json("failed", "site-b: column postcode not granted"))
    )
    with server.client() as client, pytest.raises(Conflict, match="site-b: column postcode not granted"):
        client.activate_spec("spec_1", timeout=30)


def test_activate_without_wait_returns_at_once(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs/spec_1/activate", (200, spec_json("activating")))
    with server.client() as client:
        assert client.activate_spec("spec_1", wait=False).state is SpecState.ACTIVATING
    assert len(server.requests) == 1


def test_activate_wait_is_bounded(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs/spec_1/activate", (200, spec_json("activating")))
    server.reply("GET", "/api/v1/specs/spec_1", (200, spec_json("activating")))
    with server.client() as client, pytest.raises(WaitTimeout, match="still activating"):
        client.activate_spec("spec_1", timeout=0.3)


def test_wait_job_returns_the_finished_job(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("running")), (200, job_json("succeeded")))
    with server.client() as client:
        job = client.wait_job("job_1", timeout=30, progress=True)
    assert job.state is JobState.SUCCEEDED


def test_wait_job_raises_on_failure_with_reason(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("failed", "site-a: sandbox ran out of memory")))
    with server.client() as client, pytest.raises(Conflict, match="sandbox ran out of memory"):
        client.wait_job("job_1", timeout=30)


def test_wait_job_is_bounded(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("running")))
    with server.client() as client, pytest.raises(WaitTimeout, match="job job_1 is still running"):
        client.wait_job("job_1", timeout=0.3)


def test_job_result_is_a_result_with_tables(server: ScriptedServer) -> None:
    result = {"summaries": [{"column": "age", "count": 120, "mean": 47.5}], "suppressed": []}
    server.reply(
        "GET",
        "/api/v1/jobs/job_1/result",
        (200, {"job_id": "job_1", "model": "stats@1.0.0", "result": result}),
    )
    with server.client() as client:
        got = client.job_result("job_1")
    assert isinstance(got, Result)
    assert got["summaries"][0]["mean"] == 47.5
    frame = got.tables()["summaries"]
    assert list(frame.columns) == ["column", "count", "mean"]
    assert frame.loc[0, "count"] == 120


def test_dataset_has_schema_and_fetches_its_mock_once(server: ScriptedServer) -> None:
    mock = pa.table({"age": [31, 62, 47]})
    server.reply("GET", "/api/v1/datasets/site-a/patients", (200, DATASET_JSON))
    server.reply(
        "GET", "/api/v1/datasets/site-a/patients/mock",
        (200, {"dataset": "site-a/patients", "mock_arrow_b64": table_to_ipc_b64(mock)}),
    )  # fmt: skip
    with server.client() as client:
        dataset = client.dataset("site-a/patients")
        assert dataset.ref == "site-a/patients"
        assert dataset.row_count == 1000
        assert dataset.schema.names == ["age"]
        assert dataset.mock["age"].tolist() == [31, 62, 47]
        assert dataset.mock["age"].tolist() == [31, 62, 47]
    assert [p for _, p, _ in server.requests].count("/api/v1/datasets/site-a/patients/mock") == 1
    assert "site-a/patients" in dataset._repr_html_()


def test_datasets_lists_wire_models(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/datasets", (200, [DATASET_JSON]))
    with server.client() as client:
        (info,) = client.datasets()
    assert (info.gateway, info.name, info.row_count) == ("site-a", "patients", 1000)


def test_health_needs_no_sign_in(server: ScriptedServer) -> None:
    server.reply("GET", "/healthz", (200, {"status": "ok"}))
    with server.client() as client:
        assert client.health() is True
