"""`custos dataset list|show|mock`: what datasets are published, their schema, and mock rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import datasets_table, frame_table, print_json, schema_table, stdout
from custos.core.refs import parse_dataset_ref

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
        typer.echo("no dataset is published yet: gateways publish theirs when they start")
    else:
        stdout().print(datasets_table(datasets))


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
    if dataset.description:
        console.print(dataset.description, markup=False)
    if dataset.policy_yaml:
        console.print("\n[bold]policy[/bold]")
        console.print(dataset.policy_yaml.rstrip(), markup=False)


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
        typer.echo(f"wrote {len(frame)} mock rows to {csv}", err=True)
    if json:
        print(frame.head(rows).to_json(orient="records", indent=2))
    elif csv is None:
        stdout().print(
            frame_table(f"{ref} (mock, {min(rows, len(frame))} of {len(frame)} rows)", frame.head(rows))
        )
