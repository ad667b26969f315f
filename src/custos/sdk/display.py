"""Small HTML tables for notebooks (`_repr_html_`): every value is escaped, nothing is styled."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def fields_html(title: str, fields: Iterable[tuple[str, object]]) -> str:
    """A bold title and a two-column table of the fields whose value is not empty."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in fields
        if value not in (None, "")
    )
    return f"<p><b>{html.escape(title)}</b></p><table>{rows}</table>"


def table_html(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A table with a header row; None shows as an empty cell."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
