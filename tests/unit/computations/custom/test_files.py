"""File outputs of custom code: each allowed type is known from its bytes, within its size cap; a
disguised, malformed or oversize file is refused, and the reason quotes nothing of the file."""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any, get_args

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custos.computations.custom.code_package import code_output
from custos.computations.custom.disclosure import OutputCaps, check_output
from custos.computations.custom.files import FILE_TYPES, file_output
from custos.computations.custom.wire import decode_output, encode_output
from custos.core.blobs import externalize, through_wire
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.wire import CodeOutput
from custos.registry.manifest import parse_manifest


def png_bytes() -> bytes:
    """A 1x1 grey PNG, written by hand: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def pdf_bytes() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"region": ["north", "south"], "n": [12, 30]}), sink)
    return sink.getvalue()


def csv_bytes(rows: int = 2) -> bytes:
    frame = pd.DataFrame({"region": [f"r{i}" for i in range(rows)], "n": list(range(rows))})
    return frame.to_csv(index=False).encode()


GOOD = {
    "csv": csv_bytes(),
    "json": json.dumps({"n": [1, 2, 3]}).encode(),
    "parquet": parquet_bytes(),
    "pdf": pdf_bytes(),
    "png": png_bytes(),
}
CAPS = OutputCaps(rows=10, file_bytes=4096)


def test_the_allowed_types_are_the_file_outputs_a_request_may_declare() -> None:
    assert set(GOOD) == set(FILE_TYPES)
    declared = {o for o in get_args(CodeOutput) if o.startswith("file:")}
    assert declared == {file_output(t) for t in FILE_TYPES}


@pytest.mark.parametrize("file_type", sorted(GOOD))
def test_each_allowed_type_is_accepted_and_travels_as_a_blob(file_type: str) -> None:
    encoded = encode_output(GOOD[file_type], f"file:{file_type}")
    check_output(encoded, f"file:{file_type}", CAPS)
    message, blobs = externalize(encoded)
    assert message["data"]["size"] == len(GOOD[file_type]) and len(blobs) == 1  # not base64 in the JSON
    assert decode_output(through_wire(encoded)) == GOOD[file_type]


@pytest.mark.parametrize(
    ("data", "declared", "reason"),
    [
        (png_bytes(), "pdf", "the code declared a pdf file, but it does not start with %PDF-"),
        (pdf_bytes(), "png", "it does not start with the PNG signature"),
        (pdf_bytes()[:-6], "pdf", "it does not end with %%EOF"),
        (parquet_bytes()[:-4], "parquet", "it does not start and end with PAR1"),
        (png_bytes(), "parquet", "it does not start and end with PAR1"),
        (b"region,n\nnorth,1\x00\n", "csv", "it holds a NUL byte"),
        ("region,n\nnörth,1\n".encode("latin-1"), "csv", "it is not UTF-8 text"),
        (b'region,n\n"north,1\nsouth"x,2\n', "csv", r"it does not parse as CSV \(line 3\)"),
        (b"{'n': 1}", "json", "it does not parse as JSON"),
        (csv_bytes(), "png", "it does not start with the PNG signature"),
    ],
    ids=[
        "png as pdf",
        "pdf as png",
        "pdf without eof",
        "truncated parquet",
        "png as parquet",
        "nul in csv",
        "latin-1 csv",
        "bad csv quoting",
        "python repr as json",
        "csv as png",
    ],
)
def test_a_disguised_or_malformed_file_is_refused_without_quoting_it(
    data: bytes, declared: str, reason: str
) -> None:
    with pytest.raises(PolicyDenied, match=f"^the output is refused: .*{reason}") as refused:
        check_output(encode_output(data, f"file:{declared}"), f"file:{declared}", CAPS)
    assert "north" not in str(refused.value) and "nörth" not in str(refused.value)


def test_a_file_over_its_size_cap_is_refused_and_one_at_the_cap_passes() -> None:
    at_cap = b"%PDF-" + b" " * (CAPS.file_bytes - 11) + b"%%EOF\n"
    assert len(at_cap) == CAPS.file_bytes
    check_output(encode_output(at_cap, "file:pdf"), "file:pdf", CAPS)
    with pytest.raises(PolicyDenied, match="a file of 4097 bytes is over the cap of 4096 bytes"):
        check_output(encode_output(at_cap + b"\n", "file:pdf"), "file:pdf", CAPS)
    assert OutputCaps().file_bytes == 1024 * 1024  # the default


def test_a_csv_file_has_the_row_cap_of_a_table() -> None:
    check_output(encode_output(csv_bytes(10), "file:csv"), "file:csv", CAPS)
    with pytest.raises(PolicyDenied, match="a csv file of 11 rows is over the cap of 10 rows"):
        check_output(encode_output(csv_bytes(11), "file:csv"), "file:csv", CAPS)


@pytest.mark.parametrize(
    ("encoded", "declared", "reason"),
    [
        ({"type": "table", "columns": [], "rows": []}, "file:png", "declared a file:png output, not table"),
        ({"type": "file", "file_type": "pdf", "data": pdf_bytes()}, "file:png", "a png file, not another"),
        ({"type": "file", "file_type": "png", "data": b""}, "file:png", "needs its bytes"),
        ({"type": "file", "file_type": "png", "data": "iVBORw0KGgo="}, "file:png", "needs its bytes"),
        ({"type": "file", "file_type": "png", "data": png_bytes()}, "table", "declared a table output"),
    ],
    ids=["a table", "claims another type", "empty", "base64 text", "a file for a table"],
)
def test_an_output_that_is_not_the_declared_file_is_refused(
    encoded: dict[str, Any], declared: str, reason: str
) -> None:
    with pytest.raises(PolicyDenied, match=reason):
        check_output(encoded, declared, CAPS)


def test_bytes_from_code_that_declares_no_file_are_refused_in_words_the_redaction_keeps() -> None:
    with pytest.raises(InvalidInput, match="returned bytes, but the request declares output table") as raised:
        encode_output(png_bytes(), "table")
    assert "'" not in str(raised.value) and not any(c.isdigit() for c in str(raised.value))
    with pytest.raises(InvalidInput, match="file type 'exe' is not allowed; use one of csv, json"):
        file_output("exe")


MANIFEST = 'name = "plot"\nversion = "1.0.0"\nentrypoint = "plot.main:run"\n\n[outputs.figure]\n'


def test_a_package_declares_a_file_of_exactly_one_allowed_type() -> None:
    single = MANIFEST + 'kind = "file"\nmax_bytes = 100000\nfile_types = ["png"]\n'
    assert code_output(parse_manifest(single.encode())) == "file:png"
    with pytest.raises(InvalidInput, match=r"file_types is \['png', 'pdf'\]; .* exactly one type"):
        code_output(parse_manifest(single.replace('["png"]', '["png", "pdf"]').encode()))
    with pytest.raises(InvalidInput, match="file type 'exe' is not allowed"):
        code_output(parse_manifest(single.replace('["png"]', '["exe"]').encode()))
