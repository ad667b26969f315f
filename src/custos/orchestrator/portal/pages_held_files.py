"""The bytes behind a held file on the release page: the file itself (a PNG shown inline, any other
type only as a download) and the PNG images of a PDF's pages. Same reviewers as the release page
(`release.review`, own org's sites only, 404 otherwise), every fetch audited by the service.

Each answer names its exact content type, is `nosniff`, and carries its own Content-Security-Policy
`default-src 'none'; sandbox`: opened on its own, a file runs nothing and reaches nothing. Only a PNG
is ever `inline`; a CSV, JSON, Parquet or PDF file is an `attachment` of type octet-stream, so no
browser viewer (PDF.js, a JSON viewer) renders what the code wrote.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from custos.core.errors import NotFound
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.held_files import CONTENT_TYPES, MAX_PDF_PAGES, pdf_page_png

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)
_FILE_HEADERS = {
    "content-security-policy": "default-src 'none'; sandbox",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
Segment = Annotated[str, Path(min_length=1, max_length=200)]


def _file_name(gateway: str, dataset: str, suffix: str) -> str:
    return _UNSAFE_IN_NAME.sub("_", f"{gateway}-{dataset}")[:120] + suffix


def _answer(data: bytes, content_type: str, disposition: str, name: str) -> Response:
    headers = {**_FILE_HEADERS, "content-disposition": f'{disposition}; filename="{name}"'}
    return Response(content=data, media_type=content_type, headers=headers)


@router.get("/releases/{release_id}/files/{gateway}/{dataset}", response_class=Response)
def held_file(
    release_id: Segment,
    gateway: Segment,
    dataset: Segment,
    caller: PageCallerDep,
    services: ServicesDep,
    download: Annotated[bool, Query()] = False,
) -> Response:
    """A held file output: a PNG inline (unless `download`), any other type as a download."""
    name = f"{gateway}/{dataset}"
    file_type, data = services.run(lambda s: services.held_outputs.file(s, caller.identity, release_id, name))
    suffix = "." + file_type if file_type in CONTENT_TYPES else ".bin"
    if file_type == "png" and not download:
        return _answer(data, CONTENT_TYPES["png"], "inline", _file_name(gateway, dataset, suffix))
    return _answer(data, "application/octet-stream", "attachment", _file_name(gateway, dataset, suffix))


@router.get("/releases/{release_id}/files/{gateway}/{dataset}/pages/{number}", response_class=Response)
def held_pdf_page(
    release_id: Segment,
    gateway: Segment,
    dataset: Segment,
    number: Annotated[int, Path(ge=1, le=MAX_PDF_PAGES)],
    caller: PageCallerDep,
    services: ServicesDep,
) -> Response:
    """Page `number` (from 1) of a held PDF output, rendered as a PNG."""
    name = f"{gateway}/{dataset}"
    file_type, data = services.run(lambda s: services.held_outputs.file(s, caller.identity, release_id, name))
    if file_type != "pdf":
        raise NotFound(f"release {release_id} has no PDF output {name} that you review")
    try:
        image = pdf_page_png(data, number - 1)
    except IndexError:
        raise NotFound(f"the PDF output {name} of release {release_id} has no page {number} shown") from None
    except Exception:
        # PDFium refused the file; the release page says it is unreadable.
        raise NotFound(f"the PDF output {name} of release {release_id} does not render") from None
    return _answer(image, CONTENT_TYPES["png"], "inline", _file_name(gateway, dataset, f"-page{number}.png"))
