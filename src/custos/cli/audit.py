"""`custos audit show|verify`: read and check a hash-chained audit trail file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from custos.audit import AuditEvent, read_events, select_events, verify_trail
from custos.cli.options import open_client
from custos.cli.output import echo, stdout
from custos.core.errors import InvalidInput
from custos.sdk.tables import add_row

app = typer.Typer(help="Show and verify the tamper-evident audit trail.", no_args_is_help=True)

TrailOption = Annotated[
    Path, typer.Option("--trail", help="The audit trail file.", show_default=False, dir_okay=False)
]


def parse_since(text: str) -> datetime:
    """An ISO-8601 time; one without a time zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(
            f"--since {text!r} is not an ISO-8601 time; give e.g. 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _as_json(event: AuditEvent) -> str:
    return json.dumps(
        {
            "line": event.line_no,
            "id": event.id,
            "time": event.time.isoformat(),
            "user": event.user,
            "action": event.action,
            "job": event.job,
            "peer": event.peer,
            "chain": event.chain,
            "message": event.message,
        }
    )


def events_table(events: list[AuditEvent]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("line", "id", "time (UTC)"):
        table.add_column(column, no_wrap=True)
    for column in ("user", "action", "job", "peer", "message"):
        table.add_column(column, overflow="fold")
    for event in events:
        add_row(
            table,
            str(event.line_no),
            event.id,
            event.time.strftime("%Y-%m-%d %H:%M:%S"),
            event.user,
            event.action,
            event.job or "-",
            event.peer or "-",
            event.message,
        )
    return table


@app.command("show")
def show_trail(
    trail: TrailOption,
    job: Annotated[str | None, typer.Option("--job", help="Only this job's events.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's events.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events at or after this ISO-8601 time (UTC if no zone)."),
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON object per event.")] = False,
) -> None:
    """Show the trail's events, oldest first; fragments and malformed lines are left out."""
    start = parse_since(since) if since is not None else None
    events = select_events(read_events(trail), job=job, user=user, since=start)
    if json_lines:
        for event in events:
            echo(_as_json(event))
    elif not events:
        echo("no audit event matches")
    else:
        stdout().print(events_table(events))


@app.command("verify")
def verify_command(
    trail: TrailOption,
    expect_lines: Annotated[
        int | None, typer.Option("--expect-lines", min=0, help="Events an earlier verify counted (anchor).")
    ] = None,
    expect_hash: Annotated[
        str | None, typer.Option("--expect-hash", help="The last hash an earlier verify printed (anchor).")
    ] = None,
    anchored: Annotated[
        str | None,
        typer.Option(
            "--anchored",
            help="Check the trail against the heads the orchestrator anchored for this gateway "
            "(its name) or for itself ('orchestrator'); needs --kit.",
        ),
    ] = None,
    kit: Annotated[
        Path | None,
        typer.Option(
            "--kit", envvar="CUSTOS_KIT", help="Your kit, to fetch the anchors.", show_default=False
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first tampered line, or a cut end."""
    anchors: list[tuple[int, str]] = []
    if anchored is not None:
        if kit is None:
            raise InvalidInput("--anchored needs --kit: the anchors are fetched from the orchestrator")
        with open_client(kit) as client:
            anchors = [(a.index, a.hash) for a in client.audit_anchors(anchored)]
    report = verify_trail(trail, expected_last_hash=expect_hash, expected_lines=expect_lines, anchors=anchors)
    if not report.ok:
        echo(f"tampered: line {report.first_bad_line}: {report.reason}")
        raise typer.Exit(1)
    echo(f"ok: {report.lines} events, chain intact")
    if anchors:
        index, _ = max(anchors)
        echo(f"anchored: {len(anchors)} heads kept by the orchestrator match, the newest at event {index}")
    if report.last_hash is not None:
        echo(f"last hash: {report.last_hash}")
    if report.partial_lines:
        numbers = ", ".join(str(n) for n in report.partial_lines)
        echo(f"partial lines (left by an interrupted append): {numbers}")
