"""The portal's forms: reading a posted form (URL-encoded, bounded) and checking its CSRF token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from custos.core.errors import InvalidInput, PermissionDenied
from custos.orchestrator.portal.security import CSRF_FIELD, csrf_matches
from custos.orchestrator.services.sessions import SESSION_COOKIE

MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 20


class PostedForm(dict[str, str]):
    """The fields of a posted form, each its last value."""

    def text(self, name: str, *, max_length: int = 4000) -> str:
        value = self.get(name, "")
        if len(value) > max_length:
            raise InvalidInput(f"{name}: at most {max_length} characters, not {len(value)}")
        return value


async def read_form(request: Request) -> PostedForm:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput(f"a form is posted as application/x-www-form-urlencoded, not {kind or 'nothing'}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput(f"a form has at most {MAX_FORM_BYTES} bytes, not {len(body)}")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the form could not be read: {exc}") from exc
    return PostedForm(pairs)


async def signed_in_form(request: Request) -> PostedForm:
    """The form of a signed-in page, once its CSRF token matches the session cookie's."""
    form = await read_form(request)
    if not csrf_matches(request.cookies.get(SESSION_COOKIE), form.get(CSRF_FIELD)):
        raise PermissionDenied(
            "the form's CSRF token does not match your session; reload the page and submit it again"
        )
    return form


SignedInForm = Annotated[PostedForm, Depends(signed_in_form)]
