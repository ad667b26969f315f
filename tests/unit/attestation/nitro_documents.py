"""Synthetic AWS Nitro attestation documents, signed by a test root injected into the verifier in
place of the AWS Nitro root: the same structure (COSE_Sign1 over CBOR, ES384, root-first cabundle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

PCR0 = bytes.fromhex("a1" * 48)


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          *, ca: bool, now: datetime) -> x509.Certificate:  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]) if issuer else subject
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer[1] if issuer else key, hashes.SHA384())
    )  # fmt: skip


@dataclass
class EnclavePki:
    """A root, an intermediate and an enclave certificate, all P-384."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.mid_key = ec.generate_private_key(ec.SECP384R1())
        self.leaf_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _cert("test nitro root", self.root_key, None, ca=True, now=self.now)
        self.mid = _cert(
            "test nitro zone", self.mid_key, ("test nitro root", self.root_key), ca=True, now=self.now
        )
        self.leaf = _cert(
            "i-enclave", self.leaf_key, ("test nitro zone", self.mid_key), ca=False, now=self.now
        )


def payload(
    pki: EnclavePki, *, nonce: bytes, public_key: bytes, pcr0: bytes = PCR0, **changes: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "digest": "SHA384",
        "timestamp": int(pki.now.timestamp() * 1000),
        "pcrs": {0: pcr0, 1: bytes.fromhex("b2" * 48), 2: bytes.fromhex("c3" * 48)},
        "certificate": pki.leaf.public_bytes(Encoding.DER),
        "cabundle": [pki.root.public_bytes(Encoding.DER), pki.mid.public_bytes(Encoding.DER)],
        "public_key": public_key,
        "user_data": None,
        "nonce": nonce,
    }
    body.update(changes)
    return body


def document(
    pki: EnclavePki,
    body: dict[str, Any],
    *,
    tag: int | None = 18,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    protected = cbor2.dumps({1: -35})
    encoded = cbor2.dumps(body)
    der = (key or pki.leaf_key).sign(
        cbor2.dumps(["Signature1", protected, b"", encoded]), ec.ECDSA(hashes.SHA384())
    )
    r, s = decode_dss_signature(der)
    sign1 = [protected, {}, encoded, r.to_bytes(48, "big") + s.to_bytes(48, "big")]
    return cbor2.dumps(cbor2.CBORTag(tag, sign1) if tag is not None else sign1)
