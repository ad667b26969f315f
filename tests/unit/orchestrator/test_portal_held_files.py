"""The portal's view of held files: paged CSV and Parquet tables, a PDF's pages as PNG images, JSON
as text; markup stays text and a file that does not parse is named unreadable without quoting it."""

from __future__ import annotations

import io
import struct
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
from tests.held_files import pdf_bytes, png_bytes

from custos.orchestrator.portal.held_files import MAX_PAGE_PIXELS, MAX_PDF_PAGES, file_view, pdf_page_png

MARKUP = "<script>alert(1)</script>"


def _csv(rows: int) -> bytes:
    return ("region,n\n" + "".join(f"r{i},{i}\n" for i in range(rows))).encode()


def test_a_csv_file_is_one_page_of_its_rows() -> None:
    view = file_view("csv", _csv(250), offset=100, limit=100)
    assert (view.shown, view.columns, view.total_rows) == ("table", ["region", "n"], 250)
    assert [r["region"] for r in (view.rows[0], view.rows[-1])] == ["r100", "r199"]


def test_a_parquet_file_is_one_page_of_its_rows() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"region": [f"r{i}" for i in range(250)], "n": list(range(250))}), sink)
    view = file_view("parquet", sink.getvalue(), offset=200, limit=100)
    assert (view.shown, view.total_rows, len(view.rows)) == ("table", 250, 50)
    assert view.rows[0] == {"region": "r200", "n": 200}


def test_a_pdf_shows_its_pages_as_png_images_bounded() -> None:
    data = pdf_bytes([f"page {i}" for i in range(MAX_PDF_PAGES + 3)])
    view = file_view("pdf", data)
    assert (view.shown, view.total_pages, view.pages) == ("pages", MAX_PDF_PAGES + 3, MAX_PDF_PAGES)
    image = pdf_page_png(data, 0)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    assert max(width, height) <= MAX_PAGE_PIXELS and min(width, height) > 100
    pixels = zlib.decompress(image[41 : image.index(b"IEND") - 8])
    assert len(set(pixels)) > 2  # text was drawn, not a blank page


def test_a_page_past_those_shown_is_refused() -> None:
    data = pdf_bytes(["one"] * (MAX_PDF_PAGES + 1))
    for index in (-1, MAX_PDF_PAGES):
        try:
            pdf_page_png(data, index)
        except IndexError:
            continue
        raise AssertionError(f"page {index} rendered")


def test_markup_and_terminal_escapes_in_a_file_are_inert_text() -> None:
    view = file_view("csv", f"{MARKUP},n\n\x1b[31m{MARKUP},1\n".encode())
    assert view.columns == [MARKUP, "n"]
    assert "\x1b" not in str(view.rows[0][MARKUP]) and MARKUP in str(view.rows[0][MARKUP])
    text = file_view("json", f'{{"note": "{MARKUP}"}}'.encode())
    assert text.shown == "text" and MARKUP in text.text


def test_a_file_that_does_not_parse_is_unreadable_without_quoting_it() -> None:
    for file_type, data in (
        ("pdf", b"%PDF-1.4 " + MARKUP.encode() + b" %%EOF"),
        ("csv", b'a\n"' + MARKUP.encode()),
        ("parquet", b"PAR1" + MARKUP.encode() + b"PAR1"),
        ("json", MARKUP.encode()),
    ):
        view = file_view(file_type, data)
        assert view.shown == "unreadable" and view.rows == [], file_type
        assert "script" not in view.reason and file_type in view.reason


def test_a_png_is_shown_as_itself() -> None:
    assert file_view("png", png_bytes()).shown == "image"
