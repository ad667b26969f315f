"""Request body cap, enforced while the body streams in (docs/threats.md, A2): memory stays flat."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


def _is_blob_upload(scope: Scope) -> bool:
    return scope.get("method") == "PUT" and "/blobs/" in scope.get("path", "")


class BodyLimit:
    """Bodies of at most `max_bytes`, and blob uploads (raw bytes, no JSON) of at most `max_blob_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_blob_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_blob_bytes = max_bytes if max_blob_bytes is None else max_blob_bytes

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"request body is larger than {limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_blob_bytes if _is_blob_upload(scope) else self.max_bytes
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)


def first_error(errors: Any) -> str:
    """One readable line from a pydantic/FastAPI validation error list."""
    if not errors:
        return "invalid request"
    err = errors[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{loc or 'request'}: {err.get('msg', 'invalid value')}"
