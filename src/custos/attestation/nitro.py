"""AWS Nitro Enclaves attestation documents, for a gateway that runs its sandboxed runtime in an enclave.

A document is a COSE_Sign1 structure (CBOR; untagged, or under tag 18) whose payload is a CBOR map:
module_id, digest ("SHA384"), timestamp (ms), pcrs ({index: 32, 48 or 64 bytes}), certificate (the
enclave's DER certificate), cabundle (DER certificates, root first), and optional public_key,
user_data and nonce (each at most 1024 bytes). `NitroVerifier` accepts one only when:

- it parses as exactly that shape (anything else: bad_evidence, never an exception of the parser);
- the protected header names ES384, and the signature (r || s, 96 bytes) verifies over
  Sig_structure ["Signature1", protected, b"", payload] with the enclave certificate's P-384 key;
- the chain runs from the enclave certificate through the bundle to the PINNED root: the bundle's
  first certificate must be that root byte for byte, each certificate is signed by the next one up,
  issuers are CAs, and each is valid at the document's time (the document's own root never counts);
- no PCR is all zeros in PCR0 (a debug-mode enclave reports zeros: refused), PCR0 is a measurement
  the key's policy allows (the broker checks that, as for software evidence);
- its nonce is the broker's nonce of the request and its timestamp is within `max_age_s` of now;
- its public_key is the runtime's X25519 key the data key is wrapped for.

The gateway still signs the request with its kit (which gateway, which dataset); the document says
which enclave image runs and that the key pair was made inside it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from custos.attestation.software import SoftwareVerifier
from custos.attestation.verifier import Attested, Refused, ReleaseRefused
from custos.attestation.wrap import load_public_key
from custos.core.errors import CustosError
from custos.core.wire.keybroker import KeyReleaseRequest

COSE_SIGN1_TAG = 18
ES384 = -35
MAX_DOCUMENT_BYTES = 16 * 1024
MAX_FIELD_BYTES = 1024
MAX_CHAIN = 8
PCR_SIZES = (32, 48, 64)
MAX_AGE_S = 120.0


class NitroDocument:
    """The parts of a verified document the broker uses."""

    def __init__(self, pcrs: dict[int, bytes], nonce: bytes, public_key: bytes, timestamp: datetime) -> None:
        self.pcrs, self.nonce, self.public_key, self.timestamp = pcrs, nonce, public_key, timestamp


def _bad(message: str) -> ReleaseRefused:
    return ReleaseRefused(Refused.BAD_EVIDENCE, f"the Nitro attestation document {message}")


def _bytes(payload: dict[Any, Any], key: str, *, required: bool = True) -> bytes:
    value = payload.get(key)
    if value is None and not required:
        return b""
    if not isinstance(value, bytes):
        raise _bad(f"has no {key} of bytes")
    if key not in ("certificate",) and len(value) > MAX_FIELD_BYTES:
        raise _bad(f"has a {key} of {len(value)} bytes; at most {MAX_FIELD_BYTES}")
    return value


def parse_document(data: bytes) -> tuple[bytes, bytes, bytes, dict[Any, Any]]:
    """(protected, payload, signature, payload map) of a COSE_Sign1 document, shape checked."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _bad(f"has {len(data)} bytes; at most {MAX_DOCUMENT_BYTES}")
    try:
        outer = cbor2.loads(data)
        if isinstance(outer, cbor2.CBORTag):
            if outer.tag != COSE_SIGN1_TAG:
                raise _bad(f"has CBOR tag {outer.tag}; a COSE_Sign1 has tag {COSE_SIGN1_TAG} or none")
            outer = outer.value
        if not isinstance(outer, list) or len(outer) != 4:
            raise _bad("is not a COSE_Sign1 array of four items")
        protected, _unprotected, payload, signature = outer
        if not all(isinstance(x, bytes) for x in (protected, payload, signature)):
            raise _bad("has a protected header, payload or signature that is not bytes")
        header = cbor2.loads(protected)
        body = cbor2.loads(payload)
    except ReleaseRefused:
        raise
    except Exception as exc:  # cbor2 raises many kinds on hostile input; each is a refusal
        raise _bad(f"is not well-formed CBOR ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get(1) != ES384:
        raise _bad("is not signed with ES384")
    if not isinstance(body, dict):
        raise _bad("has a payload that is not a map")
    return protected, payload, signature, body


class NitroVerifier:
    """Checks a request whose evidence carries a Nitro attestation document (see the module docstring)."""

    def __init__(
        self, gateway: SoftwareVerifier, root: x509.Certificate, max_age_s: float = MAX_AGE_S
    ) -> None:
        self._gateway = gateway  # the request's signature by a gateway of the project
        self._root = root
        self._max_age = timedelta(seconds=max_age_s)

    def verify(self, request: KeyReleaseRequest, now: datetime) -> Attested:
        signed = self._gateway.verify(request, now)
        if request.nitro_document_b64 is None:
            raise _bad("is missing")
        try:
            data = base64.b64decode(request.nitro_document_b64, validate=True)
        except (ValueError, binascii.Error):
            raise _bad("is not base64") from None
        document = self.check_document(data, now)
        if document.nonce != signed.nonce.encode():
            raise ReleaseRefused(Refused.NONCE, "the document's nonce is not the one the broker issued")
        try:
            public_key = load_public_key(base64.b64encode(document.public_key).decode())
        except CustosError as exc:
            raise _bad(f"carries a public_key that is not X25519: {exc.message}") from None
        if document.public_key != base64.b64decode(request.evidence.public_key):
            raise _bad("names another public key than the request")
        measurement = document.pcrs[0].hex()
        return Attested(
            gateway=signed.gateway, measurement=measurement, package_digest=signed.package_digest,
            key_id=signed.key_id, dataset=signed.dataset, nonce=signed.nonce, public_key=public_key,
            issued_at=document.timestamp,
        )  # fmt: skip

    def check_document(self, data: bytes, now: datetime) -> NitroDocument:
        protected, payload, signature, body = parse_document(data)
        if body.get("digest") != "SHA384" or not isinstance(body.get("module_id"), str):
            raise _bad("lacks module_id or the SHA384 digest")
        timestamp = body.get("timestamp")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp <= 0:
            raise _bad("has no timestamp")
        moment = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
        pcrs = self._pcrs(body.get("pcrs"))
        _bytes(body, "user_data", required=False)  # bounded; not otherwise used
        leaf = self._chain(_bytes(body, "certificate"), body.get("cabundle"), moment)
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise _bad("is signed by a certificate without a P-384 key")
        if len(signature) != 96:
            raise _bad("has a signature that is not 96 bytes")
        der = encode_dss_signature(
            int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
        )
        to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
        try:
            key.verify(der, to_sign, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            raise _bad("does not verify with its enclave certificate") from None
        age = now - moment
        if age > self._max_age or age < -timedelta(seconds=30):
            raise ReleaseRefused(Refused.STALE, f"the Nitro document is {age.total_seconds():.0f} s old")
        if all(v == bytes(len(v)) for v in pcrs.values()) or pcrs[0] == bytes(len(pcrs[0])):
            raise ReleaseRefused(Refused.DEBUG_ENCLAVE, "the enclave runs in debug mode (its PCRs are zeros)")
        return NitroDocument(pcrs, _bytes(body, "nonce", required=False),
                             _bytes(body, "public_key", required=False), moment)  # fmt: skip

    def _pcrs(self, value: object) -> dict[int, bytes]:
        if not isinstance(value, dict) or not value or len(value) > 32:
            raise _bad("has no map of PCRs")
        pcrs: dict[int, bytes] = {}
        for index, pcr in value.items():
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 32:
                raise _bad(f"has a PCR index {index!r}")
            if not isinstance(pcr, bytes) or len(pcr) not in PCR_SIZES:
                size = len(pcr) if isinstance(pcr, bytes) else type(pcr).__name__
                raise _bad(f"has PCR{index} of {size} bytes; a PCR has 32, 48 or 64")
            pcrs[index] = pcr
        if 0 not in pcrs:
            raise _bad("has no PCR0")
        return pcrs

    def _chain(self, leaf_der: bytes, bundle: object, moment: datetime) -> x509.Certificate:
        """The enclave certificate, once the chain to the pinned root holds at `moment`."""
        if not isinstance(bundle, list) or not bundle or len(bundle) > MAX_CHAIN:
            raise _bad("has no cabundle")
        if not all(isinstance(c, bytes) for c in bundle):
            raise _bad("has a cabundle entry that is not bytes")
        if bundle[0] != self._root.public_bytes(Encoding.DER):
            raise ReleaseRefused(
                Refused.UNTRUSTED_ROOT, "its certificate chain does not start at the pinned root"
            )
        try:
            chain = [self._root, *(x509.load_der_x509_certificate(c) for c in bundle[1:])]
            leaf = x509.load_der_x509_certificate(leaf_der)
        except ValueError:
            raise _bad("holds a certificate that does not parse") from None
        for issuer, child in zip(chain, [*chain[1:], leaf], strict=True):
            _check_issued(issuer, child, moment)
        return leaf


def _check_issued(issuer: x509.Certificate, child: x509.Certificate, moment: datetime) -> None:
    for cert in (issuer, child):
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise ReleaseRefused(Refused.UNTRUSTED_ROOT, f"{cert.subject.rfc4514_string()} is not valid then")
    try:
        constraints = issuer.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        constraints = None
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise ReleaseRefused(Refused.UNTRUSTED_ROOT, f"{issuer.subject.rfc4514_string()} is not a CA")
    if child.issuer != issuer.subject:
        raise ReleaseRefused(Refused.UNTRUSTED_ROOT, "the chain is out of order")
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise ReleaseRefused(
            Refused.UNTRUSTED_ROOT, f"{child.subject.rfc4514_string()} is not signed by its issuer"
        ) from None
