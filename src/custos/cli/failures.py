"""What the CLI says when a command fails: one line on stderr, never a traceback.

Errors a user can cause (bad input, a missing file, a refusal from the orchestrator) already carry a
sentence that says what was wrong; this module only words the ones that come from libraries. A message
can quote someone else's text (a reason, a name, a file's line): it is printed inert.
"""

from __future__ import annotations

import json

import httpx
import yaml
from pydantic import ValidationError

from custos.core.errors import CustosError
from custos.core.inert import inert


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    name = getattr(mark, "name", None)
    where = f" in {name}" if name and not str(name).startswith("<") else ""
    if mark is not None:
        where += f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None)
    return f"malformed YAML{where}" + (f": {problem}" if problem else "")


def is_click_error(exc: BaseException, name: str) -> bool:
    """Whether `exc` is Click's exception `name` (or a subclass). By name, because Typer ships its own
    copy of Click, whose classes are not those of the `click` package."""
    return any(kind.__name__ == name for kind in type(exc).__mro__)


def _click_message(exc: BaseException) -> str:
    format_message = getattr(exc, "format_message", None)
    message = str(format_message()) if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    command_path = getattr(ctx, "command_path", None)
    if is_click_error(exc, "UsageError") and command_path:
        message += f" (see '{command_path} --help')"
    return message


def describe(exc: BaseException) -> str:
    """The message for a failed command, without the `error: ` prefix: one line, inert."""
    match exc:
        case CustosError():
            message = str(exc)
        case _ if is_click_error(exc, "ClickException"):
            message = _click_message(exc)
        case FileNotFoundError():
            message = f"{exc.filename or exc}: no such file or folder"
        case PermissionError():
            message = f"{exc.filename or exc}: permission denied"
        case OSError() if exc.filename is not None:
            message = f"{exc.filename}: {exc.strerror or exc}"
        case yaml.YAMLError():
            message = _yaml_message(exc)
        case ValidationError():
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or exc.title
            message = f"{field}: {first['msg']}"
        case json.JSONDecodeError():
            message = f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        case httpx.HTTPError():
            message = f"HTTP request failed: {exc}"
        case _:
            message = f"unexpected {type(exc).__name__}: {exc} (set CUSTOS_DEBUG=1 to see the traceback)"
    return inert(one_line(message), multiline=False) or type(exc).__name__
