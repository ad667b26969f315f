"""Provisioning: from a project file to a root CA and one startup kit per participant, and later one more.

Built the way NVIDIA FLARE's lighter builds: a list of builders, each initialized, then each run, then
each finalized in reverse order. All of it is written into a temporary folder next to the output folder,
which is renamed into place only when every builder succeeded, so a failure leaves nothing half-written.

    out/ca/                                the project admin's CA folder (see custos.pki.authority)
    out/<orchestrator.name>/               the orchestrator's kit
    out/<participant name>/                one kit per gateway and user
    out/<participant name>.kit             instead, with an archive password: the kit, encrypted

`custos.pki.enrolment.add_participant` issues one more kit later, with the helpers at the end of this
module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.clock import utcnow
from custos.core.errors import InvalidInput
from custos.core.identity import Identity, ParticipantKind, Role
from custos.pki.archive import ARCHIVE_SUFFIX, check_archive_password, write_kit_archive

# The CA folder's names are re-exported: callers found them here before custos.pki.authority existed.
from custos.pki.authority import CA_CERT_FILE as CA_CERT_FILE
from custos.pki.authority import CA_FOLDER as CA_FOLDER
from custos.pki.authority import CA_KEY_FILE as CA_KEY_FILE
from custos.pki.authority import (
    ISSUED_FILE,
    PROJECT_FILE,
    IssuedCertificate,
    issued_json,
)
from custos.pki.certs import certificate_pem, create_root_ca, generate_key, issue_certificate, private_key_pem
from custos.pki.kit import KitConfig, load_kit, write_kit, write_private_file
from custos.pki.project import ParticipantSpec, ProjectSpec, authorization_yaml, dump_project, is_ip_address

PROJECT_HEADER = (
    "# The project as provisioned. `custos provision add` appends to it: change it only through custos.\n"
)


@dataclass
class ProvisionContext:
    """What the builders share. `workspace` is the temporary folder that becomes the output folder."""

    spec: ProjectSpec
    workspace: Path
    now: datetime
    ca_certificate: x509.Certificate | None = None
    ca_key: ec.EllipticCurvePrivateKey | None = None
    issued: list[IssuedCertificate] = field(default_factory=list)

    def ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self.ca_certificate is None or self.ca_key is None:
            raise RuntimeError("the root CA builder must run before any builder that signs")
        return self.ca_certificate, self.ca_key


class Builder(Protocol):
    """One step of provisioning. Builders write only inside `ctx.workspace`."""

    def initialize(self, ctx: ProvisionContext) -> None: ...

    def build(self, ctx: ProvisionContext) -> None: ...

    def finalize(self, ctx: ProvisionContext) -> None: ...


class RootCABuilder:
    """Creates the root CA and the CA folder: the CA and its key, the project, and (last of all, when every
    kit is final) the record of issued certificates."""

    def initialize(self, ctx: ProvisionContext) -> None:
        ctx.ca_certificate, ctx.ca_key = create_root_ca(ctx.spec.name, now=ctx.now)

    def build(self, ctx: ProvisionContext) -> None:
        cert, key = ctx.ca()
        folder = ctx.workspace / CA_FOLDER
        folder.mkdir(mode=0o700)
        (folder / CA_CERT_FILE).write_text(certificate_pem(cert))
        write_private_file(folder / CA_KEY_FILE, private_key_pem(key))
        (folder / PROJECT_FILE).write_text(PROJECT_HEADER + dump_project(ctx.spec), encoding="utf-8")

    def finalize(self, ctx: ProvisionContext) -> None:
        (ctx.workspace / CA_FOLDER / ISSUED_FILE).write_text(issued_json(ctx.issued))


class KitBuilder:
    """Issues a certificate for the orchestrator and each participant and writes their kits."""

    def initialize(self, ctx: ProvisionContext) -> None:
        pass

    def build(self, ctx: ProvisionContext) -> None:
        spec = ctx.spec
        orchestrator = spec.orchestrator
        hosts = [orchestrator.host, "localhost", "127.0.0.1"]
        ca_cert, ca_key = ctx.ca()
        ctx.issued.append(
            write_participant_kit(
                ctx.workspace,
                spec,
                Identity(name=orchestrator.name, org=spec.name, role=Role.ORCHESTRATOR),
                ca_cert,
                ca_key,
                valid_days=spec.certificate_days,
                now=ctx.now,
                dns_names=[h for h in hosts if not is_ip_address(h)],
                ip_addresses=[h for h in hosts if is_ip_address(h)],
                listen_host=orchestrator.host if is_ip_address(orchestrator.host) else "0.0.0.0",
                listen_port=orchestrator.port,
            )
        )
        for participant in spec.participants:
            served = [participant.host, "localhost", "127.0.0.1"] if participant.host else []
            ctx.issued.append(
                write_participant_kit(
                    ctx.workspace,
                    spec,
                    identity_of_participant(participant),
                    ca_cert,
                    ca_key,
                    valid_days=spec.certificate_days_of(participant),
                    now=ctx.now,
                    authorization=participant.authorization,
                    dns_names=sorted({h for h in served if not is_ip_address(h)}),
                    ip_addresses=sorted({h for h in served if is_ip_address(h)}),
                    listen_host=participant.host,
                    listen_port=participant.port,
                )
            )

    def finalize(self, ctx: ProvisionContext) -> None:
        # Each kit must load exactly as its participant will load it, before any of them is handed out.
        for record in ctx.issued:
            load_kit(ctx.workspace / record.kit)


class ArchiveBuilder:
    """Replaces each gateway's and user's kit folder by a password-protected `NAME.kit` archive.

    It comes before KitBuilder, so it finalizes after KitBuilder has checked every kit. The orchestrator's
    kit stays a folder: the project admin, who holds the password anyway, runs the orchestrator."""

    def __init__(self, password: bytes) -> None:
        self.password = password

    def initialize(self, ctx: ProvisionContext) -> None:
        check_archive_password(self.password)

    def build(self, ctx: ProvisionContext) -> None:
        pass

    def finalize(self, ctx: ProvisionContext) -> None:
        ctx.issued = [
            record
            if record.role == Role.ORCHESTRATOR.value
            else archive_kit(ctx.workspace, record, self.password)
            for record in ctx.issued
        ]


def default_builders(archive_password: bytes | None = None) -> list[Builder]:
    if archive_password is None:
        return [RootCABuilder(), KitBuilder()]
    return [RootCABuilder(), ArchiveBuilder(archive_password), KitBuilder()]


def provision(
    spec: ProjectSpec,
    out_dir: Path,
    *,
    now: datetime | None = None,
    builders: Sequence[Builder] | None = None,
    archive_password: bytes | None = None,
) -> list[Path]:
    """Write the root CA and every kit of `spec` into `out_dir`, all or nothing. Returns the kits (folders,
    or `.kit` archives of the gateways and users when `archive_password` is given)."""
    if builders is not None and archive_password is not None:
        raise ValueError("pass either builders or archive_password; add an ArchiveBuilder to your builders")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(
            f"output folder {out_dir} already exists and is not empty; provisioning never overwrites kits, "
            "so name a new folder"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    ctx = ProvisionContext(spec=spec, workspace=workspace, now=now or utcnow())
    steps = list(default_builders(archive_password) if builders is None else builders)
    try:
        for builder in steps:
            builder.initialize(ctx)
        for builder in steps:
            builder.build(ctx)
        for builder in reversed(steps):
            builder.finalize(ctx)
        _promote(workspace, out_dir)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return [out_dir / record.kit for record in ctx.issued]


def identity_of_participant(participant: ParticipantSpec) -> Identity:
    return Identity(name=participant.name, org=participant.org, role=participant.role)


def archive_kit(parent: Path, record: IssuedCertificate, password: bytes) -> IssuedCertificate:
    """Replace the kit folder `parent/<record.kit>` by the archive `parent/<record.kit>.kit`."""
    archive = f"{record.kit}{ARCHIVE_SUFFIX}"
    if (parent / archive).exists():
        raise InvalidInput(
            f"cannot archive the kit of {record.name}: {archive} is also a participant's name; rename one"
        )
    write_kit_archive(parent / record.kit, parent / archive, password)
    shutil.rmtree(parent / record.kit)
    return record.model_copy(update={"kit": archive})


def write_participant_kit(
    parent: Path,
    spec: ProjectSpec,
    identity: Identity,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    valid_days: int,
    now: datetime,
    authorization: dict[str, object] | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    listen_host: str | None = None,
    listen_port: int | None = None,
) -> IssuedCertificate:
    """Issue `identity` a certificate and write its kit to `parent/<name>`. Returns what was issued."""
    key = generate_key()
    cert = issue_certificate(
        ca_cert,
        ca_key,
        identity,
        key.public_key(),
        valid_days=valid_days,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        now=now,
    )
    config = KitConfig(
        project=spec.name,
        name=identity.name,
        org=identity.org,
        role=identity.role.value,
        kind=identity.kind.value,
        orchestrator_url=spec.orchestrator.url,
        listen_host=listen_host,
        listen_port=listen_port,
    )
    write_kit(
        parent / identity.name,
        config,
        cert,
        key,
        ca_cert,
        start_script(config),
        ca_key,
        authorization=None if authorization is None else authorization_yaml(authorization),
    )
    return IssuedCertificate.of(
        cert, name=identity.name, org=identity.org, role=identity.role.value, kit=identity.name
    )


def _promote(workspace: Path, out_dir: Path) -> None:
    if out_dir.exists():
        try:
            out_dir.rmdir()
        except OSError as exc:
            raise InvalidInput(
                f"output folder {out_dir} was filled while provisioning ran; name a new folder"
            ) from exc
    os.rename(workspace, out_dir)


def start_script(config: KitConfig) -> str:
    """The kit's `start.sh`. Names reach here validated (letters, digits, `.`, `_`, `@`, `-`), so they are
    safe inside the script."""
    kind = ParticipantKind(config.kind)
    who = f"{config.name} ({config.role}, {config.org}) in project {config.project}"
    if kind is ParticipantKind.ORCHESTRATOR:
        return (
            "#!/bin/sh\n"
            f"# Starts the orchestrator {who}.\n"
            'exec custos orchestrator start --kit "$(dirname "$0")" "$@"\n'
        )
    if kind is ParticipantKind.GATEWAY:
        return (
            "#!/bin/sh\n"
            f"# Starts the gateway {who}. Pass the datasets file its custodian wrote.\n"
            'exec custos gateway start --kit "$(dirname "$0")" --data "${1:?usage: start.sh DATASETS.yaml}"\n'
        )
    return (
        "#!/bin/sh\n"
        f"# Startup kit of {who}.\n"
        'kit="$(cd "$(dirname "$0")" && pwd)"\n'
        "cat <<EOF\n"
        f"This is the startup kit of {who}.\n"
        "Users do not start a service: pass this folder to the custos CLI with --kit, for example\n"
        "\n"
        '  custos dataset list --kit "$kit"\n'
        '  custos job status --kit "$kit" JOB_ID\n'
        "\n"
        f"Keep key.pem private: whoever holds it can act as {config.name}.\n"
        "EOF\n"
    )
