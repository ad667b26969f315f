"""`custos token create|list|revoke`: API tokens, with which the SDK signs in without a kit.

client = Client.from_token("https://orchestrator:8443", token, root_ca=Path("rootCA.pem"))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import echo, print_json, stdout
from custos.core.wire import ApiTokenPublic
from custos.sdk.tables import add_row

app = typer.Typer(help="API tokens for the Python SDK: create, list and revoke.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "never"


def _day(value: datetime) -> str:
    return f"{value:%Y-%m-%d}"


def tokens_table(tokens: Sequence[ApiTokenPublic]) -> Table:
    table = Table(title="API tokens (times in UTC)", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    for column in ("created", "expires", "last used"):
        table.add_column(column, no_wrap=True)
    for t in tokens:
        last_used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at is not None else "never"
        add_row(table, t.id, t.name, _day(t.created_at), _day(t.expires_at), last_used)
    return table


@app.command("create")
def create_token(
    kit: KitOption,
    name: Annotated[
        str, typer.Option("--name", help="A label to know the token by, e.g. laptop.", show_default=False)
    ],
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Days until it expires.")] = 90,
    json: JsonOption = False,
) -> None:
    """Create an API token for the SDK. It is printed once and never again."""
    with open_client(kit) as client:
        token = client.create_token(name, days)
    if json:
        print_json(token)
        return
    echo(f"API token {token.id} ({token.name}), valid until {_when(token.expires_at)}:")
    echo(token.token)
    echo("It will not be shown again: store it now, e.g. in a password manager.")


@app.command("list")
def list_tokens(kit: KitOption, json: JsonOption = False) -> None:
    """List your API tokens (never the tokens themselves)."""
    with open_client(kit) as client:
        tokens = client.tokens()
    if json:
        print_json(tokens)
    elif not tokens:
        echo("you have no API tokens; create one with `custos token create --kit KIT --name NAME`")
    else:
        stdout().print(tokens_table(tokens))


@app.command("revoke")
def revoke_token(
    kit: KitOption,
    token_id: Annotated[
        str, typer.Argument(help="The token's id, as `token list` shows it.", show_default=False)
    ],
) -> None:
    """Revoke one of your API tokens: it stops working at once."""
    with open_client(kit) as client:
        client.revoke_token(token_id)
    echo(f"revoked API token {token_id}")
