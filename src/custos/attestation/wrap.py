"""A data key wrapped for one runtime: X25519 with a fresh ephemeral key on the broker's side,
HKDF-SHA256 over the shared secret (salt: both public keys; info: the key id), then AES-256-GCM.
Only the holder of the runtime's private key, which never leaves the sandbox, can unwrap it."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.core.wire.keybroker import WrappedKey

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def public_key_b64(private: X25519PrivateKey) -> str:
    return base64.b64encode(public_bytes(private.public_key())).decode("ascii")


def load_public_key(text: str) -> X25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidInput("the runtime's public key is not 32 bytes of base64 X25519") from exc


def _kek(shared: bytes, sender: bytes, recipient: bytes, key_id: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=sender + recipient,
        info=b"custos-wrap-v1\n" + key_id.encode(),
    )
    return hkdf.derive(shared)


def wrap_key(data_key: bytes, recipient: X25519PublicKey, key_id: str) -> WrappedKey:
    ephemeral = X25519PrivateKey.generate()
    sender, to = public_bytes(ephemeral.public_key()), public_bytes(recipient)
    kek = _kek(ephemeral.exchange(recipient), sender, to, key_id)
    nonce = os.urandom(12)
    sealed = AESGCM(kek).encrypt(nonce, data_key, key_id.encode())
    return WrappedKey(
        key_id=key_id,
        ephemeral_public_key=base64.b64encode(sender).decode("ascii"),
        nonce=base64.b64encode(nonce).decode("ascii"),
        ciphertext=base64.b64encode(sealed).decode("ascii"),
    )


def unwrap_key(wrapped: WrappedKey, private: X25519PrivateKey) -> bytes:
    """The data key, or AuthenticationFailed when it was not wrapped for `private`."""
    try:
        sender = base64.b64decode(wrapped.ephemeral_public_key, validate=True)
        kek = _kek(
            private.exchange(X25519PublicKey.from_public_bytes(sender)), sender,
            public_bytes(private.public_key()), wrapped.key_id,
        )  # fmt: skip
        return AESGCM(kek).decrypt(
            base64.b64decode(wrapped.nonce, validate=True),
            base64.b64decode(wrapped.ciphertext, validate=True),
            wrapped.key_id.encode(),
        )
    except (InvalidTag, ValueError) as exc:
        raise AuthenticationFailed("the wrapped key was not wrapped for this runtime") from exc
