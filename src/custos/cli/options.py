"""Options every user command shares (`--kit`, `--json`), and parsing of what users type into them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custos.core.errors import InvalidInput

if TYPE_CHECKING:
    from custos.sdk import Client

MAX_PARAMS_BYTES = 1024 * 1024

KitOption = Annotated[
    Path,
    typer.Option(
        "--kit",
        envvar="CUSTOS_KIT",
        help="Your startup kit folder, as written by `custos provision`.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")]


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormatChoice(StrEnum):
    text = "text"
    json = "json"


LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level", help="Least severe log records written (debug adds migrations and long polls)."
    ),
]
LogFormatOption = Annotated[
    LogFormatChoice,
    typer.Option("--log-format", help="text lines, or one JSON object a line for log shippers."),
]


def split_values(values: Iterable[str]) -> list[str]:
    """`--column age --column sex,bmi` -> [age, sex, bmi]: repeated and comma-separated both work."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{option} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            """write a JSON object, e.g. '{"columns": ["age"]}'"""
        ) from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{option} must be a JSON object ({{...}}), not {type(value).__name__}")
    return value


def read_params(params: str | None, params_file: Path | None) -> dict[str, Any]:
    """Job parameters from `--params JSON` or `--params-file PATH` (one of them, or neither for {})."""
    if params is not None and params_file is not None:
        raise InvalidInput("give either --params or --params-file, not both")
    if params_file is not None:
        if not params_file.is_file():
            raise InvalidInput(f"--params-file {params_file} does not exist or is not a file")
        if params_file.stat().st_size > MAX_PARAMS_BYTES:
            raise InvalidInput(f"--params-file {params_file} is larger than {MAX_PARAMS_BYTES} bytes")
        return parse_json_object(params_file.read_text(encoding="utf-8"), f"--params-file {params_file}")
    if params is not None:
        return parse_json_object(params, "--params")
    return {}


def open_client(kit: Path) -> Client:
    # Imported here: `custos orchestrator start` and `custos gateway start` never open a client.
    from custos.sdk import Client

    return Client.from_kit(kit)
