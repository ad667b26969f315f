"""`custos password set`: the password you sign in to the web portal with.

Setting one needs your kit: the orchestrator accepts a new password only from a caller that has just
proved it holds the kit's key, never from a browser session or an API token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli.options import KitOption, open_client
from custos.cli.output import echo
from custos.core.errors import InvalidInput

app = typer.Typer(help="Set the password you sign in to the web portal with.", no_args_is_help=True)

MIN_CHARS, MAX_CHARS = 12, 1024
MAX_FILE_BYTES = 8 * 1024


def check_password(password: str, source: str) -> str:
    """The password if its length is accepted; the message never contains the password."""
    if not MIN_CHARS <= len(password) <= MAX_CHARS:
        raise InvalidInput(
            f"{source}: a password must have {MIN_CHARS} to {MAX_CHARS} characters, not {len(password)}"
        )
    return password


def read_password_file(path: Path) -> str:
    """The password in `path`: one line, whose line ending belongs to the file, not the password."""
    option = f"--password-file {path}"
    if not path.is_file():
        raise InvalidInput(f"{option} does not exist or is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{option} is larger than {MAX_FILE_BYTES} bytes; it should hold one line")
    text = path.read_text(encoding="utf-8")
    password = text.removesuffix("\n").removesuffix("\r")
    if "\n" in password or "\r" in password:
        raise InvalidInput(f"{option} holds more than one line; put the password alone on one line")
    return check_password(password, option)


def prompt_password() -> str:
    while True:
        password: str = typer.prompt(
            "New password", hide_input=True, confirmation_prompt="Repeat the new password"
        )
        try:
            return check_password(password, "the password")
        except InvalidInput as exc:
            echo(f"{exc}; try again", err=True)


@app.command("set")
def set_password(
    kit: KitOption,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help="Read the password from this file (one line) instead of asking for it twice.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Set or change your portal password, signed in with your kit. Your open browser sessions end."""
    password = read_password_file(password_file) if password_file is not None else prompt_password()
    with open_client(kit) as client:
        me = client.me()
        client.set_password(password)
        url = client.url
    echo(f"password set for {me.name} ({me.org}); sign in to the portal at {url} with it")
    echo("browser sessions you had open have been signed out")
