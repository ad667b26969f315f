"""The SDK methods behind `custos spec deactivate`, `dataset mock`, `policy push` and `release ...`:
each sends its one request and returns the typed answer (tests/unit/cli/test_every_command_via_sdk.py
checks that every command has such a method and a test)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from custos.core.errors import InvalidInput, PermissionDenied
from custos.core.states import ReleaseState, SpecState
from custos.core.wire import SignedPolicy
from custos.data.ipc import table_to_ipc_b64

from .conftest import ScriptedServer

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
RELEASE_ID = "rel_0123456789abcdef"


def release_json(state: str, approvals: int = 0) -> dict[str, Any]:
    return {
        "id": RELEASE_ID,
        "job_id": "job_1",
        "job_state": "awaiting_release",
        "state": state,
        "model": "stats@1.0.0",
        "submitter": "alice",
        "submitter_org": "university",
        "datasets": ["site-a/patients"],
        "orgs": ["hospital-a"],
        "required": 1,
        "approvals": approvals,
        "reason": None,
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    }


def detail_json(state: str, approvals: int = 0) -> dict[str, Any]:
    return {
        **release_json(state, approvals),
        "spec_id": "spec_1",
        "params": {"columns": ["age"]},
        "columns": ["age"],
        "result": {"n": 120},
        "votes": [],
    }


def test_deactivate_spec(server: ScriptedServer) -> None:
    spec = {
        "id": "spec_1",
        "name": "bmi",
        "model": "stats@1.0.0",
        "datasets": ["site-a/patients"],
        "columns": ["age"],
        "resources": {},
        "state": "deactivated",
        "reason": None,
        "owner": "alice",
        "org": "university",
        "created_at": NOW.isoformat(),
    }
    server.reply("POST", "/api/v1/specs/spec_1/deactivate", (200, spec))
    with server.client() as client:
        assert client.deactivate_spec("spec_1").state is SpecState.DEACTIVATED


def test_mock_is_a_data_frame(server: ScriptedServer) -> None:
    table = pa.table({"age": [30, 41]})
    mock = {"dataset": "site-a/patients", "mock_arrow_b64": table_to_ipc_b64(table)}
    server.reply("GET", "/api/v1/datasets/site-a/patients/mock", (200, mock))
    with server.client() as client:
        frame = client.mock("site-a/patients")
    assert list(frame["age"]) == [30, 41]


def test_push_policy_puts_the_signed_policy_at_its_dataset(server: ScriptedServer) -> None:
    signed = SignedPolicy(
        dataset="site-a/patients",
        policy_yaml="dataset: patients\n",
        issued_at=NOW,
        signer_certificate_pem="pem",
        signature="c2ln",
    )
    server.reply("PUT", "/api/v1/datasets/site-a/patients/policy", (403, {"detail": "not an org admin"}))
    with server.client() as client, pytest.raises(PermissionDenied, match="not an org admin"):
        client.push_policy(signed)
    method, path, body = server.requests[0]
    assert (method, path) == ("PUT", "/api/v1/datasets/site-a/patients/policy")
    assert body == signed.model_dump(mode="json")


def test_releases_list_filter_and_show(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/releases", (200, [release_json("held")]))
    server.reply("GET", "/api/v1/releases?state=held", (200, [release_json("held")]))
    server.reply("GET", f"/api/v1/releases/{RELEASE_ID}", (200, detail_json("held")))
    with server.client() as client:
        assert [r.id for r in client.releases()] == [RELEASE_ID]
        assert [r.state for r in client.releases(ReleaseState.HELD)] == [ReleaseState.HELD]
        assert client.release(RELEASE_ID).result == {"n": 120}
        with pytest.raises(InvalidInput, match="is not one of"):
            client.releases("maybe")
        with pytest.raises(InvalidInput, match="not a release id"):
            client.release("../jobs")


def test_each_vote_posts_its_reason(server: ScriptedServer) -> None:
    for decision, state in [("approve", "released"), ("return", "returned"), ("reject", "rejected")]:
        server.reply("POST", f"/api/v1/releases/{RELEASE_ID}/{decision}", (200, detail_json(state)))
    with server.client() as client:
        assert client.approve_release(RELEASE_ID).state is ReleaseState.RELEASED
        assert client.return_release(RELEASE_ID, "round the counts").state is ReleaseState.RETURNED
        assert client.reject_release(RELEASE_ID, "rows in a table").state is ReleaseState.REJECTED
    assert [(path.rsplit("/", 1)[1], body) for _, path, body in server.requests] == [
        ("approve", {"reason": ""}),
        ("return", {"reason": "round the counts"}),
        ("reject", {"reason": "rows in a table"}),
    ]


def test_returning_or_rejecting_needs_a_reason(server: ScriptedServer) -> None:
    with server.client() as client:
        with pytest.raises(InvalidInput, match="reason is required to return"):
            client.return_release(RELEASE_ID, " ")
        with pytest.raises(InvalidInput, match="reason is required to reject"):
            client.reject_release(RELEASE_ID, "")
    assert server.requests == []
