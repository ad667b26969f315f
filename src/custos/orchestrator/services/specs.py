"""Compute specs: validated against the published policies at create and at activate; activation
asks every named gateway to validate the spec again against its own copy of the policy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import InvalidInput, NotFound, PermissionDenied
from custos.core.identity import Identity, ParticipantKind
from custos.core.ids import new_id
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.schema import DatasetSchema
from custos.core.states import SPEC_MACHINE, SpecState
from custos.core.wire import Resources, SpecCreate, SpecPublic, TaskKind
from custos.orchestrator.notifier import notify_after_commit
from custos.orchestrator.services.access import can_see, check_resource
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.tasks import new_task
from custos.orchestrator.tables import ComputeSpec, Model
from custos.policy import check_access
from custos.policy.permissions import Resource


def spec_public(row: ComputeSpec) -> SpecPublic:
    return SpecPublic(
        id=row.id,
        name=row.name,
        model=row.model,
        datasets=row.datasets,
        columns=row.columns,
        resources=Resources.model_validate(row.resources),
        state=row.state,
        reason=row.reason,
        owner=row.owner,
        org=row.org,
        created_at=row.created_at,
    )


def check_user(caller: Identity) -> None:
    if caller.kind is not ParticipantKind.USER:
        raise PermissionDenied("only users may manage compute specs and jobs")


class SpecService:
    def __init__(self, datasets: DatasetService, clock: Clock, audit: AuditTrail) -> None:
        self._audit = audit
        self._datasets = datasets
        self._clock = clock

    def _check_against_policies(
        self, session: Session, who: Identity, row_model: str, datasets: list[str], columns: list[str]
    ) -> None:
        model = parse_model_ref(row_model)
        for ref in datasets:
            ds = self._datasets.get_row(session, ref)
            schema = DatasetSchema.model_validate(ds.schema_json)
            for column in columns:
                schema.column(column)
            check_access(
                self._datasets.policy(session, ds.id),
                ds.id,
                who.name,
                who.org,
                model.name,
                model.version,
                columns,
            )

    def create(self, session: Session, caller: Identity, body: SpecCreate) -> SpecPublic:
        check_user(caller)
        model = parse_model_ref(body.model)
        if session.get(Model, (model.name, model.version)) is None:
            known = [f"{m.name}@{m.version}" for m in session.execute(select(Model)).scalars()]
            raise NotFound(f"unknown model {model}; available: {', '.join(sorted(known))}")
        refs = [parse_dataset_ref(d) for d in body.datasets]
        gateways = [r.gateway for r in refs]
        if len(set(gateways)) != len(gateways):
            raise InvalidInput("a compute spec may name at most one dataset per gateway")
        if len(set(body.columns)) != len(body.columns):
            raise InvalidInput("columns: each column may be listed once")
        datasets = [str(r) for r in refs]
        self._check_against_policies(session, caller, str(model), datasets, body.columns)
        now = self._clock()
        row = ComputeSpec(
            id=new_id("spec"),
            name=body.name,
            model=str(model),
            datasets=datasets,
            columns=list(body.columns),
            resources=body.resources.model_dump(),
            state=SpecState.CREATED,
            reason=None,
            owner=caller.name,
            org=caller.org,
            owner_role=caller.role.value,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        self._audit.append(
            user=caller.name, action="spec_created", message=f"{row.id}: {row.model} on {', '.join(datasets)}"
        )
        return spec_public(row)

    def get_row(
        self, session: Session, caller: Identity, spec_id: str, operation: str = "spec.view"
    ) -> ComputeSpec:
        row = session.get(ComputeSpec, spec_id)
        if row is None:
            raise NotFound(f"unknown compute spec {spec_id}")
        check_resource(operation, caller, Resource(row.owner, row.org), f"unknown compute spec {spec_id}")
        return row

    def get(self, session: Session, caller: Identity, spec_id: str) -> SpecPublic:
        return spec_public(self.get_row(session, caller, spec_id))

    def list(self, session: Session, caller: Identity) -> list[SpecPublic]:
        rows = session.execute(select(ComputeSpec).order_by(ComputeSpec.created_at)).scalars()
        return [spec_public(r) for r in rows if can_see("spec.view", caller, Resource(r.owner, r.org))]

    def activate(self, session: Session, caller: Identity, spec_id: str) -> SpecPublic:
        check_user(caller)
        row = self.get_row(session, caller, spec_id, "spec.manage")
        SPEC_MACHINE.move(row, SpecState.ACTIVATING)  # a refusal below rolls it back
        owner = Identity(row.owner, row.org, caller.role) if row.owner != caller.name else caller
        self._check_against_policies(session, owner, row.model, row.datasets, row.columns)
        row.updated_at = self._clock()
        gateways = []
        for ref in row.datasets:
            parsed = parse_dataset_ref(ref)
            session.add(
                new_task(TaskKind.PREPARE, row.id, None, parsed.gateway, parsed.dataset, 0, {}, self._clock())
            )
            gateways.append(parsed.gateway)
        session.flush()
        notify_after_commit(session, gateways)
        self._audit.append(user=caller.name, action="spec_activating", message=row.id)
        return spec_public(row)

    def deactivate(self, session: Session, caller: Identity, spec_id: str) -> SpecPublic:
        check_user(caller)
        row = self.get_row(session, caller, spec_id, "spec.manage")
        # No gateway keeps a spec's state, so there is nothing to wait for: it passes through
        # deactivating at once.
        SPEC_MACHINE.move(row, SpecState.DEACTIVATING)
        SPEC_MACHINE.move(row, SpecState.DEACTIVATED)
        row.updated_at = self._clock()
        self._audit.append(user=caller.name, action="spec_deactivated", message=row.id)
        return spec_public(row)
