"""The checks a job passes before anything is recorded: its spec (the caller's, and active), its model,
its parameters against each dataset's schema and the spec's columns, and each dataset's signed policy.
Both the submission of a job and the preview of its cost run them, so that a job the orchestrator would
refuse is refused by the preview with the same message."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from custos.computations.base import FederatedModel, JobDataset, check_job, policy_privacy
from custos.core.errors import Conflict, NotFound
from custos.core.identity import Identity
from custos.core.refs import parse_model_ref
from custos.core.schema import DatasetSchema
from custos.core.states import SpecState
from custos.core.wire import JobCreate
from custos.orchestrator.services.access import check_resource
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.models import resolve_model
from custos.orchestrator.services.specs import check_user
from custos.orchestrator.tables import ComputeSpec
from custos.policy import check_access
from custos.policy.permissions import Resource


@dataclass(frozen=True)
class CheckedJob:
    """A job that passed: its spec, model, and each dataset's schema and privacy controls by id."""

    spec: ComputeSpec
    model: FederatedModel
    datasets: dict[str, JobDataset]


def check_submission(
    session: Session, datasets: DatasetService, caller: Identity, body: JobCreate
) -> CheckedJob:
    """Run every check of a job submission; raises the first that fails (NotFound, Conflict,
    PermissionDenied, InvalidInput)."""
    check_user(caller)
    spec = session.get(ComputeSpec, body.spec_id)
    if spec is None:
        raise NotFound(f"unknown compute spec {body.spec_id}")
    check_resource("job.submit", caller, Resource(spec.owner, spec.org), f"unknown compute spec {spec.id}")
    if spec.state != SpecState.ACTIVE:
        raise Conflict(f"compute spec {spec.id} is {spec.state}; jobs need an active spec")
    ref = parse_model_ref(spec.model)
    model = resolve_model(session, ref.name, ref.version)
    checked: dict[str, JobDataset] = {}
    for ds_ref in spec.datasets:
        ds = datasets.get_row(session, ds_ref)
        schema = DatasetSchema.model_validate(ds.schema_json)
        model.validate_params(body.params, schema, spec.columns)
        policy = datasets.policy(session, ds.id)
        check_access(
            policy, ds.id, caller.name, caller.org, ref.name, ref.version, model.columns_used(body.params)
        )
        assert policy is not None
        checked[ds.id] = JobDataset(schema, policy_privacy(policy))
    check_job(model, body.params, checked)
    return CheckedJob(spec, model, checked)
