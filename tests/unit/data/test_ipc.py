"""Tables as base64 Arrow IPC: a round trip keeps the table; garbage, bombs and oversize are refused."""

from __future__ import annotations

import base64

import pyarrow as pa
import pytest

from custos.core.errors import InvalidInput, PayloadTooLarge
from custos.data.ipc import table_from_ipc_b64, table_to_ipc_b64
from custos.data.synthetic import synthetic_patients


def _stream(table: pa.Table, compression: str | None = None) -> str:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def test_a_round_trip_keeps_the_table() -> None:
    table = synthetic_patients(300, site=2)
    text = table_to_ipc_b64(table)
    assert isinstance(text, str)
    assert table_from_ipc_b64(text).equals(table)


def test_dictionary_columns_and_empty_tables_survive() -> None:
    table = pa.table({"a": pa.array(["x", "y", "x"]).dictionary_encode(), "b": [1, 2, 3]})
    assert table_from_ipc_b64(table_to_ipc_b64(table)).equals(table)
    empty = table.slice(0, 0)
    assert table_from_ipc_b64(table_to_ipc_b64(empty)).num_rows == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        ("", "not a valid Arrow IPC stream"),
        (base64.b64encode(b"\xff\xff\xff\xff" + b"\x00" * 64).decode(), "not a valid Arrow IPC stream"),
        (base64.b64encode(b"garbage" * 50).decode(), "not a valid Arrow IPC stream"),
    ],
)
def test_garbage_is_invalid_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        table_from_ipc_b64(text)


def test_a_truncated_stream_is_invalid_input() -> None:
    raw = base64.b64decode(table_to_ipc_b64(synthetic_patients(100, site=0)))
    with pytest.raises(InvalidInput):
        table_from_ipc_b64(base64.b64encode(raw[: len(raw) // 2]).decode())


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a3_compressed_streams_are_refused_before_decompressing(codec: str) -> None:
    bomb = pa.table({"zeros": pa.array([0] * 200_000, type=pa.int64())})
    text = _stream(bomb, codec)
    assert len(text) < 100_000  # small on the wire, 1.6 MB once expanded
    with pytest.raises(InvalidInput, match="compressed"):
        table_from_ipc_b64(text, max_bytes=100_000)


def test_oversize_is_refused() -> None:
    text = table_to_ipc_b64(synthetic_patients(1_000, site=0))
    with pytest.raises(PayloadTooLarge, match="larger than 1000 bytes"):
        table_from_ipc_b64(text, max_bytes=1_000)
