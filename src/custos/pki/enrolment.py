"""Adding a participant to a provisioned project: one new kit from the same CA, no other kit touched.

Like provisioning, the kit is built in a temporary folder and moved into place only when it loads
cleanly; then the saved project (`ca/project.yaml`) and the record of issued certificates are updated.
Names stay unique within a project, including names already revoked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from custos.core.clock import utcnow
from custos.core.errors import Conflict, InvalidInput
from custos.pki.archive import ARCHIVE_SUFFIX, check_archive_password
from custos.pki.authority import (
    CA_FOLDER,
    ISSUED_FILE,
    PROJECT_FILE,
    IssuedCertificate,
    issued_json,
    load_authority,
    locked,
    write_atomic,
)
from custos.pki.kit import load_kit
from custos.pki.project import MAX_PARTICIPANTS, RESERVED_NAMES, ParticipantSpec, ProjectSpec, dump_project
from custos.pki.provision import PROJECT_HEADER, archive_kit, identity_of_participant, write_participant_kit


def add_participant(
    out_dir: Path,
    participant: ParticipantSpec,
    *,
    now: datetime | None = None,
    archive_password: bytes | None = None,
) -> Path:
    """Issue one more kit from the CA in `out_dir/ca` and record the participant in the saved project.

    No existing kit is read or written. Returns the new kit folder (or `.kit` archive)."""
    if archive_password is not None:
        check_archive_password(archive_password)
    with locked(out_dir):
        authority = load_authority(out_dir)
        spec = authority.spec
        _check_new_name(out_dir, spec, participant, authority.issued_to(participant.name))
        if len(spec.participants) >= MAX_PARTICIPANTS:
            raise InvalidInput(f"project {spec.name} already has {MAX_PARTICIPANTS} participants, the most")
        workspace = Path(tempfile.mkdtemp(prefix=f".add-{participant.name}.", suffix=".partial", dir=out_dir))
        try:
            record = write_participant_kit(
                workspace,
                spec,
                identity_of_participant(participant),
                authority.certificate,
                authority.key,
                valid_days=spec.certificate_days_of(participant),
                now=now or utcnow(),
                authorization=participant.authorization,
            )
            load_kit(workspace / record.kit)
            if archive_password is not None:
                record = archive_kit(workspace, record, archive_password)
            _promote_addition(
                out_dir,
                workspace / record.kit,
                spec.model_copy(update={"participants": [*spec.participants, participant]}),
                [*authority.issued, record],
            )
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
    return out_dir / record.kit


def _check_new_name(
    out_dir: Path, spec: ProjectSpec, participant: ParticipantSpec, issued: IssuedCertificate | None
) -> None:
    name = participant.name
    taken_by = _holder_of(name, spec, issued)
    if taken_by is not None:
        raise Conflict(
            f"project {spec.name} already has a participant named {name!r} ({taken_by}); "
            "names are unique within a project, so pick another"
        )
    for path in (out_dir / name, out_dir / f"{name}{ARCHIVE_SUFFIX}"):
        if path.exists() or path.is_symlink():
            raise Conflict(f"{path} already exists; move it away or pick another name")


def _holder_of(name: str, spec: ProjectSpec, issued: IssuedCertificate | None) -> str | None:
    if name == spec.orchestrator.name:
        return "the orchestrator"
    if name in RESERVED_NAMES:
        return "reserved for the root CA folder"
    if issued is not None:
        revoked = ", revoked" if issued.revoked_at is not None else ""
        return f"{issued.role} of org {issued.org}{revoked}"
    if any(p.name == name for p in spec.participants):
        return "listed in ca/project.yaml"
    return None


def _promote_addition(out_dir: Path, kit: Path, spec: ProjectSpec, issued: list[IssuedCertificate]) -> None:
    """Move the new kit into place, then record it; undo the move should the records fail to write."""
    target = out_dir / kit.name
    folder = out_dir / CA_FOLDER
    old_project = (folder / PROJECT_FILE).read_bytes()
    os.rename(kit, target)
    try:
        write_atomic(folder / PROJECT_FILE, PROJECT_HEADER + dump_project(spec))
        write_atomic(folder / ISSUED_FILE, issued_json(issued))
    except BaseException:
        write_atomic(folder / PROJECT_FILE, old_project)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        raise
