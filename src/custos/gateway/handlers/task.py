"""What every kind of task shares at the gateway: the outcome it ends in, its kind (where its model
comes from), the site's rules each kind is checked against, the checked task that each kind's checks
hand to the common steps, the authorization and policy check shared by built-in models and published
packages, and the one function through which the handlers write to the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from custos.audit import AuditTrail
from custos.computations.base import FederatedModel
from custos.computations.custom.disclosure import DEFAULT_CAPS, OutputCaps
from custos.computations.custom.model import CustomModel
from custos.computations.registry import get_model, is_builtin
from custos.core.errors import PolicyDenied
from custos.core.refs import parse_model_ref
from custos.core.wire import ConfidentialTerms, TaskAssignment, TaskKind
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy, Right, SiteAuthorization, check_access, check_authorization
from custos.policy.signing import CertificateCheck


@dataclass(frozen=True)
class Outcome:
    """How a task ended. `reservation` names the privacy budget reservation that the run used and
    that the agent commits once this outcome is journaled (never before: see `compute`)."""

    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None
    reservation: str | None = None


# The right of the site's authorization that each kind of task needs.
TASK_RIGHTS: dict[TaskKind, Right] = {
    TaskKind.COMPUTE: Right.SUBMIT_JOB,
    TaskKind.PREPARE: Right.ACTIVATE_SPEC,
}


class ModelSource(StrEnum):
    """The kind of a task, by where the model it runs comes from; each kind has its own checks."""

    BUILTIN = "builtin"  # a model that ships with Custos (custos.computations)
    CUSTOM = "custom"  # reviewed custom code that the task carries with its approvals
    PACKAGE = "package"  # a package published in the orchestrator's registry


def model_source(task: TaskAssignment) -> ModelSource:
    """The kind of `task`: model `custom` (any version) is custom code; a model that does not ship
    with Custos is a published package."""
    if parse_model_ref(task.model).name == CustomModel.name:
        return ModelSource.CUSTOM
    if not is_builtin(task.model):
        return ModelSource.PACKAGE
    return ModelSource.BUILTIN


@dataclass(frozen=True)
class SiteRules:
    """What every task is checked against here: this gateway's name and org, its site authorization,
    and the check of the certificates that sign approvals of custom code."""

    gateway: str
    org: str
    authorization: SiteAuthorization
    check_certificate: CertificateCheck


@dataclass(frozen=True)
class CheckedTask:
    """A task that passed the checks of its kind. `run` is the task as the sandbox runs it (a
    package's is rewritten for its runner), with `model` reading `columns`. `audit` is the event
    (action, message) that records the kind's own checks. Code that is not the custodian's names the
    `output` it must return, within `caps`, and its `sources` by the names its tracebacks give them:
    its failures leave as `custos.computations.failures` reports them."""

    run: TaskAssignment
    model: FederatedModel
    columns: list[str]
    audit: tuple[str, str] | None = None
    output: str | None = None
    caps: OutputCaps = DEFAULT_CAPS
    sources: Mapping[str, str] | None = None
    # A confidential package: its key is requested for the runtime just before the round runs.
    confidential: ConfidentialRun | None = None


@dataclass(frozen=True)
class ConfidentialRun:
    terms: ConfidentialTerms
    digest: str
    owner_org: str  # the signer's: only a key broker of this org is sent evidence


def check_task(
    task: TaskAssignment,
    dataset: SiteDataset,
    gateway: str,
    *,
    site_org: str,
    authorization: SiteAuthorization,
    policy: AssetPolicy | None,
    model: FederatedModel | None = None,
) -> tuple[FederatedModel, list[str]]:
    """Raise unless this site's authorization and its verified `policy` allow the task. Returns the
    model (a built-in, or the published package given as `model`) and the columns it reads."""
    who = task.submitter
    try:
        check_authorization(
            authorization, site_org=site_org, user=who.name, org=who.org, role=who.role,
            right=TASK_RIGHTS[task.kind],
        )  # fmt: skip
    except PolicyDenied as exc:
        raise PolicyDenied(f"site {gateway} refuses {who.name} of {who.org}: {exc.message}") from None
    ref = parse_model_ref(task.model)
    model = model or get_model(ref.name, ref.version)
    columns = list(task.columns)
    if task.kind is TaskKind.COMPUTE:
        model.validate_params(task.params, dataset.schema, task.columns)
        columns = model.columns_used(task.params)
        outside = sorted(set(columns) - set(task.columns))
        if outside:
            raise PolicyDenied(
                f"the job reads column(s) {', '.join(outside)} that its compute spec does not name"
            )
    else:
        for column in columns:
            dataset.schema.column(column)
    check_access(policy, f"{gateway}/{task.dataset}", who.name, who.org, ref.name, ref.version, columns)
    return model, columns


def audit_step(
    trail: AuditTrail, task: TaskAssignment, action: str, message: str, *, peer: str | None = None
) -> str:
    """Append one event about `task` to the gateway's audit trail, under its submitter and job, and
    return the event's id."""
    return trail.append(user=task.submitter.name, action=action, job=task.job_id, peer=peer, message=message)
