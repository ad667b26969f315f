"""The model registry: built-in models, and signed packages that publishers upload.

A package is stored only after `verify_package` passes with the project's root CA and revocation
list, and only when the signer is the caller. A confidential package (sealed: ciphertext with its
owner's signed terms) is stored after `verify_sealed`; the orchestrator never holds its key. A
name@version is published once: the same archive again is a no-op, a different one is refused
(publish a new version), and built-in names are taken.
"""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.computations.base import FederatedModel
from custos.computations.package.model import PackageModel
from custos.computations.registry import BUILTINS, get_model
from custos.core.clock import Clock
from custos.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from custos.core.identity import Identity
from custos.core.refs import parse_model_ref
from custos.core.wire import (
    ConfidentialTerms,
    ModelArchive,
    ModelDetail,
    ModelKind,
    ModelPublic,
    ModelPublish,
    ModelSignature,
)
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.tables import Model, ModelPackage
from custos.policy.permissions import check_perform, permission_table
from custos.registry import (
    LIMITS,
    ModelManifest,
    PackageRefused,
    VerifiedPackage,
    VerifiedSealed,
    verify_package,
    verify_sealed,
)
from custos.registry.signature import CertificateCheck

BUILTIN_DESCRIPTIONS = {
    "stats": "Pooled summaries, frequency tables, histograms, quantiles",
    "glm": "Generalised linear models, fitted exactly by federated IRLS",
    "fedavg": "Binary classifiers trained with FedAvg, FedProx or FedAvgM",
}


class ModelService:
    def __init__(self, clock: Clock, trust: Trust, audit: AuditTrail) -> None:
        self._clock = clock
        self._trust = trust
        self._audit = audit

    def register_builtins(self, session: Session) -> None:
        """Make each built-in model a registry entry (at start; idempotent)."""
        for model in BUILTINS:  # by name and version: no model's module is imported at start
            description = BUILTIN_DESCRIPTIONS.get(model.name, "")
            row = session.get(Model, (model.name, model.version))
            if row is None:
                session.add(
                    Model(
                        name=model.name,
                        version=model.version,
                        kind=ModelKind.BUILTIN,
                        description=description,
                    )
                )
            elif row.kind == ModelKind.BUILTIN and row.description != description:
                row.description = description

    def publish(self, session: Session, caller: Identity, body: ModelPublish) -> ModelDetail:
        check_perform(permission_table(), "model.publish", caller)
        ref = parse_model_ref(f"{body.name}@{body.version}")
        data = _decode(body.archive_b64)
        signed = ModelSignature.model_validate(body.model_dump(exclude={"archive_b64", "confidential"}))
        check = self._trust_check(session)
        package: VerifiedPackage | VerifiedSealed
        try:
            if body.confidential is not None:
                package = verify_sealed(data, signed, body.confidential, check)
            else:
                package = verify_package(data, signed, check)
        except PackageRefused as exc:
            self._audit.append(user=caller.name, action="model_refused", message=f"{ref}: {exc.message}")
            raise
        if package.signer.name.casefold() != caller.name.casefold():
            raise PermissionDenied(
                f"{ref} is signed by {package.signer.name}; publish packages you signed with your own kit"
            )
        existing = session.get(Model, (ref.name, ref.version))
        if existing is not None:
            row = session.get(ModelPackage, (ref.name, ref.version))
            if row is not None and row.digest == package.digest:
                return _detail(existing, row)  # the same archive again: nothing to do
            taken = "a built-in model" if existing.kind == ModelKind.BUILTIN else "published"
            raise Conflict(f"{ref} is {taken} already; a published version never changes, publish a new one")
        manifest = package.manifest
        kind = ModelKind.PACKAGE if body.confidential is None else ModelKind.CONFIDENTIAL
        session.add(Model(name=ref.name, version=ref.version, kind=kind, description=manifest.description))
        row = ModelPackage(
            name=ref.name,
            version=ref.version,
            digest=package.digest,
            size=len(data),
            archive=data,
            manifest_json=manifest.model_dump(mode="json"),
            signer=package.signer.name,
            signer_org=package.signer.org,
            signer_certificate_pem=body.signer_certificate_pem,
            signature=body.signature,
            published_at=self._clock(),
            confidential_json=None
            if body.confidential is None
            else body.confidential.model_dump(mode="json"),
        )
        session.add(row)
        session.flush()
        self._audit.append(
            user=caller.name,
            action="model_published",
            message=f"{ref} {kind.value} sha256:{package.digest} ({len(data)} bytes)",
        )
        model = session.get(Model, (ref.name, ref.version))
        assert model is not None
        return _detail(model, row)

    def list(self, session: Session) -> list[ModelPublic]:
        rows = session.execute(select(Model).order_by(Model.name, Model.version)).scalars().all()
        packages = {(p.name, p.version): p for p in session.execute(select(ModelPackage)).scalars()}
        return [_public(r, packages.get((r.name, r.version))) for r in rows]

    def get(self, session: Session, ref: str) -> ModelDetail:
        model = self._model(session, ref)
        return _detail(model, session.get(ModelPackage, (model.name, model.version)))

    def archive(self, session: Session, ref: str) -> ModelArchive:
        model = self._model(session, ref)
        row = session.get(ModelPackage, (model.name, model.version))
        if row is None:
            raise NotFound(f"{ref} is a built-in model: it ships with Custos and has no archive")
        return ModelArchive(
            name=row.name,
            version=row.version,
            digest=row.digest,
            signer_certificate_pem=row.signer_certificate_pem,
            signature=row.signature,
            signer=row.signer,
            published_at=row.published_at,
            archive_b64=base64.b64encode(row.archive).decode("ascii"),
            confidential=_terms(row),
        )

    def _trust_check(self, session: Session) -> CertificateCheck:
        return lambda cert: self._trust.verify(session, cert)

    def _model(self, session: Session, ref: str) -> Model:
        parsed = parse_model_ref(ref)
        row = session.get(Model, (parsed.name, parsed.version))
        if row is None:
            known = session.execute(select(Model.name, Model.version).order_by(Model.name, Model.version))
            names = ", ".join(f"{n}@{v}" for n, v in known)
            raise NotFound(f"unknown model {parsed}; the registry has: {names or 'none'}")
        return row


def _terms(row: ModelPackage | None) -> ConfidentialTerms | None:
    if row is None or row.confidential_json is None:
        return None
    return ConfidentialTerms.model_validate(row.confidential_json)


def _decode(text: str) -> bytes:
    if len(text) > 4 * (LIMITS.max_archive_bytes // 3 + 1):
        raise InvalidInput(f"archive_b64 is longer than an archive of {LIMITS.max_archive_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput("archive_b64 is not base64") from exc


def _public(model: Model, row: ModelPackage | None) -> ModelPublic:
    return ModelPublic(
        name=model.name,
        version=model.version,
        kind=ModelKind(model.kind),
        description=model.description,
        digest=row.digest if row else None,
        size=row.size if row else None,
        signer=row.signer if row else None,
        signer_org=row.signer_org if row else None,
        published_at=row.published_at if row else None,
    )


def _detail(model: Model, row: ModelPackage | None) -> ModelDetail:
    public = _public(model, row)
    return ModelDetail(
        **public.model_dump(), manifest=row.manifest_json if row else None, confidential=_terms(row)
    )


def resolve_model(session: Session, name: str, version: str) -> FederatedModel:
    """A built-in model, or a published package as a model (its manifest as the orchestrator verified
    it on the way in). NotFound names what the registry has."""
    try:
        return get_model(name, version)
    except NotFound:
        row = session.get(ModelPackage, (name, version))
        if row is None:
            raise
        return PackageModel(ModelManifest.model_validate(row.manifest_json), row.digest)
