"""Inside the sandbox: the runtime's ephemeral X25519 key pair, and the opening of a confidential
package with the data key a key broker wrapped for it.

The private key is made in this process when the gateway asks for attestation (`attest`), never
leaves it, and is used once: the package is decrypted in this process's memory and imported from
there (`custos.computations.custom.importer`), so its plaintext is never on a disk, the gateway's or
the sandbox's."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from custos.attestation.wrap import public_key_b64, unwrap_key
from custos.core.errors import InvalidInput
from custos.core.wire import ConfidentialTerms
from custos.core.wire.keybroker import WrappedKey
from custos.registry.sealed import decrypt_sealed


class EphemeralKey:
    """The runtime's key pair for one key release; `take` hands the private key out once."""

    def __init__(self) -> None:
        self._private: X25519PrivateKey | None = None

    def attest(self) -> dict[str, Any]:
        self._private = X25519PrivateKey.generate()
        return {"ok": True, "public_key": public_key_b64(self._private)}

    def take(self) -> X25519PrivateKey:
        private, self._private = self._private, None
        if private is None:
            raise InvalidInput("this runtime holds no attestation key; the gateway must attest it first")
        return private


RUNTIME_KEY = EphemeralKey()


def open_package(package: dict[str, Any], key: EphemeralKey = RUNTIME_KEY) -> bytes:
    """The plaintext archive of the sealed package in a round's input, checked (custos.registry.sealed)."""
    terms = ConfidentialTerms.model_validate(package["terms"])
    wrapped = WrappedKey.model_validate(package["wrapped_key"])
    sealed = package["sealed"]
    if not isinstance(sealed, bytes):
        raise InvalidInput("the round input carries no sealed archive")
    data_key = unwrap_key(wrapped, key.take())
    return decrypt_sealed(
        sealed, data_key, name=str(package["name"]), version=str(package["version"]), terms=terms
    )
