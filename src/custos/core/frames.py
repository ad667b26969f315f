"""Length-prefixed frames over a stream socket: how a gateway and the sandboxed runtime of a job talk
across rounds. A frame is a JSON message whose `bytes` values travel raw after it, as blobs
(`custos.core.blobs`): no base64, no copy into the JSON text. Every frame is bounded, JSON and blobs
apart; a short read is end of stream, not a partial message.

    >I length | JSON (bytes values replaced by {"$blob": name, "size": n}) | each blob, in name order

Within a frame a blob is named by its position, not its SHA-256: the receiver gets plain bytes back,
and whatever digest a later hop needs is computed there, from the bytes, never taken on trust.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from custos.core.blobs import externalize, internalize, refs_in
from custos.core.digest import canonical_json
from custos.core.errors import InvalidInput, PayloadTooLarge

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 16 << 20
MAX_FRAME_BLOB_BYTES = 512 << 20


def send_frame(
    sock: socket.socket,
    value: dict[str, Any],
    *,
    max_bytes: int = MAX_FRAME_BYTES,
    max_blob_bytes: int = MAX_FRAME_BLOB_BYTES,
) -> None:
    message, blobs = externalize(value, name=_position)
    body = canonical_json(message)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"a message of {len(body)} bytes is larger than the limit of {max_bytes}")
    total = sum(len(b) for b in blobs.values())
    if total > max_blob_bytes:
        raise PayloadTooLarge(f"a message's {total} bytes of blobs are over the limit of {max_blob_bytes}")
    sock.sendall(_HEADER.pack(len(body)) + body)
    for digest in sorted(blobs):
        sock.sendall(blobs[digest])


def _position(_data: bytes, index: int) -> str:
    return f"{index:064x}"


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:], min(size - received, 4 << 20))
        if not count:
            return None
        received += count
    return bytes(buffer)


def recv_frame(
    sock: socket.socket, *, max_bytes: int = MAX_FRAME_BYTES, max_blob_bytes: int = MAX_FRAME_BLOB_BYTES
) -> dict[str, Any] | None:
    """The next frame, with its blobs back as `bytes` values, or None when the peer closed the stream."""
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
    refs = refs_in(value)
    total = sum(refs.values())
    if total > max_blob_bytes:
        raise PayloadTooLarge(f"a message's {total} bytes of blobs are over the limit of {max_blob_bytes}")
    blobs: dict[str, bytes] = {}
    for digest in sorted(refs):
        data = _read_exactly(sock, refs[digest])
        if data is None:
            return None
        blobs[digest] = data
    result: dict[str, Any] = internalize(value, lambda name, _size: blobs[name], check=False)
    return result
