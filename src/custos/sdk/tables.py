"""Rich tables of what the SDK returns, for a terminal: the dataset list, a dataset's schema, result
sections and data frames. The CLI and the demo print these.

Every string is shown as typed: names, descriptions and reasons come from other people and must never be
read as Rich markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from custos.core.wire import DatasetInfo
from custos.sdk.dataset import Dataset
from custos.sdk.result import Section, format_cell

if TYPE_CHECKING:
    import pandas as pd


def add_row(table: Table, *cells: str | Text, style: str | None = None) -> None:
    """Add a row whose strings are shown as typed: names and reasons must never be read as Rich markup."""
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells), style=style)


def datasets_table(datasets: Sequence[DatasetInfo]) -> Table:
    table = Table(title="datasets", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("dataset", "rows (≈)", "columns", "description"):
        table.add_column(column, justify="right" if column.startswith("rows") else "left")
    for info in datasets:
        names = ", ".join(info.dataset_schema.names)
        add_row(table, f"{info.gateway}/{info.name}", f"{info.row_count:,}", names, info.description)
    return table


def schema_table(dataset: Dataset) -> Table:
    title = Text(f"{dataset.ref} — about {dataset.row_count:,} rows")
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
        return Text(f"{section.title}: none", style="dim")
    table = Table(title=Text(section.title), box=box.SIMPLE_HEAD, title_justify="left")
    for column in section.columns:
        table.add_column(column, overflow="fold")
    suppressed = section.columns.index("suppressed") if "suppressed" in section.columns else None
    for row in section.rows:
        dim = suppressed is not None and row[suppressed] is True
        add_row(table, *(format_cell(v) for v in row), style="dim" if dim else None)
    return table


def frame_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column))
    # to_dict gives Python scalars, which format_cell knows how to show.
    for record in frame.to_dict(orient="records"):
        add_row(table, *(format_cell(record[c]) for c in frame.columns))
    return table
