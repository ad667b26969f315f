"""Small HTML tables for notebooks (`_repr_html_`): every value is made inert (`custos.core.inert`: a
bidi override would reorder the page as it does a terminal) and HTML-escaped; nothing is styled."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from custos.core.inert import inert


def text_html(value: object) -> str:
    """One value as HTML text: None as nothing, hidden characters as escapes, markup escaped."""
    return html.escape(inert("" if value is None else str(value)))


def fields_html(title: str, fields: Iterable[tuple[str, object]]) -> str:
    """A bold title and a two-column table of the fields whose value is not empty."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{text_html(name)}</th><td>{text_html(value)}</td></tr>"
        for name, value in fields
        if value not in (None, "")
    )
    return f"<p><b>{text_html(title)}</b></p><table>{rows}</table>"


def table_html(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A table with a header row; None shows as an empty cell."""
    head = "".join(f"<th>{text_html(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{text_html(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
