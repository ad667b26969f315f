"""Signed asset policies: an org admin of the dataset's org signs, and every user of a policy verifies.

A policy is used only when all of this holds (`verify_policy`):
- the signer's certificate chains to the project's root CA, is within its validity and not revoked
  (the caller passes that check in, with its own root, clock and revocation list);
- the signer's role is `org_admin` and the signer's org is the org of the gateway holding the dataset;
- the signature verifies over the dataset reference, the issue time and the exact policy text;
- the policy text parses, and names the same dataset.
Each refusal is a PolicyRefused whose message names the reason.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.errors import AuthenticationFailed, CustosError, PolicyDenied
from custos.core.identity import Identity, Role
from custos.core.refs import parse_dataset_ref
from custos.core.wire import SignedPolicy, policy_message
from custos.pki.certs import certificate_pem, identity_of, load_certificate_pem
from custos.pki.verify import sign, verify_signature
from custos.policy.asset import AssetPolicy, load_policy

CertificateCheck = Callable[[x509.Certificate], Identity]


class PolicyRefused(PolicyDenied):
    """A signed policy that must not be used: bad signature, wrong signer, or older than one in use."""


def sign_policy(
    policy_yaml: str,
    dataset: str,
    *,
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    now: datetime,
) -> SignedPolicy:
    """Sign `policy_yaml` for `dataset` (`gateway/name`). The text must parse and name that dataset."""
    ref = parse_dataset_ref(dataset)
    signer = identity_of(certificate)
    if signer.role is not Role.ORG_ADMIN:
        raise PolicyRefused(
            f"{signer.name} is a {signer.role.value}; "
            "only an org_admin of the dataset's org may sign its policy"
        )
    policy = load_policy(policy_yaml, source=f"policy for {ref}")
    if policy.dataset != ref.dataset:
        raise PolicyRefused(
            f"the policy names dataset {policy.dataset!r} but is being signed for {ref}; "
            f"write `dataset: {ref.dataset}` in it"
        )
    issued_at = now.astimezone(UTC)
    signature = sign(key, policy_message(str(ref), issued_at, policy_yaml))
    return SignedPolicy(
        dataset=str(ref),
        policy_yaml=policy_yaml,
        issued_at=issued_at,
        signer_certificate_pem=certificate_pem(certificate),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def verify_policy(
    signed: SignedPolicy, *, dataset: str, dataset_org: str, check_certificate: CertificateCheck
) -> AssetPolicy:
    """The policy inside `signed`, once every check in the module docstring passes."""
    where = f"the policy for {dataset}"
    if signed.dataset != dataset:
        raise PolicyRefused(f"{where} was signed for another dataset ({signed.dataset})")
    try:
        cert = load_certificate_pem(signed.signer_certificate_pem)
        signer = check_certificate(cert)
    except AuthenticationFailed as exc:
        raise PolicyRefused(f"{where} is refused: its signer's {exc.message}") from exc
    if signer.role is not Role.ORG_ADMIN:
        raise PolicyRefused(
            f"{where} is signed by {signer.name}, a {signer.role.value}; only an org_admin may sign policies"
        )
    if signer.org.casefold() != dataset_org.casefold():
        raise PolicyRefused(
            f"{where} is signed by {signer.name} of {signer.org}; only an org_admin of {dataset_org}, "
            "the org that holds the dataset, may sign it"
        )
    try:
        signature = base64.b64decode(signed.signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise PolicyRefused(f"{where} has a signature that is not base64") from exc
    try:
        verify_signature(
            cert, policy_message(signed.dataset, signed.issued_at, signed.policy_yaml), signature
        )
    except AuthenticationFailed as exc:
        raise PolicyRefused(
            f"{where} does not match its signature: it was changed after {signer.name} signed it"
        ) from exc
    try:
        policy = load_policy(signed.policy_yaml, source=where)
    except CustosError as exc:
        raise PolicyRefused(f"{where} is signed but does not parse: {exc.message}") from exc
    if policy.dataset != parse_dataset_ref(dataset).dataset:
        raise PolicyRefused(f"{where} names another dataset ({policy.dataset})")
    return policy


def check_newer(signed: SignedPolicy, current: SignedPolicy | None) -> None:
    """Refuse a policy that is not newer than the one in use: a relay must not roll a policy back."""
    if current is not None and signed.issued_at <= current.issued_at and signed != current:
        raise PolicyRefused(
            f"the policy for {signed.dataset} issued at {signed.issued_at.isoformat()} is not newer than "
            f"the one in use (issued at {current.issued_at.isoformat()}); sign the change again"
        )
