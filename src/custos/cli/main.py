"""The `custos` command: the Typer root, its command groups, and how a failed command ends.

`app` is the console script. Calling it runs the command line and turns any failure into one line
`error: <message>` on stderr and a non-zero exit (1, or 2 for a malformed command line), with no traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import version
from typing import Annotated, Any, NoReturn

import typer

from custos.cli import (
    audit,
    dataset,
    gateway,
    job,
    keybroker,
    orchestrator,
    password,
    policy,
    release,
    site,
    spec,
    token,
)
from custos.cli.budget import app as budget_app
from custos.cli.code import app as code_app
from custos.cli.demo import demo_command
from custos.cli.dev import dev_command
from custos.cli.failures import describe, is_click_error
from custos.cli.model import app as model_app
from custos.cli.output import echo
from custos.cli.provision import app as provision_app
from custos.cli.whoami import whoami_command

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
            if is_click_error(exc, "NoArgsIsHelpError"):
                # Typer has already printed the help this error stands for.
                sys.exit(EXIT_USAGE)
            _fail(exc, EXIT_USAGE if is_click_error(exc, "UsageError") else EXIT_USER_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: BaseException, code: int) -> NoReturn:
    if os.environ.get("CUSTOS_DEBUG"):
        traceback.print_exception(exc)
    echo(f"error: {describe(exc)}", err=True)
    sys.exit(code)


app = CustosCli(
    name="custos",
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


app.add_typer(provision_app, name="provision")
app.add_typer(orchestrator.app, name="orchestrator")
app.add_typer(gateway.app, name="gateway")
app.add_typer(dataset.app, name="dataset")
app.add_typer(site.app, name="site")
app.add_typer(policy.app, name="policy")
app.add_typer(spec.app, name="spec")
app.add_typer(job.app, name="job")
app.add_typer(audit.app, name="audit")
app.add_typer(password.app, name="password")
app.add_typer(token.app, name="token")
app.add_typer(release.app, name="release")
app.add_typer(model_app, name="model")
app.add_typer(keybroker.app, name="keybroker")
app.add_typer(budget_app, name="budget")
app.add_typer(code_app, name="code")
app.command("whoami")(whoami_command)
app.command("demo")(demo_command)
app.command("dev")(dev_command)


def main() -> NoReturn:
    app()
