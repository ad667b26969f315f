"""Signed approvals of custom code: a custodian binds exact code to datasets, and gateways check it.

A custodian (an org admin of a dataset's org) approves a code request by signing a `CodeApproval`
with the key of their kit: the code's digest, function, parameters, output type, datasets and author.
The orchestrator relays the signed approvals with every task of the code's job. A gateway runs the
code only when `check_code_approved` finds, among them, one it can verify that:

- is signed by a certificate of the project's CA, valid and not revoked, of an org admin of the
  gateway's own org, who is not the code's author;
- names this dataset, this author, function, parameters and output type;
- carries the digest that the gateway computes itself from the source (or the package's archive) it
  was handed.

So neither the orchestrator nor anyone with its database can run code a custodian did not approve,
changed code, or approved code on another dataset, with other parameters or for another author.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.digest import json_digest
from custos.core.errors import AuthenticationFailed, PolicyDenied
from custos.core.identity import Identity, Role
from custos.core.wire import (
    CodeApproval,
    CodeRequestDetail,
    CustomCodeTask,
    SignedCodeApproval,
    code_approval_message,
)
from custos.pki.certs import certificate_pem, identity_of, load_certificate_pem
from custos.pki.verify import sign, verify_signature
from custos.policy.signing import CertificateCheck


class ApprovalRefused(PolicyDenied):
    """A code approval that must not be used; the message names why."""


def approval_for(request: CodeRequestDetail, now: datetime) -> CodeApproval:
    """The approval of `request` as its reviewer saw it: the digest is recomputed from the source (or
    the package's archive) shown."""
    digest = request.code().computed_digest()
    if not hmac.compare_digest(digest, request.digest):
        raise ApprovalRefused(
            f"code request {request.id} claims digest {request.digest}, but its code has digest {digest}"
        )
    return CodeApproval(
        request_id=request.id,
        digest=digest,
        function=request.function,
        params_digest=json_digest(request.params),
        output=request.output,
        datasets=list(request.datasets),
        author=request.author,
        author_org=request.org,
        approved_at=now.astimezone(UTC),
    )


def sign_code_approval(
    approval: CodeApproval, *, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
) -> SignedCodeApproval:
    signer = identity_of(certificate)
    if signer.role is not Role.ORG_ADMIN:
        raise ApprovalRefused(
            f"{signer.name} is a {signer.role.value}; only an org_admin of a dataset's org approves code"
        )
    signature = sign(key, code_approval_message(approval))
    return SignedCodeApproval(
        approval=approval,
        signer_certificate_pem=certificate_pem(certificate),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def verify_code_approval(signed: SignedCodeApproval, check_certificate: CertificateCheck) -> Identity:
    """The signer of `signed` once its certificate and signature verify; the signer is an org admin
    and not the code's author. Raises ApprovalRefused naming why."""
    try:
        cert = load_certificate_pem(signed.signer_certificate_pem)
        signer = check_certificate(cert)
    except AuthenticationFailed as exc:
        raise ApprovalRefused(f"the approval's signer is refused: {exc.message}") from exc
    if signer.role is not Role.ORG_ADMIN:
        raise ApprovalRefused(
            f"the approval is signed by {signer.name}, a {signer.role.value}, not an org_admin"
        )
    if signer.name.casefold() == signed.approval.author.casefold():
        raise ApprovalRefused(
            f"the approval is signed by {signer.name}, the code's author: authors never review"
        )
    try:
        signature = base64.b64decode(signed.signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ApprovalRefused("the approval's signature is not base64") from exc
    try:
        verify_signature(cert, code_approval_message(signed.approval), signature)
    except AuthenticationFailed as exc:
        raise ApprovalRefused(
            f"the approval does not match its signature: it was changed after {signer.name} signed it"
        ) from exc
    return signer


def check_code_approved(
    code: CustomCodeTask,
    *,
    dataset: str,
    site_org: str,
    author: str,
    author_org: str,
    params: Mapping[str, Any],
    check_certificate: CertificateCheck,
) -> Identity:
    """Raise ApprovalRefused unless one of `code.approvals` approves running exactly `code` with
    `params` by `author` on `dataset` (gateway/name), signed by an org admin of `site_org`. Returns
    the approving custodian."""
    digest = code.computed_digest()
    reasons: list[str] = []
    for signed in code.approvals:
        try:
            signer = verify_code_approval(signed, check_certificate)
        except ApprovalRefused as exc:
            reasons.append(exc.message)
            continue
        if signer.org.casefold() != site_org.casefold():
            continue  # another org's custodian approved it for their own datasets
        problem = _mismatch(signed.approval, code, digest, dataset, author, author_org, params)
        if problem is None:
            return signer
        reasons.append(f"{signer.name}'s approval {problem}")
    if not reasons:
        raise ApprovalRefused(
            f"no custodian of {site_org} approved code request {code.request_id} for {dataset}"
        )
    raise ApprovalRefused(
        f"code request {code.request_id} is not approved for {dataset}: {'; '.join(reasons)}"
    )


def _mismatch(
    approval: CodeApproval,
    code: CustomCodeTask,
    digest: str,
    dataset: str,
    author: str,
    author_org: str,
    params: Mapping[str, Any],
) -> str | None:
    if not hmac.compare_digest(approval.digest, digest):
        return (
            f"is for code with digest {approval.digest}, but the code sent has digest {digest}: "
            "changed code needs a new review"
        )
    checks: Sequence[tuple[bool, str]] = (
        (approval.request_id == code.request_id, f"is for code request {approval.request_id}"),
        (dataset in approval.datasets, f"does not name {dataset}"),
        (approval.function == code.function, f"is for function {approval.function}"),
        (approval.output == code.output, f"declares output {approval.output}"),
        (
            approval.author.casefold() == author.casefold()
            and approval.author_org.casefold() == author_org.casefold(),
            f"is for {approval.author} of {approval.author_org}",
        ),
        (
            hmac.compare_digest(approval.params_digest, json_digest(dict(params))),
            "is for other parameters",
        ),
    )
    return next((why for ok, why in checks if not ok), None)
