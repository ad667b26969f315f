"""The orchestrator's end of the wire version check: a caller that says which wire version it speaks
(`Custos-Wire-Version`, as gateways do on every request) must speak this orchestrator's, or it is
refused with a 400 and a JSON detail before anything else reads its request."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from custos.core.errors import InvalidInput
from custos.core.wire import WIRE_VERSION_HEADER, check_wire_version

_HEADER = WIRE_VERSION_HEADER.lower().encode("latin-1")


class WireVersionCheck:
    """Refuse a request whose `Custos-Wire-Version` header names another wire version than ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent = [value for key, value in scope.get("headers", []) if key == _HEADER]
            if sent:
                try:
                    for value in sent:
                        check_wire_version(
                            value.decode("latin-1"), sender="the caller", receiver="this orchestrator"
                        )
                except InvalidInput as exc:
                    await _refuse(send, exc)
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, exc: InvalidInput) -> None:
    body = json.dumps({"detail": exc.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
