"""How this gateway gets a confidential package's data key for one of its runtimes: it connects out
to the owner's key broker (mutual TLS with its kit), takes a nonce, measures its sandbox runtime once
(custos.attestation.software), signs evidence naming the measurement, the package, the nonce and the
runtime's public key, and sends it with the custodian's signed policy for the dataset. The broker
answers with the key wrapped for the runtime: this process never holds the data key. Each answer,
granted or refused with its reason, goes to the gateway's audit trail."""

from __future__ import annotations

import functools
import logging

import httpx
from cryptography import x509

from custos.attestation.software import measure_runtime, sign_evidence
from custos.audit import AuditTrail
from custos.core.clock import utcnow
from custos.core.errors import CustosError, PolicyDenied
from custos.core.identity import Role
from custos.core.wire import ConfidentialTerms
from custos.core.wire.keybroker import KeyReleaseRequest, NonceIssued, SoftwareEvidence, WrappedKey
from custos.gateway.policies import PolicyKeeper
from custos.gateway.trust import GatewayTrust
from custos.pki.kit import Kit
from custos.pki.tls import client_ssl_context

log = logging.getLogger("custos.gateway")
TIMEOUT_S = 30.0


class KeyRequester:
    def __init__(self, kit: Kit, trust: GatewayTrust, policies: PolicyKeeper, audit: AuditTrail) -> None:
        self._kit = kit
        self._trust = trust
        self._policies = policies
        self._audit = audit

    @functools.cached_property
    def measurement(self) -> str:
        return measure_runtime()

    def obtain(
        self, terms: ConfidentialTerms, digest: str, dataset: str, public_key: str, job: str, owner_org: str
    ) -> WrappedKey:
        """The data key of `terms`, wrapped for `public_key`, or PolicyDenied naming the broker's reason.
        The server must be a key broker of `owner_org` (the package's signer's org), not revoked: this
        gateway shows its evidence and the custodian's grant to no one else."""
        signed = self._policies.signed(dataset)
        if signed is None:
            raise PolicyDenied(f"no signed policy for {dataset} to show the key broker")
        site_dataset = signed.dataset
        user = self._kit.identity.name
        try:
            with httpx.Client(base_url=terms.broker_url.rstrip("/"), verify=client_ssl_context(self._kit),
                              timeout=TIMEOUT_S) as http:  # fmt: skip
                answer = http.post("/api/v1/nonces")
                self._check_broker(answer, owner_org)  # before anything it says is read
                nonce = NonceIssued.model_validate_json(_ok(answer).content)
                evidence = SoftwareEvidence(
                    measurement=self.measurement, package_digest=digest, key_id=terms.key_id,
                    dataset=site_dataset, nonce=nonce.nonce, public_key=public_key, issued_at=utcnow(),
                )  # fmt: skip
                certificate, signature = sign_evidence(self._kit, evidence)
                crl = self._trust.revocations.pem if self._trust.revocations is not None else None
                body = KeyReleaseRequest(evidence=evidence, gateway_certificate_pem=certificate,
                                         signature=signature, grant=signed, crl_pem=crl)  # fmt: skip
                wrapped = WrappedKey.model_validate_json(
                    _ok(http.post("/api/v1/keys/release", json=body.model_dump(mode="json"))).content
                )
        except (httpx.HTTPError, CustosError, ValueError) as exc:
            reason = exc.message if isinstance(exc, CustosError) else f"{type(exc).__name__}: {exc}"
            self._audit.append(user=user, action="key_refused", job=job, message=f"{terms.key_id}: {reason}")
            raise PolicyDenied(f"the key broker at {terms.broker_url} released no key: {reason}") from exc
        what = f"{terms.key_id} for {site_dataset}, wrapped for the runtime"
        self._audit.append(
            user=user, action="key_received", job=job, message=f"{what}, runtime {self.measurement[:16]}"
        )
        return wrapped

    def _check_broker(self, response: httpx.Response, owner_org: str) -> None:
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            raise PolicyDenied("the key broker's certificate could not be read")
        broker = self._trust.check_certificate(x509.load_der_x509_certificate(der))
        if broker.role is not Role.KEY_BROKER or broker.org != owner_org:
            raise PolicyDenied(
                f"the server is {broker.name} ({broker.role.value} of {broker.org}), "
                f"not a key broker of {owner_org}, the package's owner"
            )


def _ok(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        detail = str(response.json().get("detail"))
    except ValueError:
        detail = response.text[:300]
    raise PolicyDenied(f"{response.status_code} {detail}")
