"""Rendering the portal's pages: one Jinja2 environment over the templates beside this module, with
autoescaping on for every template, so a value from a request, a dataset, a code request or an output
is always text in the page, never markup.

The only markup that does not come from a template is Pygments' highlighting of code (`highlight`),
which escapes the code it wraps in its own spans.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from custos.orchestrator.portal.security import CSRF_FIELD, csrf_token
from custos.orchestrator.services.auth import Caller
from custos.orchestrator.services.sessions import SESSION_COOKIE


def _load(name: str) -> str | None:
    path = files("custos.orchestrator.portal").joinpath("templates", name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _number(value: object, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FunctionLoader(_load),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["number"] = _number
    return env


def highlight(code: str) -> Markup:
    """Python code as highlighted HTML; Pygments escapes every character of the code itself."""
    html = pygments_highlight(
        code, PythonLexer(), HtmlFormatter(linenos="table", cssclass="code", wrapcode=True)
    )
    return Markup(html)  # noqa: S704 - Pygments' output, with the code escaped by Pygments


def page(
    request: Request, template: str, caller: Caller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """The page `template` for `caller` (None: signed out), with the CSRF token of its forms."""
    cookie = request.cookies.get(SESSION_COOKIE) or ""
    html = (
        environment()
        .get_template(template)
        .render(
            caller=caller.identity if caller is not None else None,
            csrf_field=CSRF_FIELD,
            csrf=csrf_token(cookie) if cookie else "",
            path=request.url.path,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})
