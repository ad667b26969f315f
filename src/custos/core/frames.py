"""Length-prefixed JSON frames over a stream socket: how a gateway and the sandboxed runtime of a job
talk across rounds. Every frame is bounded; a short read is end of stream, not a partial message."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from custos.core.digest import canonical_json
from custos.core.errors import InvalidInput, PayloadTooLarge

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 16 << 20


def send_frame(sock: socket.socket, value: dict[str, Any], *, max_bytes: int = MAX_FRAME_BYTES) -> None:
    body = canonical_json(value)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"a message of {len(body)} bytes is larger than the limit of {max_bytes}")
    sock.sendall(_HEADER.pack(len(body)) + body)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks.extend(chunk)
    return bytes(chunks)


def recv_frame(sock: socket.socket, *, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any] | None:
    """The next frame, or None when the peer closed the stream."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise PayloadTooLarge(f"a message of {size} bytes is larger than the limit of {max_bytes}")
    body = _read_exactly(sock, size)
    if body is None:
        return None
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidInput("a message is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput("a message must be a JSON object")
    return value
