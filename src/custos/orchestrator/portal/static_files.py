"""The portal's static files (`/static/NAME`): a fixed list, each with its content type, read once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from custos.core.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_FILES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}


@cache
def _read(name: str) -> bytes:
    return files("custos.orchestrator.portal").joinpath("static", name).read_bytes()


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    kind = STATIC_FILES.get(name)
    if kind is None:
        raise NotFound(f"no static file {name}")
    return Response(_read(name), media_type=kind, headers={"cache-control": "public, max-age=3600"})
