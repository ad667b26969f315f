"""Plain output every command may need, light to import: a line of inert text, and the API's JSON.
Rich tables are in `custos.cli.output`, which re-exports these two."""

from __future__ import annotations

import json
from collections.abc import Sequence

import typer
from pydantic import BaseModel

from custos.core.inert import inert


def echo(text: str, *, err: bool = False) -> None:
    """Print `text`, which may quote someone else's, as a line (or lines) of plain text, inert."""
    typer.echo(inert(text), err=err)


def print_json(value: BaseModel | Sequence[BaseModel]) -> None:
    data: object
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in value]
    print(json.dumps(data, indent=2))
