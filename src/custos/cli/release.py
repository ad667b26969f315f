"""`custos release list|show|fetch|approve|return|reject`: review held results before researchers see
them; view one held output, or save it (a file's bytes) to a file."""

from __future__ import annotations

import hashlib
import json as jsonlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import echo, key_value_table, print_json, stdout
from custos.core.errors import InvalidInput
from custos.core.states import ReleaseState
from custos.core.wire import (
    HELD_RESULT,
    FlagAction,
    HeldOutputView,
    JobResult,
    OutputFlag,
    ReleaseDetail,
    ReleasePart,
    ReleasePartState,
    ReleasePublic,
)
from custos.sdk import Client, Result
from custos.sdk.tables import add_row, frame_table, section_table, shown

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    help="Review results that a dataset's policy holds: approve, return or reject them.",
    no_args_is_help=True,
)

ReleaseIdArgument = Annotated[
    str, typer.Argument(help="The release's id, as `release list` printed it.", show_default=False)
]
OutputOption = Annotated[
    str,
    typer.Option(
        "--output", help="The held output: gateway/dataset of a site's, or `result`.", show_default=False
    ),
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, in a sentence the researcher will read.", show_default=False)
]
STATE_STYLES = {
    ReleaseState.HELD: "yellow",
    ReleaseState.PARTIALLY_REVIEWED: "yellow",
    ReleaseState.RELEASED: "green",
    ReleaseState.RETURNED: "red",
    ReleaseState.REJECTED: "red",
}


FLAG_STYLES: dict[FlagAction, str] = {
    "flagged": "red",
    "suppressed": "yellow",
    "rounded": "yellow",
    "unchecked": "yellow",
}
PART_STYLES: dict[ReleasePartState, str] = {
    "pending": "yellow",
    "approved": "green",
    "returned": "red",
    "rejected": "red",
}


def _state(state: ReleaseState) -> Text:
    return Text(state, style=STATE_STYLES[state])


def _reviews(release: ReleasePublic) -> str:
    """`1 of 2 approvals; waiting for hospital-a`: every org's approvals together, and who is missing."""
    text = f"{release.approvals} of {release.required} approvals"
    waiting = [p.org for p in release.parts if p.state == "pending"]
    if (
        len(release.parts) > 1
        and waiting
        and release.state in (ReleaseState.HELD, ReleaseState.PARTIALLY_REVIEWED)
    ):
        text += f"; waiting for {', '.join(waiting)}"
    return text


def parts_table(parts: Sequence[ReleasePart]) -> Table:
    """Each org's part of the review: the release is released when every part is approved."""
    table = Table(title="review by org", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("org", "datasets", "approvals", "state", "approved by"):
        table.add_column(column)
    for p in parts:
        add_row(
            table,
            p.org,
            ", ".join(p.datasets),
            f"{p.approvals} of {p.required}",
            Text(p.state, style=PART_STYLES[p.state]),
            ", ".join(p.reviewers),
        )
    return table


def flags_tables(flags: Sequence[OutputFlag]) -> list[Table]:
    """What the gateways' automatic checks found in the outputs shown, one table per dataset: one row
    per cell, column or output (row and column blank for a whole column or output), never a value."""
    by_dataset: dict[str, list[OutputFlag]] = {}
    for f in flags:
        by_dataset.setdefault(f.dataset or "", []).append(f)
    tables = []
    for dataset, found in by_dataset.items():
        table = Table(
            title=shown(f"automatic checks of {dataset}"), box=box.SIMPLE_HEAD, title_justify="left"
        )
        for column in ("row", "column", "rule", "class", "action"):
            table.add_column(column, no_wrap=True)
        table.add_column("reason")
        for f in found:
            add_row(
                table,
                "" if f.row is None else str(f.row),
                f.column or "",
                f.rule,
                f.value_class,
                Text(f.action, style=FLAG_STYLES[f.action]),
                f.reason,
            )
        tables.append(table)
    return tables


def _without_flags(result: dict[str, Any]) -> dict[str, Any]:
    """The held result without the flags its site outputs carry: `flags_table` shows them."""
    sites = result.get("sites")
    if not isinstance(sites, dict):
        return result
    plain = {
        ref: {k: v for k, v in output.items() if k != "flags"} if isinstance(output, dict) else output
        for ref, output in sites.items()
    }
    return result | {"sites": plain}


def releases_table(releases: Sequence[ReleasePublic]) -> Table:
    table = Table(title="releases", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("id", "state", "reviews", "job", "model", "submitter", "datasets"):
        table.add_column(column, no_wrap=column in ("id", "job"))  # ids are copied whole
    for r in releases:
        add_row(
            table,
            r.id,
            _state(r.state),
            f"{r.approvals} of {r.required}",
            r.job_id,
            r.model,
            r.submitter,
            ", ".join(r.datasets),
        )
    return table


def _show(release: ReleaseDetail, json: bool, *, with_result: bool = True) -> None:
    if json:
        print_json(release)
        return
    rows: list[tuple[str, str | Text]] = [
        ("id", release.id),
        ("state", _state(release.state)),
        ("reviews", _reviews(release)),
        (
            "reviewers",
            f"org admins of {', '.join(release.orgs)}"
            + (", each for their own org" if len(release.orgs) > 1 else ""),
        ),
        ("job", f"{release.job_id} ({release.job_state})"),
        ("submitter", f"{release.submitter} ({release.submitter_org})"),
        ("model", release.model),
        ("spec", release.spec_id),
        ("datasets", ", ".join(release.datasets)),
        ("columns", ", ".join(release.columns)),
        ("params", jsonlib.dumps(release.params, sort_keys=True)),
    ]
    if release.reason:
        rows.append(("reason", release.reason))
    console = stdout()
    console.print(key_value_table(f"release {release.id}", rows))
    if release.parts:
        console.print(parts_table(release.parts))
    if release.votes:
        votes = Table(title="votes", box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("reviewer", "org", "decision", "reason", "time"):
            votes.add_column(column)
        for v in release.votes:
            add_row(
                votes, v.reviewer, v.org, v.decision, v.reason, v.created_at.strftime("%Y-%m-%d %H:%M:%S")
            )
        console.print(votes)
    if with_result:
        for table in flags_tables(release.flags):
            console.print(table)
        console.print(Text("held result", style="bold"))
        unflagged = _without_flags(release.result)
        held = Result(JobResult(job_id=release.job_id, model=release.model, result=unflagged))
        for section in held.sections():
            console.print(section_table(section))
        if release.withheld:
            console.print(shown(f"not shown, other orgs' parts: {', '.join(release.withheld)}"))
        sites = release.result.get("sites")
        names = sorted(sites) if isinstance(sites, dict) else [HELD_RESULT]
        if names:
            echo(
                f"outputs: {', '.join(names)} (one: `custos release show {release.id} --output NAME`; "
                f"to a file: `custos release fetch {release.id} --output NAME --out FILE`)"
            )


def _flags_of(view: HeldOutputView) -> list[OutputFlag]:
    raw = view.output.get("flags")
    flags = []
    for item in raw if isinstance(raw, list) else []:
        try:
            flags.append(OutputFlag.model_validate({**item, "dataset": view.name}))
        except (ValueError, TypeError):
            continue  # the release's own view (`release show`) marks an unreadable flag
    return flags


def _show_output(client: Client, view: HeldOutputView) -> None:
    """One held output on screen, inert: a table or JSON as text, a file as its type, size and digest."""
    console = stdout()
    where = f"held output {view.name} of release {view.release_id}"
    if view.kind == "file":
        blob = view.blobs[0] if view.blobs else None
        rows: list[tuple[str, str | Text]] = [("type", view.file_type or "file")]
        if blob is not None:
            rows += [("bytes", str(blob.size)), ("sha256", blob.sha256)]
        console.print(key_value_table(where, rows))
        echo(f"save it with `custos release fetch {view.release_id} --output {view.name} --out FILE`")
        return
    for table in flags_tables(_flags_of(view)):
        console.print(table)
    if view.kind == "table":
        import pandas as pd  # only here: the command line's start loads no pandas

        value = client.fetch_release_output(view.release_id, view.name)
        assert isinstance(value, pd.DataFrame)
        console.print(frame_table(where, value))
    elif view.kind == "json":
        console.print(shown(where, style="bold"))
        echo(jsonlib.dumps(view.output.get("value"), indent=2, sort_keys=True))
    else:
        console.print(shown(where, style="bold"))
        held = Result(JobResult(job_id=view.release_id, model="held", result=view.output))
        for section in held.sections():
            console.print(section_table(section))


@app.command("list")
def list_releases(
    kit: KitOption,
    state: Annotated[
        ReleaseState | None, typer.Option("--state", help="Only releases in this state.", show_default=False)
    ] = None,
    json: JsonOption = False,
) -> None:
    """List the held results you may review (never your own jobs')."""
    with open_client(kit) as client:
        releases = client.releases(state)
    if json:
        print_json(releases)
    elif not releases:
        echo("no release to review" + (f" in state {state.value}" if state else ""))
    else:
        stdout().print(releases_table(releases))


@app.command("show")
def show_release(
    release_id: ReleaseIdArgument,
    kit: KitOption,
    output: Annotated[
        str | None,
        typer.Option("--output", help="Show only this held output (gateway/dataset, or `result`)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Show a held result with the model, parameters and columns that made it, and the votes so far;
    with --output, one held output. Each view is recorded in the audit trail."""
    with open_client(kit) as client:
        if output is None:
            _show(client.release(release_id), json)
            return
        view = client.release_output(release_id, output)
        if json:
            print_json(view)
            return
        _show_output(client, view)


def _output_bytes(value: pd.DataFrame | dict[str, Any] | bytes) -> bytes:
    """A file's bytes as they are; a table as CSV; JSON as JSON text."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, dict):  # a table (pandas is loaded only when one is fetched)
        return value.to_csv(index=False).encode("utf-8")
    return (jsonlib.dumps(value, indent=2, sort_keys=True, default=_no_bytes) + "\n").encode("utf-8")


def _no_bytes(value: object) -> object:
    if isinstance(value, bytes):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    raise TypeError(f"{type(value).__name__} is not JSON")


@app.command("fetch")
def fetch_output(
    release_id: ReleaseIdArgument,
    kit: KitOption,
    output: OutputOption,
    out: Annotated[Path, typer.Option("--out", help="The file to write; it must not exist yet.")],
) -> None:
    """Save one held output to a file: a file's exact bytes, a table as CSV, JSON as JSON. The bytes
    are checked against their digest first; the download is recorded in the audit trail."""
    if out.exists():
        raise InvalidInput(f"{out} exists; choose a new file to write")
    with open_client(kit) as client:
        data = _output_bytes(client.fetch_release_output(release_id, output))
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, out)
    digest = hashlib.sha256(data).hexdigest()
    echo(f"wrote {output} of release {release_id} to {out} ({len(data)} bytes, sha256 {digest})")


@app.command("approve")
def approve_release(
    release_id: ReleaseIdArgument,
    kit: KitOption,
    reason: Annotated[str, typer.Option("--reason", help="An optional note kept with the vote.")] = "",
    json: JsonOption = False,
) -> None:
    """Approve your org's part; the result is released when every org's part is approved."""
    with open_client(kit) as client:
        release = client.approve_release(release_id, reason)
    _show(release, json, with_result=False)


@app.command("return")
def return_release(
    release_id: ReleaseIdArgument, kit: KitOption, reason: ReasonOption, json: JsonOption = False
) -> None:
    """Send the result back to the researcher with a reason; it is not released and the job fails."""
    with open_client(kit) as client:
        release = client.return_release(release_id, reason)
    _show(release, json, with_result=False)


@app.command("reject")
def reject_release(
    release_id: ReleaseIdArgument, kit: KitOption, reason: ReasonOption, json: JsonOption = False
) -> None:
    """Refuse the release with a reason; the job fails."""
    with open_client(kit) as client:
        release = client.reject_release(release_id, reason)
    _show(release, json, with_result=False)
