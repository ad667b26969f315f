"""`custos job submit|list|status|cancel|result|log`: run a computation under an active spec, list
and cancel jobs, fetch a result, and read the custom code logs a custodian released."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli.audit import parse_since
from custos.cli.budget import print_preview
from custos.cli.options import JsonOption, KitOption, open_client, read_params
from custos.cli.output import echo, job_tables, jobs_table, print_json, stdout
from custos.core.errors import NotFound
from custos.core.states import JobState
from custos.core.wire import CUSTOM_MODEL
from custos.sdk import Client, Result
from custos.sdk.tables import section_table, shown

app = typer.Typer(
    help="Submit jobs under an active compute spec and fetch their results.", no_args_is_help=True
)

JobIdArgument = Annotated[
    str, typer.Argument(help="The job's id, as `job submit` printed it.", show_default=False)
]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for the job.")]


def print_result(result: Result, json: bool) -> None:
    if json:
        print_json(result.wire)
        return
    console = stdout()
    console.print(shown(f"result of job {result.job_id}", style="bold") + shown(f" ({result.model})"))
    for section in result.sections():
        console.print(section_table(section))


def _wait_and_print(client: Client, job_id: str, timeout: float, json: bool) -> None:
    job = client.wait_job(job_id, timeout=timeout, progress=not json)
    if job.state is JobState.AWAITING_RELEASE:
        echo(f"job {job_id} finished and is held for release review; fetch it later with `custos job result`")
        return
    print_result(client.job_result(job_id), json)


@app.command("submit")
def submit_job(
    spec_id: Annotated[str, typer.Argument(help="The active spec to run under.", show_default=False)],
    kit: KitOption,
    params: Annotated[
        str | None,
        typer.Option("--params", help='The model\'s parameters as JSON, e.g. \'{"columns": ["age"]}\'.'),
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option("--params-file", help="A JSON file with the model's parameters.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job and print its result.")] = False,
    timeout: TimeoutOption = 300,
    json: JsonOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what the job would spend of your privacy budget; submit nothing."
        ),
    ] = False,
) -> None:
    """Submit a job: each gateway runs one task per round; the orchestrator aggregates."""
    values = read_params(params, params_file)
    with open_client(kit) as client:
        if dry_run:
            print_preview(client.preview_job(spec_id, values), json)
            return
        job = client.submit_job(spec_id, values)
        if not wait:
            if json:
                print_json(job)
            else:
                for table in job_tables(job):
                    stdout().print(table)
            return
        if not json:
            echo(f"submitted job {job.id}", err=True)
        _wait_and_print(client, job.id, timeout, json)


@app.command("list")
def list_jobs(
    kit: KitOption,
    state: Annotated[
        list[JobState] | None,
        typer.Option("--state", help="Only jobs in this state (repeat for several).", show_default=False),
    ] = None,
    spec: Annotated[str | None, typer.Option("--spec", help="Only jobs of this compute spec.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only jobs created at or after this ISO time (UTC if no zone)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Jobs per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after a page: the cursor it printed.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """List your jobs, newest first (an org admin: the org's; a project admin: all)."""
    start = parse_since(since) if since is not None else None
    with open_client(kit) as client:
        page = client.jobs(state=state, spec=spec, since=start, limit=limit, cursor=cursor)
    if json:
        print_json(page)
        return
    stdout().print(jobs_table(page.jobs))
    if page.next_cursor is not None:
        echo(f"more jobs: add --cursor {page.next_cursor}", err=True)


@app.command("cancel")
def cancel_job(job_id: JobIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Cancel a job: its gateways end its running sandboxes, and no result of it is accepted."""
    with open_client(kit) as client:
        job = client.cancel_job(job_id)
    if json:
        print_json(job)
        return
    echo(f"cancelled job {job.id}")


@app.command("status")
def job_status(job_id: JobIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Show a job's state, round and tasks."""
    with open_client(kit) as client:
        job = client.job(job_id)
    if json:
        print_json(job)
        return
    for table in job_tables(job):
        stdout().print(table)


@app.command("result")
def job_result(
    job_id: JobIdArgument,
    kit: KitOption,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish first.")] = False,
    timeout: TimeoutOption = 300,
    json: JsonOption = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write the final model's weights (a safetensors file), or the file custom code "
            "returned, to this file.",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="With --out: whose file (gateway/dataset), when several returned one."
        ),
    ] = None,
) -> None:
    """Print a finished job's result as tables (suppressed cells dimmed); with --out, save its model
    or its file."""
    with open_client(kit) as client:
        if wait and out is None:
            _wait_and_print(client, job_id, timeout, json)
            return
        if wait:
            client.wait_job(job_id, timeout=timeout, progress=not json)
        result = client.job_result(job_id)
    print_result(result, json)
    if out is not None and result.model == CUSTOM_MODEL:
        saved = result.save_file(out, dataset)
        echo(f"wrote the file to {saved} ({saved.stat().st_size} bytes)", err=True)
    elif out is not None:
        # Model release under policy (who may take weights out) is a later step of issue 5.
        saved = result.save_model(out)
        echo(f"wrote the model's weights to {saved} (safetensors)", err=True)


@app.command("log")
def job_log(job_id: JobIdArgument, kit: KitOption, json: JsonOption = False) -> None:
    """Print the full logs of the job's failed custom code tasks that a custodian has released."""
    with open_client(kit) as client:
        logs = client.job_logs(job_id)
    if json:
        print_json(logs)
        return
    if not logs:
        raise NotFound(
            f"no log has been released for job {job_id}: its reason holds only the error's class and line; "
            "a custodian of the gateway's org may release the full log (`custos gateway log release`)"
        )
    for log in logs:
        echo(
            f"── log of task {log.task_id} (attempt {log.attempt}) at {log.gateway}/{log.dataset}, "
            f"released by {log.released_by} ({log.org})"
        )
        echo(log.log.rstrip("\n"))
