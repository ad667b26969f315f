"""Binary payloads beside the JSON (docs/architecture.md, "Blobs"): content-addressed blobs.

Models put `bytes` values in their messages (a round's weights as safetensors bytes). On every hop
— the sandbox's frames, the HTTP API, the orchestrator's database — a message travels as JSON in
which each `bytes` value is replaced by a reference, {"$blob": "<sha256 hex>", "size": n}, and the
bytes travel raw beside it. The receiver checks each blob against its digest before it puts it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from custos.core.digest import canonical_json
from custos.core.errors import InvalidInput

BLOB_KEY = "$blob"
_MAX_DEPTH = 64

Blobs = dict[str, bytes]


def blob_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_ref(digest: str, size: int) -> dict[str, Any]:
    return {BLOB_KEY: digest, "size": size}


def as_ref(value: object) -> tuple[str, int] | None:
    """(digest, size) if `value` is a blob reference, else None."""
    if isinstance(value, dict) and len(value) == 2 and BLOB_KEY in value and "size" in value:
        digest, size = value[BLOB_KEY], value["size"]
        if isinstance(digest, str) and len(digest) == 64 and isinstance(size, int) and size >= 0:
            return digest, size
        raise InvalidInput("a blob reference needs a 64-character SHA-256 hex digest and a size")
    return None


def externalize(value: Any, *, name: Callable[[bytes, int], str] | None = None) -> tuple[Any, Blobs]:
    """`value` with every `bytes` value replaced by its reference, and the blobs by digest.

    `name(data, index)` names a blob instead of its SHA-256, for a hop whose receiver does not check
    digests (a socket between two processes of one site, where hashing would only cost time)."""
    blobs: Blobs = {}
    named: dict[int, str] = {}

    def walk(node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"a message is nested more than {_MAX_DEPTH} levels deep")
        if isinstance(node, bytes | bytearray | memoryview):
            data = bytes(node)
            digest = named.get(id(node))  # the same object twice (state and round input) is hashed once
            if digest is None:
                digest = named[id(node)] = blob_digest(data) if name is None else name(data, len(blobs))
            blobs[digest] = data
            return blob_ref(digest, len(data))
        if isinstance(node, Mapping):
            return {key: walk(item, depth + 1) for key, item in node.items()}
        if isinstance(node, list | tuple):
            return [walk(item, depth + 1) for item in node]
        return node

    return walk(value, 0), blobs


def refs_in(value: Any) -> dict[str, int]:
    """Every blob a JSON value refers to: digest -> size."""
    found: dict[str, int] = {}

    def walk(node: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"a message is nested more than {_MAX_DEPTH} levels deep")
        ref = as_ref(node)
        if ref is not None:
            found[ref[0]] = ref[1]
        elif isinstance(node, dict):
            for item in node.values():
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(value, 0)
    return found


def check_blob(digest: str, size: int, data: bytes) -> bytes:
    """`data` if it is the blob the reference names; InvalidInput otherwise."""
    if len(data) != size or blob_digest(data) != digest:
        raise InvalidInput(f"blob {digest[:16]}… does not match its reference (size or SHA-256 differs)")
    return data


def internalize(value: Any, fetch: Callable[[str, int], bytes], *, check: bool = True) -> Any:
    """`value` with every reference replaced by its blob's bytes, checked against the digest unless
    `check` is false (bytes the caller checked before, or whose digest nothing relies on).
    `fetch(digest, size)` returns the bytes (from a frame, the database or the orchestrator)."""
    cache: Blobs = {}

    def load(digest: str, size: int) -> bytes:
        if digest not in cache:
            data = fetch(digest, size)
            if check:
                check_blob(digest, size, data)
            elif len(data) != size:
                raise InvalidInput(f"blob {digest[:16]}… has {len(data)} bytes, not {size}")
            cache[digest] = data
        return cache[digest]

    def walk(node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"a message is nested more than {_MAX_DEPTH} levels deep")
        ref = as_ref(node)
        if ref is not None:
            return load(*ref)
        if isinstance(node, dict):
            return {key: walk(item, depth + 1) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, depth + 1) for item in node]
        return node

    return walk(value, 0)


def through_wire(value: Any) -> Any:
    """`value` as it arrives after one hop: canonical JSON (no NaN, no infinity) with its bytes as
    blobs beside it, checked and put back. What any process boundary of Custos does to a message."""
    message, blobs = externalize(value)
    return internalize(json.loads(canonical_json(message)), lambda digest, _size: blobs[digest])
