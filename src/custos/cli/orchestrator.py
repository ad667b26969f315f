"""`custos orchestrator start`: run the orchestrator in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli.options import LogFormatChoice, LogFormatOption, LogLevel, LogLevelOption

app = typer.Typer(help="Run the orchestrator.", no_args_is_help=True)


@app.command("start")
def start_orchestrator(
    kit: Annotated[
        Path, typer.Option("--kit", help="The orchestrator's startup kit folder.", show_default=False)
    ],
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Folder for the database, blobs and audit trail (default: in the kit)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: from the kit).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port to listen on (default: from the kit)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="CUSTOS_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db (default: SQLite in --state).",
            show_default=False,
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="A reverse proxy (address or network) whose X-Forwarded-For names the client; repeatable. "
            "Without it the header is ignored.",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Also serve /metrics over plain HTTP on 127.0.0.1:PORT, without sign-in "
            "(default: only on the API, to project admins).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes on one port (more than 1 needs PostgreSQL); several hosts on one "
            "PostgreSQL database may run behind a load balancer too.",
        ),
    ] = 1,
    long_poll_max_s: Annotated[
        float,
        typer.Option(
            "--long-poll-max-s",
            min=1,
            max=300,
            help="The longest a gateway's poll is held open when there is no work.",
        ),
    ] = 25.0,
    site_offline_margin_s: Annotated[
        float,
        typer.Option(
            "--site-offline-margin-s",
            min=1,
            max=3600,
            help="A site unseen for a long poll and this margin more is offline.",
        ),
    ] = 10.0,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormatChoice.text,
) -> None:
    """Serve the orchestrator API over HTTPS with client certificates."""
    # Imported here so that `custos --help` and the researcher commands do not load the web stack.
    from custos.orchestrator.server import serve

    serve(
        kit,
        state_dir=state,
        host=host,
        port=port,
        database_url=database_url,
        trusted_proxies=trusted_proxy or (),
        metrics_port=metrics_port,
        workers=workers,
        long_poll_max_s=long_poll_max_s,
        site_offline_margin_s=site_offline_margin_s,
        log_level=log_level.value,
        log_format="json" if log_format is LogFormatChoice.json else "text",
    )
