"""`custos spec create|activate|status|deactivate|list`: compute specs, the contracts jobs run under."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from custos.cli.options import JsonOption, KitOption, open_client, parse_json_object, split_values
from custos.cli.output import echo, print_json, spec_table, specs_table, stdout
from custos.core.errors import InvalidInput
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.wire import Resources, SpecPublic

app = typer.Typer(
    help="Create and activate compute specs: model, datasets and columns.", no_args_is_help=True
)

SpecIdArgument = Annotated[
    str, typer.Argument(help="The spec's id, as `spec create` printed it.", show_default=False)
]


def parse_resources(text: str) -> Resources:
    try:
        return Resources.model_validate(parse_json_object(text, "--resources"))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        accepted = ", ".join(Resources.model_fields)
        raise InvalidInput(f"--resources: {field}: {first['msg']} (fields: {accepted})") from exc


def _show(spec: SpecPublic, json: bool) -> None:
    if json:
        print_json(spec)
    else:
        stdout().print(spec_table(spec))


@app.command("create")
def create_spec(
    kit: KitOption,
    name: Annotated[str, typer.Option("--name", help="A name for the spec.", show_default=False)],
    model: Annotated[
        str, typer.Option("--model", help="name@version, e.g. stats@1.0.0.", show_default=False)
    ],
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset", help="gateway/dataset; repeat or separate with commas.", show_default=False
        ),
    ],
    column: Annotated[
        list[str],
        typer.Option(
            "--column", help="A column the jobs may read; repeat or separate with commas.", show_default=False
        ),
    ],
    resources: Annotated[
        str | None,
        typer.Option(
            "--resources",
            help="Sandbox limits as JSON, e.g. '{\"memory_mb\": 2048}', "
            'or a site size: \'{"template": "medium"}\'.',
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Propose a compute spec; the orchestrator checks it against every dataset's policy."""
    parse_model_ref(model)
    datasets = split_values(dataset)
    columns = split_values(column)
    for ref in datasets:
        parse_dataset_ref(ref)
    if not datasets:
        raise InvalidInput("give at least one --dataset gateway/dataset")
    if not columns:
        raise InvalidInput("give at least one --column")
    limits = parse_resources(resources) if resources else None
    with open_client(kit) as client:
        spec = client.create_spec(name, model, datasets, columns, limits)
    _show(spec, json)


@app.command("activate")
def activate_spec(
    spec_id: SpecIdArgument,
    kit: KitOption,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until every gateway has accepted it.")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait.")] = 60,
    json: JsonOption = False,
) -> None:
    """Activate a spec: each gateway it names validates it against its own policy and prepares."""
    with open_client(kit) as client:
        spec = client.activate_spec(spec_id, wait=wait, timeout=timeout)
    _show(spec, json)


@app.command("status")
def spec_status(spec_id: SpecIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Show a spec's state, and the reason if it failed."""
    with open_client(kit) as client:
        spec = client.spec(spec_id)
    _show(spec, json)


@app.command("deactivate")
def deactivate_spec(spec_id: SpecIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Deactivate a spec: no new jobs run under it."""
    with open_client(kit) as client:
        spec = client.deactivate_spec(spec_id)
    _show(spec, json)


@app.command("list")
def list_specs(kit: KitOption, json: JsonOption = False) -> None:
    """List the compute specs you can see."""
    with open_client(kit) as client:
        specs = client.specs()
    if json:
        print_json(specs)
    elif not specs:
        echo("no compute spec yet: create one with `custos spec create`")
    else:
        stdout().print(specs_table(specs))
