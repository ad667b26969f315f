"""`custos gateway start`: run a site's gateway agent in the foreground until SIGTERM or Ctrl-C.
`custos gateway authz-preview`: what the site's authorization would decide for a submitter.
`custos gateway log show|release`: the full logs of failed custom code tasks (see `gateway_log`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custos.cli import gateway_log
from custos.cli.options import LogFormatChoice, LogFormatOption, LogLevel
from custos.cli.plain import echo
from custos.core.errors import InvalidInput, KitError
from custos.core.identity import Role

app = typer.Typer(help="Run a gateway next to a site's data.", no_args_is_help=True)
app.add_typer(gateway_log.app, name="log")


@app.command("start")
def start_gateway(
    kit: Annotated[Path, typer.Option("--kit", help="The gateway's startup kit folder.", show_default=False)],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="The site's DATASETS.yaml: datasets and their policies.", show_default=False
        ),
    ],
    state: Annotated[
        Path | None, typer.Option("--state", help="Folder for the journal, ledger and audit trail.")
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="Write Prometheus metrics to this file (a .prom file in node_exporter's textfile "
            "collector folder), replaced atomically. gateway.yaml: metrics_file.",
            show_default=False,
        ),
    ] = None,
    tasks_in_flight: Annotated[
        int | None,
        typer.Option(
            "--tasks-in-flight",
            help="Job runtimes kept live at once. gateway.yaml: tasks_in_flight.",
            show_default=False,
        ),
    ] = None,
    warm_spares: Annotated[
        int | None,
        typer.Option(
            "--warm-spares",
            help="Sandboxes booted ahead of need (0: none). gateway.yaml: warm_spares.",
            show_default=False,
        ),
    ] = None,
    cap: Annotated[
        list[str] | None,
        typer.Option(
            "--cap",
            help="A sandbox cap, NAME=VALUE (e.g. memory_mb=2048); repeatable. gateway.yaml: sandbox.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            help="Least severe log records written. gateway.yaml: log_level (info).",
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOption = LogFormatChoice.text,
) -> None:
    """Publish the site's datasets and run the tasks its policies allow. Opens no listening port.
    How it runs comes from gateway.yaml beside DATASETS.yaml; a flag overrides its field."""
    if not data.is_file():
        raise InvalidInput(f"--data {data} does not exist or is not a file; pass the site's DATASETS.yaml")
    # Imported here so that `custos --help` and the researcher commands do not load the agent's stack.
    from custos.gateway.agent import run

    overrides: dict[str, object] = {
        name: value
        for name, value in (
            ("metrics_file", metrics_file),
            ("tasks_in_flight", tasks_in_flight),
            ("warm_spares", warm_spares),
        )
        if value is not None
    }
    if cap:
        overrides["sandbox"] = parse_caps(cap)
    run(
        kit,
        data,
        state_dir=state,
        overrides=overrides,
        log_level=log_level.value if log_level is not None else None,
        log_format="json" if log_format is LogFormatChoice.json else "text",
    )


def parse_caps(values: list[str]) -> dict[str, str]:
    """`--cap memory_mb=2048 --cap cpu_seconds=60` -> {"memory_mb": "2048", ...}; checked with the file."""
    caps: dict[str, str] = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or not name.strip() or not number.strip():
            raise InvalidInput(f"--cap {value}: write NAME=VALUE, e.g. --cap memory_mb=2048")
        caps[name.strip()] = number.strip()
    return caps


@app.command("authz-preview")
def authz_preview(
    kit: Annotated[Path, typer.Option("--kit", help="The gateway's startup kit folder.", show_default=False)],
    user: Annotated[str, typer.Option("--user", help="The submitter's name.", show_default=False)],
    org: Annotated[str, typer.Option("--org", help="The submitter's org.", show_default=False)],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="project_admin, org_admin, lead_researcher or member_researcher.",
            show_default=False,
        ),
    ],
    right: Annotated[
        str, typer.Option("--right", help="submit_job, activate_spec or custom_code.", show_default=False)
    ],
) -> None:
    """Show whether the site's authorization.yaml (or the built-in defaults) lets this submitter use
    the right here, and the rule that decides. A preview: it exits 0 either way."""
    from custos.gateway.agent import load_kit_authorization
    from custos.pki import load_kit
    from custos.policy import decide, parse_right, parse_user_role

    wanted_role, wanted_right = parse_user_role(role), parse_right(right)
    loaded = load_kit(kit)
    site = loaded.identity
    if site.role is not Role.GATEWAY:
        raise KitError(f"kit at {kit} belongs to {site.name} ({site.role}), not a gateway")
    authorization, origin = load_kit_authorization(kit)
    decision = decide(
        authorization, site_org=site.org, user=user, org=org, role=wanted_role, right=wanted_right
    )
    verdict, may = ("allowed", "may") if decision.allowed else ("denied", "may not")
    echo(
        f"{verdict}: {wanted_role} {user} of {org} {may} {wanted_right} at {site.name} (org {site.org}): "
        f"{decision.reason} ({origin})"
    )
