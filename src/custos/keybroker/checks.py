"""The broker's release policy as pure functions: `check_release` raises ReleaseRefused naming the
first rule the attested request breaks; `check_grant` that the custodian's signed policy for the
dataset grants the package."""

from __future__ import annotations

import hmac
from datetime import datetime

from custos.attestation.verifier import Attested, Refused, ReleaseRefused
from custos.core.errors import PolicyDenied
from custos.core.refs import parse_model_ref
from custos.core.wire.datasets import SignedPolicy
from custos.core.wire.keybroker import KeyPolicy
from custos.policy.signing import CertificateCheck, verify_policy


def check_release(policy: KeyPolicy, revoked: str | None, attested: Attested, now: datetime) -> None:
    if revoked is not None:
        raise ReleaseRefused(Refused.REVOKED, f"key {attested.key_id} was revoked by its owner: {revoked}")
    if policy.expires_at is not None and now >= policy.expires_at:
        raise ReleaseRefused(
            Refused.EXPIRED, f"key {attested.key_id}'s policy expired at {policy.expires_at}"
        )
    if not hmac.compare_digest(attested.package_digest, policy.ciphertext_digest):
        raise ReleaseRefused(
            Refused.WRONG_PACKAGE,
            f"key {attested.key_id} opens {policy.package} (sha256:{policy.ciphertext_digest[:16]}…), "
            f"not sha256:{attested.package_digest[:16]}…",
        )
    if attested.measurement not in policy.measurements:
        raise ReleaseRefused(
            Refused.MEASUREMENT,
            f"runtime {attested.measurement[:16]}… is not one of the "
            f"{len(policy.measurements)} the policy allows",
        )
    gateway = attested.gateway
    if (policy.gateways or policy.orgs) and not (
        gateway.name in policy.gateways or gateway.org in policy.orgs
    ):
        raise ReleaseRefused(
            Refused.GATEWAY_NOT_ALLOWED, f"gateway {gateway.name} of {gateway.org} is not named in the policy"
        )


def check_grant(
    grant: SignedPolicy, attested: Attested, package: str, check_certificate: CertificateCheck
) -> None:
    """The custodian of the attesting gateway's org signed a policy for the evidence's dataset that
    grants `package` (name@version) to someone."""
    try:
        policy = verify_policy(
            grant,
            dataset=attested.dataset,
            dataset_org=attested.gateway.org,
            check_certificate=check_certificate,
        )
    except PolicyDenied as exc:
        raise ReleaseRefused(Refused.GRANT, exc.message) from exc
    ref = parse_model_ref(package)
    if not any(g.matches_model(ref.name, ref.version) for g in policy.grants):
        raise ReleaseRefused(Refused.GRANT, f"the policy for {attested.dataset} does not grant {package}")
