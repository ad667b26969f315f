"""`custos dataset list|search|show|mock`: the published datasets, their catalogue, schema and mock rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import echo, print_json, stdout
from custos.core.refs import parse_dataset_ref
from custos.core.wire import DatasetInfo
from custos.sdk import Dataset
from custos.sdk.tables import add_row, datasets_table, frame_table, schema_table, shown

app = typer.Typer(help="Browse published datasets: metadata, schema and mock data.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(help="gateway/dataset, e.g. site-a/patients", show_default=False)]


@app.command("list")
def list_datasets(kit: KitOption, json: JsonOption = False) -> None:
    """List every dataset the gateways have published."""
    with open_client(kit) as client:
        datasets = client.datasets()
    if json:
        print_json(datasets)
    elif not datasets:
        echo("no dataset is published yet: gateways publish theirs when they start")
    else:
        stdout().print(datasets_table(datasets))


@app.command("search")
def search_datasets(
    text: Annotated[
        str, typer.Argument(help="Words to find, e.g. 'diabetes' or 'age years'.", show_default=False)
    ],
    kit: KitOption,
    json: JsonOption = False,
) -> None:
    """Find datasets by name, description, licence, owner org, column names or column notes."""
    with open_client(kit) as client:
        found = client.search_datasets(text)
    if json:
        print_json(found)
    elif not found:
        echo(f"no dataset matches {text!r}")
    else:
        stdout().print(search_table(text, found))


def search_table(text: str, found: Sequence[DatasetInfo]) -> Table:
    title = shown(f"datasets matching {text!r}, best first")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("dataset", "owner", "rows (≈)", "description", "licence"):
        table.add_column(column, justify="right" if column.startswith("rows") else "left")
    for info in found:
        ref = f"{info.gateway}/{info.name}"
        licence = info.dataset_schema.licence
        add_row(table, ref, info.owner_org, f"{info.row_count:,}", info.description, licence)
    return table


def column_notes_table(dataset: Dataset) -> Table | None:
    """The columns the custodian described, with their units; None when none is described."""
    described = [c for c in dataset.schema.columns if c.description or c.unit]
    if not described:
        return None
    table = Table(title="column notes", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("column", "unit", "description"):
        table.add_column(column)
    for c in described:
        add_row(table, c.name, c.unit, c.description)
    return table


@app.command("show")
def show_dataset(ref: RefArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Show one dataset's schema, size and policy."""
    parse_dataset_ref(ref)
    with open_client(kit) as client:
        dataset = client.dataset(ref)
    if json:
        print_json(dataset.info)
        return
    console = stdout()
    console.print(schema_table(dataset))
    notes = column_notes_table(dataset)
    if notes is not None:
        console.print(notes)
    if dataset.description:
        console.print(shown(dataset.description))
    if dataset.owner_org:
        console.print(shown(f"owner: {dataset.owner_org}"))
    if dataset.licence:
        console.print(shown(f"licence: {dataset.licence}"))
    if dataset.policy_yaml:
        info = dataset.info
        signed = f" (signed by {info.policy_signer}, issued {info.policy_issued_at:%Y-%m-%d %H:%M} UTC)"
        console.print(shown("\npolicy", style="bold") + shown(signed if info.policy_issued_at else ""))
        console.print(shown(dataset.policy_yaml.rstrip()))


@app.command("mock")
def mock_dataset(
    ref: RefArgument,
    kit: KitOption,
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many mock rows to print.")] = 10,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the whole mock table to this CSV file.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print mock rows: the dataset's schema with plausible values and no real row."""
    parse_dataset_ref(ref)
    with open_client(kit) as client:
        frame = client.mock(ref)
    if csv is not None:
        frame.to_csv(csv, index=False)
        echo(f"wrote {len(frame)} mock rows to {csv}", err=True)
    if json:
        echo(frame.head(rows).to_json(orient="records", indent=2))
    elif csv is None:
        stdout().print(
            frame_table(f"{ref} (mock, {min(rows, len(frame))} of {len(frame)} rows)", frame.head(rows))
        )
