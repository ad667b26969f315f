"""`custos whoami`: sign in with a kit and show who the orchestrator says you are."""

from __future__ import annotations

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import me_table, print_json, stdout


def whoami_command(kit: KitOption, json: JsonOption = False) -> None:
    """Sign in with your kit and show your name, org and role as the orchestrator verified them."""
    with open_client(kit) as client:
        me = client.me()
    if json:
        print_json(me)
    else:
        stdout().print(me_table(me))
