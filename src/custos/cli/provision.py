"""`custos provision PROJECT.yaml -o OUT`: write a project's root CA and every participant's startup kit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from custos.pki.kit import load_kit
from custos.pki.project import load_project
from custos.pki.provision import CA_CERT_FILE, CA_FOLDER, CA_KEY_FILE, provision


def provision_command(
    project: Annotated[
        Path,
        typer.Argument(help="The project file (YAML): name, orchestrator, participants.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o", "--out", help="A new or empty folder to write the CA and the kits into.", show_default=False
        ),
    ],
) -> None:
    """Create the project's root CA and one startup kit per participant (orchestrator, gateways, users)."""
    spec = load_project(project)
    kits = provision(spec, out)
    # One line per kit whatever the terminal width, so the output can be read by scripts too.
    console = Console(highlight=False, soft_wrap=True)
    for folder in kits:
        identity = load_kit(folder).identity
        console.print(
            Text(f"wrote kit {folder}  ({identity.role.value} {identity.name}, org {identity.org})")
        )
    ca = out / CA_FOLDER
    console.print(Text(f"wrote root CA {ca / CA_CERT_FILE}"))
    console.print(
        Text(
            f"keep {ca / CA_KEY_FILE} offline and private: it signs every certificate of project {spec.name}",
            style="yellow",
        )
    )
