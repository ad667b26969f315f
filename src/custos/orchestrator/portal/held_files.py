"""A held file output as a reviewer sees it in the portal: a CSV or Parquet file as one page of its
rows, a PDF as images of its pages, JSON as its text, a PNG as itself.

Every file comes from sandboxed code, so nothing of it is ever interpreted: cells and text are
passed through `custos.core.inert` and the templates' escaping; a PDF is rasterised by PDFium
(pypdfium2's build has no JavaScript engine, and forms are not drawn) into a PNG the portal encodes
itself, so the browser only ever decodes a PNG. Work is bounded: at most `MAX_PDF_PAGES` pages are
rendered, each at most `MAX_PAGE_PIXELS` on its longer side; a file that does not parse is shown as
unreadable, saying why without quoting it.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from custos.core.inert import inert

# pyarrow and pypdfium2 are imported where a file is read: the orchestrator's start loads neither.

MAX_PDF_PAGES = 20
MAX_PAGE_PIXELS = 1600
MAX_TEXT_CHARS = 100_000
# PDFium is not thread-safe, and FastAPI runs the portal's routes on a thread pool.
_PDFIUM = threading.Lock()

CONTENT_TYPES = {
    "png": "image/png",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
    "pdf": "application/pdf",
}


@dataclass
class FileView:
    """What the release page shows of one file: `shown` is `image`, `table`, `pages`, `text` or
    `unreadable` (then `reason` says why)."""

    file_type: str
    size: int
    shown: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total_rows: int = 0
    pages: int = 0
    total_pages: int = 0
    text: str = ""
    reason: str = ""


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return inert(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return inert(str(value))


def _csv_view(view: FileView, data: bytes, offset: int, limit: int) -> FileView:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), strict=True)
    header = next(reader, [])
    view.columns = [inert(c) for c in header]
    total = 0
    for record in reader:
        if offset <= total < offset + limit:
            view.rows.append({c: _cell(v) for c, v in zip(view.columns, record, strict=False)})
        total += 1
    view.total_rows = total
    view.shown = "table"
    return view


def _parquet_view(view: FileView, data: bytes, offset: int, limit: int) -> FileView:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(io.BytesIO(data))
    view.total_rows = parquet.metadata.num_rows
    view.columns = [inert(c) for c in parquet.schema_arrow.names]
    seen = 0
    for batch in parquet.iter_batches(batch_size=max(limit, 1)):
        if seen + batch.num_rows > offset:
            start = max(offset - seen, 0)
            for record in batch.slice(start, limit - len(view.rows)).to_pylist():
                view.rows.append({c: _cell(v) for c, v in zip(view.columns, record.values(), strict=False)})
        seen += batch.num_rows
        if len(view.rows) >= limit:
            break
    view.shown = "table"
    return view


def pdf_page_count(data: bytes) -> int:
    import pypdfium2 as pdfium

    with _PDFIUM:
        document = pdfium.PdfDocument(data)
        try:
            return len(document)
        finally:
            document.close()


def _pdf_view(view: FileView, data: bytes) -> FileView:
    view.total_pages = pdf_page_count(data)
    view.pages = min(view.total_pages, MAX_PDF_PAGES)
    view.shown = "pages"
    return view


def file_view(file_type: str, data: bytes, *, offset: int = 0, limit: int = 100) -> FileView:
    """One page of `data` (a held file of `file_type`) for the release page."""
    import pypdfium2 as pdfium

    view = FileView(file_type, len(data), shown="unreadable")
    try:
        if file_type == "png":
            view.shown = "image"
        elif file_type == "csv":
            _csv_view(view, data, offset, limit)
        elif file_type == "parquet":
            _parquet_view(view, data, offset, limit)
        elif file_type == "pdf":
            _pdf_view(view, data)
        elif file_type == "json":
            text = json.dumps(json.loads(data.decode("utf-8")), indent=2, ensure_ascii=False)
            view.text, view.shown = inert(text[:MAX_TEXT_CHARS]), "text"
        else:
            view.reason = f"the portal does not show {inert(file_type)} files"
    except (ValueError, csv.Error, OSError, pdfium.PdfiumError) as exc:
        # The message of a parser may quote the file: say only which parser refused it.
        view.rows, view.columns, view.shown = [], [], "unreadable"
        view.reason = f"it does not read as {file_type} ({type(exc).__name__})"
    return view


def _png(width: int, height: int, rgb_rows: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rgb_rows, 6))
        + chunk(b"IEND", b"")
    )


def pdf_page_png(data: bytes, index: int) -> bytes:
    """Page `index` (from 0) of a PDF as a PNG at most MAX_PAGE_PIXELS on its longer side;
    IndexError for a page past the last one rendered."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        document = pdfium.PdfDocument(data)
        try:
            if not 0 <= index < min(len(document), MAX_PDF_PAGES):
                raise IndexError(index)
            page = document[index]
            width, height = page.get_size()
            scale = min(2.0, MAX_PAGE_PIXELS / max(width, height, 1.0))
            bitmap = page.render(scale=scale, may_draw_forms=False, rev_byteorder=True)
            pixels = bitmap.to_numpy()
            page.close()
        finally:
            document.close()
    rgb = pixels[:, :, :3]
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(rgb.shape[0]))
    return _png(rgb.shape[1], rgb.shape[0], rows)
