"""`custos provision create|add|revoke|unpack`: the project admin's commands for the CA and startup kits.

`custos provision PROJECT.yaml -o OUT` (a first argument ending in .yaml or .yml) is kept as shorthand
for `custos provision create PROJECT.yaml -o OUT`, so scripts written before the group keep working.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from custos.core.errors import InvalidInput
from custos.core.identity import Role
from custos.core.yamltext import parse_yaml_mapping
from custos.pki.archive import ARCHIVE_SUFFIX, unpack_kit_archive
from custos.pki.authority import CA_FOLDER, PROJECT_FILE, IssuedCertificate, read_issued
from custos.pki.enrolment import add_participant
from custos.pki.kit import load_kit
from custos.pki.project import MAX_AUTHORIZATION_BYTES, load_project, parse_participant
from custos.pki.provision import CA_CERT_FILE, CA_KEY_FILE, provision
from custos.pki.revocation import revoke_participant

MAX_PASSWORD_FILE_BYTES = 4096


class ProvisionGroup(TyperGroup):
    """The `provision` group, reading `provision FILE.yaml ...` as `provision create FILE.yaml ...`."""

    # `ctx` is a Context of the Click copy Typer vendors privately, hence Any.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0].endswith((".yaml", ".yml")):
            args = ["create", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=ProvisionGroup,
    help="Create the project CA and startup kits; add a participant; revoke one; unpack a kit archive.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path,
    typer.Option(
        "-o", "--out", help="The folder `custos provision create` wrote (it holds ca/).", show_default=False
    ),
]
ArchiveOption = Annotated[
    bool,
    typer.Option(
        "--archive",
        help=f"Write each gateway and user kit as a password-protected NAME{ARCHIVE_SUFFIX} file "
        "instead of a folder (the orchestrator's kit stays a folder).",
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the archive password from the first line of this file instead of prompting.",
        show_default=False,
        dir_okay=False,
    ),
]


def _console() -> Console:
    # One line per fact whatever the terminal width, so the output can be read by scripts too.
    return Console(highlight=False, soft_wrap=True)


def read_password(password_file: Path | None, *, confirm: bool) -> bytes:
    """The archive password: the one line of `password_file`, else typed (hidden; twice if `confirm`)."""
    if password_file is None:
        text = typer.prompt("Kit archive password", hide_input=True, confirmation_prompt=confirm)
    else:
        if not password_file.is_file():
            raise InvalidInput(f"--password-file {password_file} does not exist or is not a file")
        with password_file.open("rb") as handle:
            raw = handle.read(MAX_PASSWORD_FILE_BYTES + 1)
        if len(raw) > MAX_PASSWORD_FILE_BYTES:
            raise InvalidInput(
                f"--password-file {password_file} is larger than {MAX_PASSWORD_FILE_BYTES} bytes"
            )
        try:
            text = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"--password-file {password_file} is not UTF-8 text") from exc
        if "\n" in text or "\r" in text:
            raise InvalidInput(
                f"--password-file {password_file} holds more than one line; write the password alone"
            )
    # The same password typed on two systems must give the same bytes.
    return unicodedata.normalize("NFC", text).encode()


def _archive_password(archive: bool, password_file: Path | None) -> bytes | None:
    if not archive:
        if password_file is not None:
            raise InvalidInput("--password-file is used only with --archive")
        return None
    return read_password(password_file, confirm=True)


def _records(out: Path) -> dict[Path, IssuedCertificate]:
    return {out / record.kit: record for record in read_issued(out / CA_FOLDER)}


def _kit_line(path: Path, record: IssuedCertificate) -> Text:
    what = "kit archive" if path.is_file() else "kit"
    return Text(f"wrote {what} {path}  ({record.role} {record.name}, org {record.org})")


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("create")
def create_command(
    project: Annotated[
        Path,
        typer.Argument(help="The project file (YAML): name, orchestrator, participants.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o", "--out", help="A new or empty folder to write the CA and the kits into.", show_default=False
        ),
    ],
    archive: ArchiveOption = False,
    password_file: PasswordFileOption = None,
) -> None:
    """Create the project's root CA and one startup kit per participant (orchestrator, gateways, users)."""
    spec = load_project(project)
    password = _archive_password(archive, password_file)
    kits = provision(spec, out, archive_password=password)
    records = _records(out)
    console = _console()
    for path in kits:
        console.print(_kit_line(path, records[path]))
    ca = out / CA_FOLDER
    console.print(Text(f"wrote root CA {ca / CA_CERT_FILE}"))
    console.print(
        Text(
            f"keep {ca / CA_KEY_FILE} offline and private: it signs every certificate of project {spec.name}",
            style="yellow",
        )
    )
    if password is not None:
        console.print(
            Text(
                f"send each {ARCHIVE_SUFFIX} file and its password by different channels; "
                f"the participant runs: custos provision unpack NAME{ARCHIVE_SUFFIX} -o DIR"
            )
        )


@app.command("add")
def add_command(
    out: OutOption,
    name: Annotated[str, typer.Option("--name", help="The new participant's name.", show_default=False)],
    org: Annotated[str, typer.Option("--org", help="Its organisation.", show_default=False)],
    kind: Annotated[
        Literal["gateway", "user"],
        typer.Option("--type", help="gateway or user.", show_default=False),
    ],
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="Users only: project_admin, org_admin, lead_researcher or member_researcher.",
            show_default=False,
        ),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            max=3650,
            help="How long the certificate is valid (default: the project's certificate_days).",
            show_default=False,
        ),
    ] = None,
    authorization: Annotated[
        Path | None,
        typer.Option(
            "--authorization",
            help="Gateways only: the site authorization file (YAML) to put in the kit.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    archive: ArchiveOption = False,
    password_file: PasswordFileOption = None,
) -> None:
    """Issue one new kit from the project's CA in OUT. No other kit changes."""
    data: dict[str, Any] = {"name": name, "type": kind, "org": org}
    if kind == "user" and role is None:
        accepted = ", ".join(
            r.value for r in Role if r not in {Role.ORCHESTRATOR, Role.GATEWAY, Role.KEY_BROKER}
        )
        raise InvalidInput(f"a user needs --role; accepted roles are {accepted}")
    if role is not None:
        data["role"] = role
    if days is not None:
        data["certificate_days"] = days
    if authorization is not None:
        data["authorization"] = _read_authorization(authorization)
    participant = parse_participant(data, "new participant")
    password = _archive_password(archive, password_file)
    path = add_participant(out, participant, archive_password=password)
    record = _records(out)[path]
    console = _console()
    console.print(_kit_line(path, record))
    console.print(
        Text(
            f"added {record.name} to {out / CA_FOLDER / PROJECT_FILE}; its certificate is valid until "
            f"{_date(record.not_after)}; no other kit changed"
        )
    )


def _read_authorization(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InvalidInput(f"--authorization {path} does not exist or is not a file")
    with path.open("rb") as handle:
        raw = handle.read(MAX_AUTHORIZATION_BYTES + 1)
    return parse_yaml_mapping(
        raw,
        f"authorization file {path}",
        max_bytes=MAX_AUTHORIZATION_BYTES,
        expected="the site's authorization rules",
    )


@app.command("revoke")
def revoke_command(
    name: Annotated[
        str, typer.Argument(help="The participant whose certificate to revoke.", show_default=False)
    ],
    out: OutOption,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why, for the record in ca/issued.json.", show_default=False),
    ] = None,
    push_with: Annotated[
        Path | None,
        typer.Option(
            "--push-with",
            help="A project admin's kit: push the new list to the orchestrator at once.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Revoke a participant's certificate: add it to the CA-signed revocation list OUT/ca/revoked.crl.pem."""
    done = revoke_participant(out, name, reason=reason)
    record = done.certificate
    when = _date(record.revoked_at) if record.revoked_at is not None else "now"
    console = _console()
    console.print(
        Text(
            f"revoked the certificate of {record.name} "
            f"({record.role}, org {record.org}, serial {record.serial})"
        )
    )
    if push_with is None:
        console.print(
            Text(
                f"wrote {done.path} (CRL number {done.crl.number}, revoked on {when}); "
                f"push it to the orchestrator (`custos provision push-crl {done.path} --kit ADMIN_KIT`): "
                f"until the orchestrator loads this list, {record.name} can still connect",
                style="yellow",
            )
        )
        return
    _push(push_with, done.path)


def _push(kit: Path, crl: Path) -> None:
    from custos.sdk import Client

    with Client.from_kit(kit) as client:
        number = client.publish_revocations(crl.read_text(encoding="ascii"))
    _console().print(
        Text(f"revocation list {number} is in force at the orchestrator; gateways fetch it within a minute")
    )


@app.command("push-crl")
def push_crl_command(
    crl: Annotated[Path, typer.Argument(help="OUT/ca/revoked.crl.pem.", show_default=False, dir_okay=False)],
    kit: Annotated[Path, typer.Option("--kit", help="A project admin's kit.", show_default=False)],
) -> None:
    """Push the project's revocation list to the orchestrator (project admins only)."""
    if not crl.is_file():
        raise InvalidInput(f"{crl} does not exist or is not a file; `custos provision revoke` writes it")
    _push(kit, crl)


@app.command("unpack")
def unpack_command(
    archive: Annotated[
        Path,
        typer.Argument(help=f"The kit archive (NAME{ARCHIVE_SUFFIX}).", show_default=False, dir_okay=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="The folder to unpack the kit folder into (created if missing).",
            show_default=False,
        ),
    ],
    password_file: PasswordFileOption = None,
) -> None:
    """Decrypt a kit archive, unpack it into OUT/NAME and check the kit's CA-signed manifest."""
    password = read_password(password_file, confirm=False)
    kit = load_kit(unpack_kit_archive(archive, out, password))
    identity = kit.identity
    _console().print(
        Text(
            f"unpacked kit {kit.path}  ({identity.role.value} {identity.name}, org {identity.org}); "
            f"its CA-signed manifest verifies"
        )
    )
