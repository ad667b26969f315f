"""`custos code submit|list|show|approve|deny|run`: reviewed custom code (a function, or a package
folder with `custos-model.toml`), a thin layer over the SDK."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table

from custos.cli.options import JsonOption, KitOption, open_client, read_params
from custos.cli.output import echo, key_value_table, print_json, stdout
from custos.computations.custom.code_package import verify_code_package
from custos.computations.custom.files import FILE_TYPES, file_output
from custos.computations.custom.mock_run import summary
from custos.core.errors import InvalidInput
from custos.core.inert import hidden_characters, inert
from custos.core.wire import MAX_CODE_CHARS, CodeRequestDetail, CodeRequestPublic, MockOutput, MockRun
from custos.sdk.result import Section
from custos.sdk.tables import add_row, section_table, shown

app = typer.Typer(
    help="Custom code: submit a function or a package, review it (custodians), run it once approved.",
    no_args_is_help=True,
)

RequestIdArgument = Annotated[
    str, typer.Argument(help="The code request's id, as `code list` printed it.", show_default=False)
]


def _read_source(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist or is not a file (nor a package folder)")
    if path.stat().st_size > MAX_CODE_CHARS:
        raise InvalidInput(f"{path} is larger than {MAX_CODE_CHARS} bytes")
    return path.read_text(encoding="utf-8")


def requests_table(requests: Sequence[CodeRequestPublic]) -> Table:
    table = Table(title="code requests", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("id", "state", "function", "author", "datasets", "digest"):
        table.add_column(column, no_wrap=column in ("id", "digest"))
    for r in requests:
        add_row(
            table, r.id, r.state, r.function, f"{r.author} ({r.org})", ", ".join(r.datasets), r.digest[:16]
        )
    return table


def source_view(source: str, name: str | None = None) -> list[RenderableType]:
    """A source as a reviewer reads it: every line whole (wrapped, never cut at the terminal's edge),
    hidden characters as visible escapes, and a warning above it that counts them."""
    views: list[RenderableType] = []
    if name is not None:
        views.append(shown(f"── {name}"))
    hidden = hidden_characters(source)
    if hidden:
        views.append(
            shown(
                f"warning: the source holds {hidden} hidden character{'s' if hidden > 1 else ''} "
                "(controls, escape sequences, bidi or invisible format characters), shown below as "
                "escapes such as \\x1b or \\u202e",
                style="bold red",
            )
        )
    views.append(Syntax(inert(source), "python", line_numbers=True, word_wrap=True))
    return views


MOCK_RUN_LABEL = "mock run (from the author's machine, not verified)"


def mock_run_view(run: MockRun | None) -> list[RenderableType]:
    """The author's mock run as a reviewer reads it: each dataset's output (a table, a JSON value's
    text, a file described) or its error, every string inert, under a label that says whose word it is."""
    if run is None:
        return [shown(f"── {MOCK_RUN_LABEL}: no mock run was attached", style="dim")]
    views: list[RenderableType] = []
    for output in run.outputs:
        views.append(shown(f"── {MOCK_RUN_LABEL} on {output.dataset}: {summary(output)}", style="bold"))
        views.append(_mock_output_view(output))
    return views


def _mock_output_view(output: MockOutput) -> RenderableType:
    if not output.ok:
        return shown(output.error, style="red")
    if output.kind == "table":
        return section_table(Section("output", list(output.columns), [list(r) for r in output.rows]))
    if output.kind == "json":
        return shown(output.text)
    return shown("the file itself is not attached", style="dim")


def _show(request: CodeRequestDetail, json: bool, *, with_source: bool = True) -> None:
    if json:
        print_json(request)
        return
    rows: list[tuple[str, str]] = [
        ("id", request.id),
        ("state", request.state),
        ("kind", request.kind),
        ("entrypoint" if request.kind == "package" else "function", request.function),
        ("digest", f"sha256:{request.digest}"),
        ("author", f"{request.author} ({request.org})"),
        ("datasets", ", ".join(request.datasets)),
        ("params", jsonlib.dumps(request.params, sort_keys=True)),
        ("output", request.output),
        ("reviewers", f"org admins of {', '.join(request.orgs)}"),
    ]
    rows += [(f"{r.decision} ({r.org})", f"{r.reviewer}: {r.reason}".rstrip(": ")) for r in request.reviews]
    if request.reason:
        rows.append(("reason", request.reason))
    console = stdout()
    console.print(key_value_table(f"code request {request.id}", rows))
    if not with_source:
        return
    if request.package_b64 is None:
        for view in source_view(request.source):
            console.print(view)
    else:
        _show_package(request)
    for view in mock_run_view(request.mock_run):
        console.print(view)


def _show_package(request: CodeRequestDetail) -> None:
    console = stdout()
    # Shown from the archive whose digest is checked here: the bytes an approval will bind.
    package = verify_code_package(request.code().archive(), request.digest)
    files = Table(title="package files", box=box.SIMPLE_HEAD, title_justify="left")
    files.add_column("path")
    files.add_column("bytes", justify="right")
    for item in package.files:
        add_row(files, item.path, str(len(item.data)))
    console.print(files)
    for path, source in package.python_sources().items():
        for view in source_view(source, path):
            console.print(view)


@app.command("submit")
def submit_code(
    file: Annotated[
        Path,
        typer.Argument(
            help="The Python file holding the function, or a package folder with custos-model.toml.",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        list[str], typer.Option("--dataset", help="gateway/dataset; repeat for several.", show_default=False)
    ],
    kit: KitOption,
    function: Annotated[
        str | None, typer.Option("--function", help="The function to call (a file; a package names its own).")
    ] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="The function's params, a JSON object.")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            help="table (a DataFrame, the default), json (a dict) or file (bytes, with --file-type); "
            "a package's manifest says.",
        ),
    ] = None,
    file_type: Annotated[
        str | None,
        typer.Option(
            "--file-type", help=f"With --output file: the file's type, one of {', '.join(FILE_TYPES)}."
        ),
    ] = None,
    mock_run: Annotated[
        bool,
        typer.Option(
            "--mock-run",
            help="First run the code here on each dataset's mock rows, and attach what it printed for the "
            "reviewers (shown as yours, unverified).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Submit FILE's exact source, or the deterministic archive of a package folder, for review by the
    custodians of the datasets."""
    declared = _output(output, file_type)
    code: str | Path = file
    if not file.is_dir():
        if function is None:
            raise InvalidInput("--function is required with a file: the name of the function to call")
        code = _read_source(file)
    with open_client(kit) as client:
        request = client.submit(
            code, dataset, read_params(params, None), function=function, output=declared, mock_run=mock_run
        )
    if json:
        print_json(request)
        return
    echo(
        f"submitted code request {request.id} ({request.function}, sha256:{request.digest[:16]}…): "
        f"pending review by the org admins of {', '.join(request.orgs)}"
    )
    for part in request.mock_run.outputs if request.mock_run else []:
        stdout().print(shown(f"  attached its mock run on {part.dataset}: {summary(part)}"))


def _output(output: str | None, file_type: str | None) -> str | None:
    """The declared output of `--output` and `--file-type` (`--output file --file-type png`: file:png)."""
    if file_type is None:
        if output == "file":
            raise InvalidInput(f"--output file needs --file-type, one of {', '.join(FILE_TYPES)}")
        return output
    if output not in (None, "file"):
        raise InvalidInput(f"--file-type goes with --output file, not --output {output}")
    if file_type not in FILE_TYPES:
        raise InvalidInput(f"--file-type {file_type} is not allowed; use one of {', '.join(FILE_TYPES)}")
    return file_output(file_type)


@app.command("list")
def list_code(kit: KitOption, json: JsonOption = False) -> None:
    """List your code requests and those you may review."""
    with open_client(kit) as client:
        requests = client.code_requests()
    if json:
        print_json(requests)
    elif not requests:
        echo("no code request")
    else:
        stdout().print(requests_table(requests))


@app.command("show")
def show_code(request_id: RequestIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Show a request's exact source, digest, parameters, datasets and decisions."""
    with open_client(kit) as client:
        request = client.code_request(request_id)
    _show(request, json)


@app.command("approve")
def approve_code(
    request_id: RequestIdArgument,
    kit: KitOption,
    reason: Annotated[str, typer.Option("--reason", help="An optional note kept with the decision.")] = "",
    json: JsonOption = False,
) -> None:
    """Approve for your org: signs the digest of the source shown with your kit's key."""
    with open_client(kit) as client:
        request = client.approve_code(request_id, reason)
    _show(request, json, with_source=False)


@app.command("deny")
def deny_code(
    request_id: RequestIdArgument,
    kit: KitOption,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, in a sentence the researcher will read.", show_default=False)
    ],
    json: JsonOption = False,
) -> None:
    """Deny with a reason; the code can no longer run."""
    with open_client(kit) as client:
        request = client.deny_code(request_id, reason)
    _show(request, json, with_source=False)


@app.command("run")
def run_code(request_id: RequestIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Run approved code as a job; its outputs are held for release review."""
    with open_client(kit) as client:
        job = client.run_code(request_id)
    if json:
        print_json(job)
        return
    echo(
        f"started job {job.id} for code request {request_id}; "
        f"follow it with `custos job status {job.id}`; its outputs are held for release review"
    )
