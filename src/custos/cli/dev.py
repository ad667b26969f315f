"""`custos dev`: `custos.launch()` from the shell. Starts (or brings back) a developer's deployment,
prints its URL, portal, users and how to sign in, and stays up until Ctrl-C or SIGTERM, which land
it cleanly (exit 0, no traceback)."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from custos.cli.output import echo
from custos.local.launch import DEFAULT_FOLDER, MAX_GATEWAYS, Deployment, launch


class _Stop(Exception):
    """SIGTERM, turned into an exception so the deployment lands as on Ctrl-C."""


def dev_command(
    folder: Annotated[
        Path, typer.Option("--folder", help="The deployment's folder; an existing one is brought back.")
    ] = DEFAULT_FOLDER,
    gateways: Annotated[
        int, typer.Option("--gateways", min=1, max=MAX_GATEWAYS, help="Gateways (sites) to start.")
    ] = 3,
    rows: Annotated[int, typer.Option("--rows", min=100, help="Synthetic patients per site.")] = 1000,
) -> None:
    """Start a deployment on loopback (an orchestrator and N gateways with synthetic data) and keep it
    up until Ctrl-C; the same command again brings the same deployment back."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, stop)
    # A shell starts a background job (`custos dev &`) with SIGINT ignored; `kill -INT PID` must
    # still land the deployment as Ctrl-C does.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    deployment: Deployment | None = None
    try:
        deployment = launch(gateways, folder=folder, rows=rows)
        _print_welcome(deployment, _set_passwords(deployment))
        while True:
            signal.pause()
    except (KeyboardInterrupt, _Stop):
        echo("stopping the gateways and the orchestrator", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if deployment is not None:
            deployment.land()
    echo(f"stopped; `custos dev --folder {folder}` brings the same deployment back", err=True)


def _set_passwords(deployment: Deployment) -> dict[str, str]:
    """A fresh portal password for every user (the portal asks for 12 characters or more)."""
    passwords = {user.name: secrets.token_urlsafe(12) for user in deployment.users}
    for name, password in passwords.items():
        deployment.client(name).set_password(password)
    return passwords


def _print_welcome(deployment: Deployment, passwords: dict[str, str]) -> None:
    how = "brought back" if deployment.reloaded else "started"
    folder = deployment.folder
    kits = folder / "kits"
    echo(f"Custos {how}: an orchestrator and {len(deployment.cluster.gateways)} gateway(s) in {folder}")
    echo(f"  orchestrator  {deployment.url}")
    echo(f"  portal        {deployment.portal_url}")
    echo(f"                (the browser warns: its certificate is signed by {kits}/alice/rootCA.pem)")
    echo(f"  datasets      {', '.join(deployment.datasets)}")
    echo(f"  logs          {deployment.cluster.logs_dir}")
    echo("  users (portal password, new at each start):")
    for user in deployment.users:
        echo(f"    {user.name:<9} {passwords[user.name]}   {user.role} of {user.org}")
    echo("sign in:")
    echo(f"  shell   export CUSTOS_KIT={kits}/alice; custos whoami")
    echo(
        f"  Python  custos.launch({len(deployment.cluster.gateways)}, folder={str(folder)!r}).client('alice')"
    )
    echo("Ctrl-C stops the deployment.")
