"""Tables as text: an Arrow IPC stream in base64, the form mock tables travel in over JSON.

Only uncompressed streams are accepted. An uncompressed stream cannot hold more than it carries, so
bounding the text bounds the memory; a compressed one could expand far beyond it, and the check for
compression reads each message's header before any body is decoded.
"""

from __future__ import annotations

import base64
import binascii
import struct

import pyarrow as pa

from custos.core.errors import InvalidInput, PayloadTooLarge

MAX_IPC_BYTES = 16 << 20

# Slots of the Arrow flatbuffer tables (format/Message.fbs) that locate a body's compression.
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER = 1, 2
_HEADER_DICTIONARY_BATCH, _HEADER_RECORD_BATCH = 2, 3
_DICTIONARY_DATA = 1
_RECORD_BATCH_COMPRESSION = 3


def table_to_ipc_b64(table: pa.Table) -> str:
    """`table` as a base64, uncompressed Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


def table_from_ipc_b64(text: str, *, max_bytes: int = MAX_IPC_BYTES) -> pa.Table:
    """The table in a base64 Arrow IPC stream of at most `max_bytes` decoded bytes.

    Raises PayloadTooLarge above the bound and InvalidInput for anything that is not an uncompressed
    Arrow IPC stream.
    """
    # Four characters of base64 carry three bytes: refuse before decoding anything too long.
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise PayloadTooLarge(f"the Arrow table is larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the Arrow table is not valid base64") from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the Arrow table is larger than {max_bytes} bytes")
    buffer = pa.py_buffer(raw)
    try:
        for message in pa.ipc.MessageReader.open_stream(buffer):
            if _is_compressed(message.metadata.to_pybytes()):
                raise InvalidInput("the Arrow table is compressed; send an uncompressed Arrow IPC stream")
        with pa.ipc.open_stream(buffer) as reader:
            return reader.read_all()
    except (pa.ArrowException, ValueError, OSError, struct.error, IndexError):
        raise InvalidInput("the Arrow table is not a valid Arrow IPC stream") from None


def _is_compressed(metadata: bytes) -> bool:
    """Whether an IPC message's flatbuffer header declares a compressed body."""
    message = _root(metadata)
    header_type = _field(metadata, message, _MESSAGE_HEADER_TYPE)
    if header_type is None:
        return False
    kind = _unpack("<B", metadata, header_type)
    if kind not in (_HEADER_RECORD_BATCH, _HEADER_DICTIONARY_BATCH):
        return False
    batch = _table_at(metadata, _field(metadata, message, _MESSAGE_HEADER))
    if batch is not None and kind == _HEADER_DICTIONARY_BATCH:
        batch = _table_at(metadata, _field(metadata, batch, _DICTIONARY_DATA))
    return batch is not None and _field(metadata, batch, _RECORD_BATCH_COMPRESSION) is not None


def _unpack(fmt: str, buf: bytes, position: int) -> int:
    # Python reads negative positions from the end; a hostile header must not steer the check that way.
    if position < 0 or position + struct.calcsize(fmt) > len(buf):
        raise ValueError("offset outside the message header")
    (value,) = struct.unpack_from(fmt, buf, position)
    return int(value)


def _root(buf: bytes) -> int:
    return _unpack("<I", buf, 0)


def _field(buf: bytes, table: int, slot: int) -> int | None:
    """The position of a table's field, or None when the field is absent."""
    vtable = table - _unpack("<i", buf, table)
    entry = 4 + 2 * slot
    if entry + 2 > _unpack("<H", buf, vtable):
        return None
    offset = _unpack("<H", buf, vtable + entry)
    return table + offset if offset else None


def _table_at(buf: bytes, position: int | None) -> int | None:
    if position is None:
        return None
    return position + _unpack("<I", buf, position)
