"""`custos site list`: each gateway's org, release, last sighting, online or offline, tasks in flight."""

from __future__ import annotations

import typer

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import echo, print_json, stdout
from custos.sdk.tables import sites_table

app = typer.Typer(help="See the sites' gateways: online or offline, and what they run.", no_args_is_help=True)


@app.command("list")
def list_sites(kit: KitOption, json: JsonOption = False) -> None:
    """List every gateway that has signed in, and whether it is online."""
    with open_client(kit) as client:
        sites = client.sites()
    if json:
        print_json(sites)
    elif not sites:
        echo("no gateway has signed in yet")
    else:
        stdout().print(sites_table(sites))
        echo(f"offline: not seen for {sites[0].offline_after_s:g} s (one long poll and a margin)")
