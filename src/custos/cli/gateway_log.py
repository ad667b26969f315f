"""`custos gateway log show|release`: a custodian reads the full log of a failed custom code task,
which the gateway keeps in its state folder, and releases it to the job's researcher."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.plain import echo, print_json
from custos.core.inert import inert
from custos.gateway.code_logs import CodeLog, read_code_logs

app = typer.Typer(
    help="Read the full logs of failed custom code tasks kept at this gateway, and release them.",
    no_args_is_help=True,
)

StateOption = Annotated[
    Path, typer.Option("--state", help="The gateway's state folder (its --state).", show_default=False)
]
JobOption = Annotated[str, typer.Option("--job", help="The job's id.", show_default=False)]
TaskOption = Annotated[
    str | None, typer.Option("--task", help="Only this task's log (default: every log of the job).")
]


def describe_log(log: CodeLog) -> str:
    cut = f", its first {log.cut_bytes} bytes cut" if log.cut_bytes else ""
    return (
        f"task {log.task_id} (attempt {log.attempt}) of job {log.job_id} "
        f"at {log.gateway}/{log.dataset}: {inert(log.type, multiline=False)}{cut}"
    )


@app.command("show")
def show_logs(state: StateOption, job: JobOption, task: TaskOption = None, json: JsonOption = False) -> None:
    """Print the full logs of the job's failed custom code tasks. They may quote rows: they are for
    the custodian, and leave the gateway only with `custos gateway log release`."""
    logs = read_code_logs(state, job, task)
    if json:
        print_json(logs)
        return
    for log in logs:
        echo(f"── log of {describe_log(log)}")
        echo(log.log.rstrip("\n"))


@app.command("release")
def release_logs(
    kit: KitOption, state: StateOption, job: JobOption, task: TaskOption = None, json: JsonOption = False
) -> None:
    """Send the job's logs (or one task's) to the orchestrator, where the job's researcher reads them
    with `custos job log`. For a release reviewer (org admin) of the gateway's org."""
    logs = read_code_logs(state, job, task)
    with open_client(kit) as client:
        released = [
            client.release_log(
                log.job_id, gateway=log.gateway, task_id=log.task_id, attempt=log.attempt, log=log.log
            )
            for log in logs
        ]
    if json:
        print_json(released)
        return
    for log in logs:
        echo(f"released the log of {describe_log(log)}")
    echo(f"the researcher reads it with `custos job log {job}`")
