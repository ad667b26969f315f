"""`custos demo`: three hospitals, one university, one federated statistics study, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Folder for kits, data, state and logs; wiped first.")
    ] = Path(".demo"),
    rows: Annotated[int, typer.Option("--rows", min=100, help="Synthetic patients per site.")] = 100_000,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="Leave the deployment up after the study, with a password for every user, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Provision a project, start an orchestrator and three gateways, and run a study as a researcher;
    end with the portal's address (and, with --keep-running, leave it up with passwords printed)."""
    from custos.demo import run_demo

    run_demo(workdir, rows=rows, keep_running=keep_running)
