"""Provisioning: from a project file to a root CA and one startup kit per participant.

Built the way NVIDIA FLARE's lighter builds: a list of builders, each initialized, then each run, then
each finalized in reverse order. All of it is written into a temporary folder next to the output folder,
which is renamed into place only when every builder succeeded, so a failure leaves nothing half-written.

    out/ca/rootCA.pem, out/ca/rootCA.key   the CA key stays with the project admin, in no kit
    out/<orchestrator.name>/               the orchestrator's kit
    out/<participant name>/                one kit per gateway and user
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
from custos.pki.certs import certificate_pem, create_root_ca, generate_key, issue_certificate, private_key_pem
from custos.pki.kit import KitConfig, load_kit, write_kit, write_private_file
from custos.pki.project import ProjectSpec, is_ip_address

CA_FOLDER = "ca"
CA_CERT_FILE = "rootCA.pem"
CA_KEY_FILE = "rootCA.key"


@dataclass
class ProvisionContext:
    """What the builders share. `workspace` is the temporary folder that becomes the output folder."""

    spec: ProjectSpec
    workspace: Path
    now: datetime
    ca_certificate: x509.Certificate | None = None
    ca_key: ec.EllipticCurvePrivateKey | None = None
    kit_names: list[str] = field(default_factory=list)

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
    """Creates the project's root CA and writes it, with its key, to `ca/`."""

    def initialize(self, ctx: ProvisionContext) -> None:
        ctx.ca_certificate, ctx.ca_key = create_root_ca(ctx.spec.name, now=ctx.now)

    def build(self, ctx: ProvisionContext) -> None:
        cert, key = ctx.ca()
        folder = ctx.workspace / CA_FOLDER
        folder.mkdir(mode=0o700)
        (folder / CA_CERT_FILE).write_text(certificate_pem(cert))
        write_private_file(folder / CA_KEY_FILE, private_key_pem(key))

    def finalize(self, ctx: ProvisionContext) -> None:
        pass


class KitBuilder:
    """Issues a certificate for the orchestrator and each participant and writes their kits."""

    def initialize(self, ctx: ProvisionContext) -> None:
        pass

    def build(self, ctx: ProvisionContext) -> None:
        spec = ctx.spec
        orchestrator = spec.orchestrator
        hosts = [orchestrator.host, "localhost", "127.0.0.1"]
        self._write(
            ctx,
            Identity(name=orchestrator.name, org=spec.name, role=Role.ORCHESTRATOR),
            dns_names=[h for h in hosts if not is_ip_address(h)],
            ip_addresses=[h for h in hosts if is_ip_address(h)],
            listen_host=orchestrator.host if is_ip_address(orchestrator.host) else "0.0.0.0",
            listen_port=orchestrator.port,
        )
        for participant in spec.participants:
            self._write(ctx, Identity(name=participant.name, org=participant.org, role=participant.role))

    def finalize(self, ctx: ProvisionContext) -> None:
        # Each kit must load exactly as its participant will load it, before any of them is handed out.
        for name in ctx.kit_names:
            load_kit(ctx.workspace / name)

    def _write(
        self,
        ctx: ProvisionContext,
        identity: Identity,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        listen_host: str | None = None,
        listen_port: int | None = None,
    ) -> None:
        ca_cert, ca_key = ctx.ca()
        key = generate_key()
        cert = issue_certificate(
            ca_cert,
            ca_key,
            identity,
            key.public_key(),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            now=ctx.now,
        )
        config = KitConfig(
            project=ctx.spec.name,
            name=identity.name,
            org=identity.org,
            role=identity.role.value,
            kind=identity.kind.value,
            orchestrator_url=ctx.spec.orchestrator.url,
            listen_host=listen_host,
            listen_port=listen_port,
        )
        write_kit(ctx.workspace / identity.name, config, cert, key, ca_cert, start_script(config), ca_key)
        ctx.kit_names.append(identity.name)


def default_builders() -> list[Builder]:
    return [RootCABuilder(), KitBuilder()]


def provision(
    spec: ProjectSpec,
    out_dir: Path,
    *,
    now: datetime | None = None,
    builders: Sequence[Builder] | None = None,
) -> list[Path]:
    """Write the root CA and every kit of `spec` into `out_dir`, all or nothing. Returns the kit folders."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(
            f"output folder {out_dir} already exists and is not empty; provisioning never overwrites kits, "
            "so name a new folder"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    ctx = ProvisionContext(spec=spec, workspace=workspace, now=now or utcnow())
    steps = list(default_builders() if builders is None else builders)
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
    return [out_dir / name for name in ctx.kit_names]


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
