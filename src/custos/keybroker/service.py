"""The key broker's decisions: owner requests (deposit, policy, revoke) signed with the owner's kit,
and key releases to attested runtimes. Every decision, granted or refused, is appended to the
broker's own hash-chained audit trail with its reason."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from datetime import timedelta

from custos.attestation.verifier import AttestationVerifier, Refused, ReleaseRefused
from custos.attestation.wrap import wrap_key
from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import AuthenticationFailed, CustosError, InvalidInput, NotFound, PermissionDenied
from custos.core.wire.keybroker import (
    EvidenceKind,
    KeyPublic,
    KeyReleaseRequest,
    NonceIssued,
    OwnerRequest,
    WrappedKey,
    owner_message,
)
from custos.keybroker.checks import check_grant, check_release
from custos.keybroker.nonces import NonceBook
from custos.keybroker.vault import KeyVault
from custos.pki.certs import load_certificate_pem
from custos.pki.trust import RevocationTrust
from custos.pki.verify import verify_signature
from custos.registry import PUBLISHER_ROLES

OWNER_REQUEST_MAX_AGE = timedelta(minutes=5)


class KeyBroker:
    def __init__(
        self,
        *,
        org: str,
        vault: KeyVault,
        trust: RevocationTrust,
        verifiers: Mapping[EvidenceKind, AttestationVerifier],
        audit: AuditTrail,
        clock: Clock,
        nonce_ttl_s: float = 60.0,
    ) -> None:
        self.org = org
        self.vault = vault
        self._trust = trust
        self._verifiers = verifiers
        self._audit = audit
        self._clock = clock
        self._nonces = NonceBook(clock, nonce_ttl_s)

    def nonce(self) -> NonceIssued:
        nonce, expires = self._nonces.issue()
        return NonceIssued(nonce=nonce, expires_at=expires)

    def owner_request(self, request: OwnerRequest) -> KeyPublic:
        """Carry out an owner's signed request; only a publisher of this broker's org may make one."""
        try:
            cert = load_certificate_pem(request.signer_certificate_pem)
            owner = self._trust.check_certificate(cert)
            verify_signature(cert, owner_message(request), base64.b64decode(request.signature, validate=True))
        except (AuthenticationFailed, ValueError, binascii.Error) as exc:
            self._audit.append(
                user="unknown", action="owner_refused", message=f"{request.action} {request.key_id}: {exc}"
            )
            raise AuthenticationFailed(f"the request is not signed by a kit of this project: {exc}") from exc
        if owner.org != self.org or owner.role not in PUBLISHER_ROLES:
            self._audit.append(
                user=owner.name, action="owner_refused", message=f"{request.action} {request.key_id}"
            )
            raise PermissionDenied(
                f"{owner.name} of {owner.org} is not a publisher of {self.org}, this broker's org"
            )
        age = self._clock() - request.issued_at
        if abs(age) > OWNER_REQUEST_MAX_AGE:
            raise AuthenticationFailed(
                f"the request was signed {age.total_seconds():.0f} s ago; sign it afresh"
            )
        if request.action == "deposit":
            if request.policy is None or request.data_key_b64 is None:
                raise InvalidInput("a deposit carries data_key_b64 and policy")
            entry = self.vault.put(
                request.key_id, owner.name, base64.b64decode(request.data_key_b64), request.policy
            )
        elif request.action == "policy":
            if request.policy is None:
                raise InvalidInput("a policy request carries policy")
            entry = self.vault.set_policy(request.key_id, request.policy)
        else:
            entry = self.vault.revoke(request.key_id, request.reason)
        self._audit.append(
            user=owner.name,
            action=f"key_{request.action}",
            message=f"{request.key_id} {entry.policy.package}",
        )
        return entry.public()

    def release(self, request: KeyReleaseRequest) -> WrappedKey:
        """The data key wrapped for the attested runtime, or ReleaseRefused (audited either way)."""
        who = "unknown"
        try:
            if request.crl_pem:
                with contextlib.suppress(CustosError):  # not the project's list: keep the one held
                    self._trust.update(request.crl_pem)
            verifier = self._verifiers.get(request.kind)
            if verifier is None:
                raise ReleaseRefused(
                    Refused.BAD_EVIDENCE, f"this broker does not accept {request.kind} evidence"
                )
            now = self._clock()
            attested = verifier.verify(request, now)
            who = attested.gateway.name
            if not self._nonces.take(attested.nonce):
                raise ReleaseRefused(
                    Refused.NONCE, "the nonce was not issued by this broker, expired, or was used"
                )
            try:
                entry = self.vault.get(attested.key_id)
            except NotFound as exc:
                raise ReleaseRefused(Refused.UNKNOWN_KEY, exc.message) from exc
            check_release(entry.policy, entry.revoked, attested, now)
            check_grant(request.grant, attested, entry.policy.package, self._trust.check_certificate)
            wrapped = wrap_key(self.vault.data_key(entry), attested.public_key, entry.key_id)
        except ReleaseRefused as exc:
            self._audit.append(
                user=who, action="key_refused", message=f"{request.evidence.key_id}: {exc.message}"
            )
            raise
        what = f"{entry.key_id} {entry.policy.package} for {attested.dataset}"
        self._audit.append(
            user=who, action="key_released", message=f"{what}, runtime {attested.measurement[:16]}"
        )
        return wrapped
