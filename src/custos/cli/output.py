"""How the CLI prints: the API's JSON with `--json`, otherwise Rich tables (those of the SDK's own
objects are in `custos.sdk.tables`).

Tables go to stdout; progress and errors go to stderr, so `--json` output can be piped.

Text that came from someone else (code, outputs, logs, audit events, names, descriptions, reasons)
is printed inert: `echo` for lines, `shown` and `add_row` (`custos.sdk.tables`) for Rich, never
`typer.echo`, `print` or a Rich string with markup. `--json` output is JSON with every character
outside ASCII escaped, so it needs nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from custos.cli.plain import echo as echo
from custos.cli.plain import print_json as print_json
from custos.core.states import JobState, SpecState
from custos.core.wire import JobPublic, JobSummary, Me, SpecPublic
from custos.sdk.tables import add_row, shown

STATE_STYLES = {
    SpecState.ACTIVE: "green",
    SpecState.FAILED: "red",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "red",
    JobState.CANCELLED: "red",
    JobState.AWAITING_RELEASE: "yellow",
}


def stdout() -> Console:
    return Console(highlight=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _state(state: SpecState | JobState) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def key_value_table(title: str, rows: Sequence[tuple[str, str | Text]]) -> Table:
    table = Table(title=shown(title), box=box.SIMPLE, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        add_row(table, key, value)
    return table


def me_table(me: Me) -> Table:
    return key_value_table(
        "signed in as",
        [("name", me.name), ("org", me.org), ("role", me.role), ("fingerprint", me.fingerprint)],
    )


def spec_table(spec: SpecPublic) -> Table:
    rows: list[tuple[str, str | Text]] = [
        ("id", spec.id),
        ("name", spec.name),
        ("state", _state(spec.state)),
        ("model", spec.model),
        ("datasets", ", ".join(spec.datasets)),
        ("columns", ", ".join(spec.columns)),
        ("owner", f"{spec.owner} ({spec.org})"),
        ("created", _when(spec.created_at)),
    ]
    if spec.reason:
        rows.append(("reason", spec.reason))
    return key_value_table(f"compute spec {spec.id}", rows)


def specs_table(specs: Sequence[SpecPublic]) -> Table:
    table = Table(title="compute specs", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("id", "name", "state", "model", "datasets", "owner", "created"):
        table.add_column(column)
    for s in specs:
        add_row(
            table, s.id, s.name, _state(s.state), s.model, ", ".join(s.datasets), s.owner, _when(s.created_at)
        )
    return table


def jobs_table(jobs: Sequence[JobSummary]) -> Table:
    table = Table(title="jobs", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("id", "state", "model", "spec", "round", "submitter", "created", "finished"):
        table.add_column(column, no_wrap=column in ("id", "spec", "created", "finished"))  # copied whole
    for j in jobs:
        add_row(
            table,
            j.id,
            _state(j.state),
            j.model,
            j.spec_id,
            str(j.round),
            f"{j.submitter} ({j.org})",
            _when(j.created_at),
            _when(j.finished_at),
        )
    return table


def job_tables(job: JobPublic) -> list[Table]:
    rows: list[tuple[str, str | Text]] = [
        ("id", job.id),
        ("state", _state(job.state)),
        ("spec", job.spec_id),
        ("model", job.model),
        ("round", str(job.round)),
        ("submitter", f"{job.submitter} ({job.org})"),
        ("created", _when(job.created_at)),
        ("finished", _when(job.finished_at)),
    ]
    if job.reason:
        rows.append(("reason", job.reason))
    rows.extend(("waiting", note) for note in job.waiting)
    tables = [key_value_table(f"job {job.id}", rows)]
    if job.tasks:
        tasks = Table(title="tasks", box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("task", "gateway", "dataset", "kind", "round", "state", "attempt", "error"):
            tasks.add_column(column)
        for t in job.tasks:
            add_row(
                tasks,
                t.id,
                t.gateway,
                t.dataset,
                t.kind,
                str(t.round),
                t.state,
                str(t.attempt),
                t.error or "",
            )
        tables.append(tasks)
    return tables
