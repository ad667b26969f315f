"""Rich tables of what the SDK returns, for a terminal: the dataset list, a dataset's schema, result
sections and data frames. The CLI and the demo print these.

Names, descriptions, reasons and results come from other people: every string is shown inert
(`custos.core.inert`: control, escape and bidi characters as visible escapes) and never read as Rich
markup. `shown` and `add_row` are the two ways text gets into a table or onto a console here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from custos.core.inert import inert
from custos.core.wire import DatasetInfo, SitePublic
from custos.sdk.dataset import Dataset
from custos.sdk.result import Section, format_cell

if TYPE_CHECKING:
    import pandas as pd


def shown(text: str, style: str = "") -> Text:
    """`text` to print or put in a table: inert, and never read as Rich markup."""
    return Text(inert(text), style=style)


def _cell(value: str | Text) -> Text:
    if isinstance(value, str):
        return shown(value)
    safe = inert(value.plain)
    # A styled cell keeps its style; only hostile text loses its spans.
    return value if safe == value.plain else Text(safe, style=value.style)


def add_row(table: Table, *cells: str | Text, style: str | None = None) -> None:
    """Add a row whose cells, strings or Rich Text, are shown inert and never read as markup."""
    table.add_row(*(_cell(c) for c in cells), style=style)


def datasets_table(datasets: Sequence[DatasetInfo]) -> Table:
    table = Table(title="datasets", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("dataset", "rows (≈)", "columns", "description", "site"):
        table.add_column(column, justify="right" if column.startswith("rows") else "left")
    for info in datasets:
        names = ", ".join(info.dataset_schema.names)
        since = info.site_offline_since
        site = "online" if since is None else f"offline since {since:%Y-%m-%d %H:%M} UTC"
        add_row(table, f"{info.gateway}/{info.name}", f"{info.row_count:,}", names, info.description, site)
    return table


def sites_table(sites: Sequence[SitePublic]) -> Table:
    table = Table(title="sites", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("site", "org", "version", "last seen (UTC)", "status", "tasks in flight"):
        table.add_column(column, justify="right" if column == "tasks in flight" else "left", no_wrap=True)
    for site in sites:
        add_row(
            table,
            site.name,
            site.org,
            site.version or "-",
            f"{site.last_seen:%Y-%m-%d %H:%M:%S}",
            "online" if site.online else "offline",
            str(site.tasks_in_flight),
        )
    return table


def schema_table(dataset: Dataset) -> Table:
    title = shown(f"{dataset.ref} — about {dataset.row_count:,} rows")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("column", "type", "kind", "nullable", "min", "max", "categories"):
        table.add_column(column)
    for c in dataset.schema.columns:
        add_row(
            table,
            c.name,
            c.type,
            c.kind,
            format_cell(c.nullable),
            format_cell(c.min),
            format_cell(c.max),
            ", ".join(c.categories or []),
        )
    return table


def section_table(section: Section) -> RenderableType:
    """One result table. Suppressed rows are dimmed, so a reader sees at once what was withheld."""
    if not section.rows:
        return shown(f"{section.title}: none", style="dim")
    table = Table(title=shown(section.title), box=box.SIMPLE_HEAD, title_justify="left")
    for column in section.columns:
        table.add_column(shown(column), overflow="fold")
    suppressed = section.columns.index("suppressed") if "suppressed" in section.columns else None
    for row in section.rows:
        dim = suppressed is not None and row[suppressed] is True
        add_row(table, *(format_cell(v) for v in row), style="dim" if dim else None)
    return table


def frame_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=shown(title), box=box.SIMPLE_HEAD, title_justify="left")
    for column in frame.columns:
        table.add_column(shown(str(column)))
    # to_dict gives Python scalars, which format_cell knows how to show.
    for record in frame.to_dict(orient="records"):
        add_row(table, *(format_cell(record[c]) for c in frame.columns))
    return table
