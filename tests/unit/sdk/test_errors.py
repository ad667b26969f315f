"""HTTP refusals become the Custos error for their status, carrying the server's sentence."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from custos.core.errors import (
    AuthenticationFailed,
    Conflict,
    CustosError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from custos.sdk import Client

from .conftest import ScriptedServer


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidInput),
        (401, AuthenticationFailed),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
    ],
)
def test_status_maps_to_error_with_server_detail(
    server: ScriptedServer, status: int, kind: type[CustosError]
) -> None:
    detail = f"the server says no ({status})"
    server.reply("GET", "/api/v1/me", (status, {"detail": detail}))
    with server.client() as client, pytest.raises(kind) as caught:
        client.me()
    assert type(caught.value) is kind
    assert str(caught.value) == detail


def test_validation_error_list_names_the_first_field(server: ScriptedServer) -> None:
    body: dict[str, Any] = {
        "detail": [{"loc": ["body", "columns"], "msg": "Field required", "type": "missing"}]
    }
    server.reply("POST", "/api/v1/jobs", (422, body))
    with server.client() as client, pytest.raises(InvalidInput, match=r"^columns: Field required$"):
        client.submit_job("spec_1", {})


def test_server_failure_is_a_plain_custos_error_with_status(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/specs", (500, {"detail": "database is locked"}))
    with server.client() as client, pytest.raises(CustosError) as caught:
        client.specs()
    assert type(caught.value) is CustosError
    assert "500" in str(caught.value)
    assert "database is locked" in str(caught.value)


def test_non_json_error_body_is_quoted(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/specs/x", (404, b"nothing here"))
    with server.client() as client, pytest.raises(NotFound, match="nothing here"):
        client.spec("x")


def test_answer_that_is_not_the_wire_model_is_reported(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/me", (200, {"name": "alice"}))
    with server.client() as client, pytest.raises(CustosError, match="not a valid Me"):
        client.me()


def test_unreachable_orchestrator_names_its_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # Nothing listens on the port any more: the connection is refused.
    with Client(httpx.Client(base_url=url + "/api/v1", timeout=5), url=url) as client:
        with pytest.raises(CustosError, match=rf"orchestrator at {url} is unreachable"):
            client.datasets()
        with pytest.raises(CustosError, match="unreachable"):
            client.health()


def test_missing_kit_folder_is_a_kit_error(tmp_path: Any) -> None:
    from custos.core.errors import KitError

    with pytest.raises(KitError, match="does not exist"):
        Client.from_kit(tmp_path / "nope")
