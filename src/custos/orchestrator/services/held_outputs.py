"""A reviewer's views of the outputs a release holds: the list, one output with its content, and the
bytes (blobs) an output refers to — a file custom code returned, a model's weights.

A reviewer sees what they review: every output of a pooled result (a model's aggregates, every org's),
and of a per-site result (custom code's, a package's) only the outputs of their own org's sites; the
others are their own reviewers' (`releases.own_parts`). An output or blob outside that answers 404, as
an unknown one does, so names and digests cannot be probed. Every view and every download is appended
to the audit trail under the reviewer's name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.computations.custom.files import FILE_KIND
from custos.core.blobs import refs_in
from custos.core.errors import NotFound
from custos.core.identity import Identity
from custos.core.wire import HELD_RESULT, BlobPublic, HeldOutput, HeldOutputKind, HeldOutputView
from custos.orchestrator.services.blobs import JobBlobs
from custos.orchestrator.services.releases import ReleaseService, org_of, own_parts
from custos.orchestrator.tables import Job, Release, Result

_KINDS: dict[str, HeldOutputKind] = {"table": "table", "json": "json", FILE_KIND: "file"}


def _blobs(output: Any) -> list[BlobPublic]:
    return [BlobPublic(sha256=digest, size=size) for digest, size in sorted(refs_in(output).items())]


class HeldOutputService:
    def __init__(self, releases: ReleaseService, blobs: JobBlobs, audit: AuditTrail) -> None:
        self._releases = releases
        self._blobs = blobs
        self._audit = audit

    def _shown(
        self, session: Session, caller: Identity, release_id: str
    ) -> tuple[Release, Job, dict[str, HeldOutputView]]:
        """The release, its job, and the outputs `caller` may see in it, by name."""
        release, job = self._releases.reviewable(session, caller, release_id)
        row = session.get(Result, job.id)
        assert row is not None  # a release holds a stored result
        result, _ = own_parts(session, caller, release, job, dict(row.result))
        sites = result.get("sites")
        if not isinstance(sites, dict):
            pooled = HeldOutputView(
                release_id=release.id, name=HELD_RESULT, dataset=None, org=None, kind="result",
                blobs=_blobs(result), output=result,
            )  # fmt: skip
            return release, job, {HELD_RESULT: pooled}
        views = {}
        for ref, output in sorted(sites.items()):
            encoded = output if isinstance(output, dict) else {"type": "json", "value": output}
            flags = encoded.get("flags")
            views[ref] = HeldOutputView(
                release_id=release.id,
                name=ref,
                dataset=ref,
                org=org_of(session, ref),
                kind=_KINDS.get(str(encoded.get("type")), "json"),
                file_type=encoded.get("file_type") if encoded.get("type") == FILE_KIND else None,
                blobs=_blobs(encoded),
                flags=len(flags) if isinstance(flags, list) else 0,
                output=encoded,
            )
        return release, job, views

    def list(self, session: Session, caller: Identity, release_id: str) -> list[HeldOutput]:
        """The outputs of the release that `caller` reviews, without their content."""
        _, _, views = self._shown(session, caller, release_id)
        return [
            HeldOutput.model_validate(v.model_dump(exclude={"release_id", "output"})) for v in views.values()
        ]

    def get(self, session: Session, caller: Identity, release_id: str, name: str) -> HeldOutputView:
        """One output with its content; audited."""
        release, job, views = self._shown(session, caller, release_id)
        view = views.get(name)
        if view is None:
            raise NotFound(f"release {release.id} has no output {name} that you review")
        self._audit.append(
            user=caller.name, action="release_output_viewed", job=job.id, message=f"{release.id}: {name}"
        )
        return view

    def blob(self, session: Session, caller: Identity, release_id: str, digest: str) -> bytes:
        """Bytes one of the outputs `caller` may see refers to; audited."""
        release, job, views = self._shown(session, caller, release_id)
        owner = next((v for v in views.values() if any(b.sha256 == digest for b in v.blobs)), None)
        if owner is None:
            raise NotFound(f"release {release.id} has no blob {digest} in an output that you review")
        return self._read(session, caller, release, job, owner, digest)

    def file(self, session: Session, caller: Identity, release_id: str, name: str) -> tuple[str, bytes]:
        """The type and bytes of the held file output `name` (custom code's `file:TYPE`); audited.
        NotFound for an output `caller` does not review and for one that is not a file."""
        release, job, views = self._shown(session, caller, release_id)
        view = views.get(name)
        if view is None or view.kind != "file" or view.file_type is None or len(view.blobs) != 1:
            raise NotFound(f"release {release.id} has no file output {name} that you review")
        return view.file_type, self._read(session, caller, release, job, view, view.blobs[0].sha256)

    def _read(
        self,
        session: Session,
        caller: Identity,
        release: Release,
        job: Job,
        owner: HeldOutputView,
        digest: str,
    ) -> bytes:
        data = self._blobs.read(session, job.id, digest)
        self._audit.append(
            user=caller.name,
            action="release_blob_fetched",
            job=job.id,
            message=f"{release.id}: {owner.name}, sha256 {digest} ({len(data)} bytes)",
        )
        return data
