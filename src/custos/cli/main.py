"""The `custos` command: the Typer root, its command groups, and how a failed command ends.

`app` is the console script. Calling it runs the command line and turns any failure into one line
`error: <message>` on stderr and a non-zero exit (1, or 2 for a malformed command line), with no traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from importlib.metadata import version
from typing import Annotated, Any, NoReturn

import typer
import typer.core
import typer.main

from custos.cli.plain import echo

EXIT_USER_ERROR = 1
EXIT_USAGE = 2


class CustosCli(typer.Typer):
    """A Typer app whose call never ends in a traceback."""

    def __call__(self, args: Sequence[str] | None = None, prog_name: str = "custos", **_: Any) -> NoReturn:
        command = typer.main.get_command(self)
        try:
            code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        except typer.Abort:
            echo("error: aborted", err=True)
            sys.exit(EXIT_USER_ERROR)
        except Exception as exc:
            from custos.cli.failures import is_click_error

            if is_click_error(exc, "NoArgsIsHelpError"):
                # Typer has already printed the help this error stands for.
                sys.exit(EXIT_USAGE)
            _fail(exc, EXIT_USAGE if is_click_error(exc, "UsageError") else EXIT_USER_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: BaseException, code: int) -> NoReturn:
    # Imported on failure only: it names httpx, YAML and pydantic errors.
    from custos.cli.failures import describe

    if os.environ.get("CUSTOS_DEBUG"):
        traceback.print_exception(exc)
    echo(f"error: {describe(exc)}", err=True)
    sys.exit(code)


# Each command and command group, in the order `custos --help` lists them: the module that defines it
# and the function or Typer app there. A module is imported when its command is looked up (to run it,
# or by --help), so that `custos gateway start` loads neither the SDK, Rich tables nor provisioning.
COMMANDS: dict[str, tuple[str, str]] = {
    "whoami": ("custos.cli.whoami", "whoami_command"),
    "demo": ("custos.cli.demo", "demo_command"),
    "dev": ("custos.cli.dev", "dev_command"),
    "provision": ("custos.cli.provision", "app"),
    "orchestrator": ("custos.cli.orchestrator", "app"),
    "gateway": ("custos.cli.gateway", "app"),
    "dataset": ("custos.cli.dataset", "app"),
    "site": ("custos.cli.site", "app"),
    "policy": ("custos.cli.policy", "app"),
    "spec": ("custos.cli.spec", "app"),
    "job": ("custos.cli.job", "app"),
    "audit": ("custos.cli.audit", "app"),
    "password": ("custos.cli.password", "app"),
    "token": ("custos.cli.token", "app"),
    "release": ("custos.cli.release", "app"),
    "model": ("custos.cli.model", "app"),
    "keybroker": ("custos.cli.keybroker", "app"),
    "budget": ("custos.cli.budget", "app"),
    "code": ("custos.cli.code", "app"),
}


def load_command(name: str, rich_markup_mode: Any = "rich") -> Any:
    """The Click command `name` of COMMANDS, built as `app.command(name)` or `app.add_typer(...,
    name=name)` on the root would build it."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=rich_markup_mode, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyCommands(MutableMapping[str, Any]):
    """The root's commands by name: every name of COMMANDS is there, and is loaded when first read."""

    def __init__(self, loaded: Mapping[str, Any], rich_markup_mode: Any) -> None:
        self._loaded = dict(loaded)
        self._rich_markup_mode = rich_markup_mode

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded[name] = load_command(name, self._rich_markup_mode)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(name not in COMMANDS for name in self._loaded)


class LazyRoot(typer.core.TyperGroup):
    """The root command, whose commands are loaded on first use (COMMANDS)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.rich_markup_mode)


app = CustosCli(
    name="custos",
    cls=LazyRoot,
    help="Custos: compute-to-data. Run federated computations on data that never leaves its custodian.",
    no_args_is_help=True,
    # `custos --install-completion` (bash, zsh, fish, PowerShell) and `--show-completion`.
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(wanted: bool) -> None:
    if wanted:
        echo(f"custos {version('custos')}")
        raise typer.Exit()


@app.callback()
def root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print Custos's version and exit."
        ),
    ] = False,
) -> None:
    """Custos: compute-to-data. Run federated computations on data that never leaves its custodian."""


def main() -> NoReturn:
    app()
