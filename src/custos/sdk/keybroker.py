"""A model owner's side of the key broker: signed owner requests (deposit a data key with its policy,
set a policy, revoke) and the HTTPS client that sends them (mutual TLS with the owner's kit)."""

from __future__ import annotations

import base64
from types import TracebackType

import httpx

from custos.core.clock import utcnow
from custos.core.wire.keybroker import KeyPolicy, KeyPublic, OwnerRequest, owner_message
from custos.pki.certs import certificate_pem
from custos.pki.kit import Kit
from custos.pki.tls import client_ssl_context
from custos.pki.verify import sign
from custos.sdk.responses import decode


def signed_owner_request(
    kit: Kit,
    action: str,
    key_id: str,
    *,
    policy: KeyPolicy | None = None,
    data_key: bytes | None = None,
    reason: str = "",
) -> OwnerRequest:
    unsigned = OwnerRequest(
        action=action, key_id=key_id, policy=policy, reason=reason, issued_at=utcnow(),
        data_key_b64=None if data_key is None else base64.b64encode(data_key).decode("ascii"),
        signer_certificate_pem=certificate_pem(kit.certificate),
    )  # fmt: skip
    signature = base64.b64encode(sign(kit.private_key, owner_message(unsigned))).decode("ascii")
    return unsigned.model_copy(update={"signature": signature})


class OwnerBrokerClient:
    """Talks to the owner's key broker at `url` with the owner's kit."""

    def __init__(self, url: str, kit: Kit, http: httpx.Client | None = None) -> None:
        self._kit = kit
        self._http = http or httpx.Client(
            base_url=url.rstrip("/"), verify=client_ssl_context(kit), timeout=30
        )

    def send(self, request: OwnerRequest) -> KeyPublic:
        return decode(self._http.post("/api/v1/owner", json=request.model_dump(mode="json")), KeyPublic)

    def deposit(self, key_id: str, data_key: bytes, policy: KeyPolicy) -> KeyPublic:
        return self.send(signed_owner_request(self._kit, "deposit", key_id, policy=policy, data_key=data_key))

    def set_policy(self, key_id: str, policy: KeyPolicy) -> KeyPublic:
        return self.send(signed_owner_request(self._kit, "policy", key_id, policy=policy))

    def revoke(self, key_id: str, reason: str) -> KeyPublic:
        return self.send(signed_owner_request(self._kit, "revoke", key_id, reason=reason))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OwnerBrokerClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
