"""`custos gateway start`: run a site's gateway agent in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.core.errors import InvalidInput

app = typer.Typer(help="Run a gateway next to a site's data.", no_args_is_help=True)


@app.command("start")
def start_gateway(
    kit: Annotated[Path, typer.Option("--kit", help="The gateway's startup kit folder.", show_default=False)],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="The site's DATASETS.yaml: datasets and their policies.", show_default=False
        ),
    ],
    state: Annotated[
        Path | None, typer.Option("--state", help="Folder for the journal, ledger and audit trail.")
    ] = None,
) -> None:
    """Publish the site's datasets and run the tasks its policies allow. Opens no listening port."""
    if not data.is_file():
        raise InvalidInput(f"--data {data} does not exist or is not a file; pass the site's DATASETS.yaml")
    # Imported here so that `custos --help` and the researcher commands do not load the agent's stack.
    from custos.gateway.agent import run

    run(kit, data, state_dir=state)
