"""Secure summation of site figures by pairwise masking (Bonawitz et al., CCS 2017, without dropouts:
the models that use it need every site in every round). The orchestrator reads the sum of a vector
over the sites, never one site's vector.

Key agreement. Each gateway derives, per job, an X25519 key from its kit's private key (HKDF, so a
restart derives the same key and nothing new is stored) and announces its public half, signed with
the kit key, beside its certificate (`SiteKey.announcement`). The orchestrator relays every site's
announcement to every site. A gateway accepts a peer's announcement only when the certificate chains
to the project's root CA, is not revoked, is a gateway's, names the gateway of the site it stands for,
and its key signed this job's announcement (`SiteKey.masker`). The root CA is kept offline by the
project admin, so the orchestrator cannot make a gateway certificate of its own to stand in a pair.

Masks. Each pair of sites shares a secret (X25519, then HKDF over the job and the two names) that the
orchestrator cannot compute. For a vector of counts, a site adds, modulo 2**64 and for every other
site, a pseudo-random vector drawn from their pair secret (SHAKE-256 over the digest of the round's
input and the vector's label), with the sign given by the order of the two sites' names. Summed over
all sites the masks cancel; any one site's masked vector is uniformly distributed to whoever lacks
one of its pair secrets. Binding the masks to the round input's digest means that the same counts
under another input are masked afresh: an orchestrator that asks twice learns nothing from the
difference.

What it does not hide: the sum itself; a site's vector from an orchestrator that colludes with every
other site; anything in a job of one site, whose sum is that site's vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custos.core.digest import canonical_json
from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.core.identity import Identity, Role
from custos.pki.certs import certificate_pem, load_certificate_pem
from custos.pki.verify import sign, verify_signature

Json = dict[str, Any]
CertificateCheck = Callable[[x509.Certificate], Identity]

_DOMAIN = b"custos secure-sum v1"
_PURPOSE = "custos secure-sum key v1"
# Little-endian unsigned 64-bit words. NumPy is imported where vectors are added: not at a start.
_WORD = "<u8"


class MaskKeyAnnouncement(BaseModel):
    """A site's public mask key for one job, signed with its kit key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str = Field(min_length=3, max_length=200)
    certificate: str = Field(max_length=8000)
    public_key: str = Field(max_length=64)
    signature: str = Field(max_length=200)


def _signed_bytes(job_id: str, site: str, public_key: str) -> bytes:
    return canonical_json({"purpose": _PURPOSE, "job": job_id, "site": site, "public_key": public_key})


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_DOMAIN, info=info).derive(secret)


@dataclass(frozen=True)
class MaskKeys:
    """A gateway's means to mask: its kit's certificate and key, and its trust (the root CA and the
    revocation list) to check its peers' certificates with."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    check_certificate: CertificateCheck

    def for_site(self, job_id: str, site: str) -> SiteKey:
        return SiteKey(self, job_id, site)


class SiteKey:
    """One site's mask key for one job (`site` is "gateway/dataset", as the orchestrator names it)."""

    def __init__(self, keys: MaskKeys, job_id: str, site: str) -> None:
        self._keys = keys
        self.job_id = job_id
        self.site = site
        scalar = keys.private_key.private_numbers().private_value.to_bytes(32, "big")
        self._private = X25519PrivateKey.from_private_bytes(_hkdf(scalar, b"job key\x00" + job_id.encode()))
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = base64.b64encode(raw).decode("ascii")

    def announcement(self) -> Json:
        signature = sign(self._keys.private_key, _signed_bytes(self.job_id, self.site, self.public_key))
        return MaskKeyAnnouncement(
            site=self.site,
            certificate=certificate_pem(self._keys.certificate),
            public_key=self.public_key,
            signature=base64.b64encode(signature).decode("ascii"),
        ).model_dump()

    def masker(self, peers: Mapping[str, Any], round_input: Json) -> Masker:
        """Masks for one round: one pair secret with every other site of `peers` (site -> its
        announcement, as the orchestrator relays them), checked as the module docstring says."""
        if self.site not in peers:
            raise InvalidInput(
                f"the round's peers do not include this site ({self.site}); masks need every site"
            )
        pairs: list[tuple[bytes, bool]] = []
        for site, value in sorted(peers.items()):
            public = self._check_peer(site, value)
            if site == self.site:
                if public != self.public_key:
                    raise InvalidInput(f"the round names another mask key for this site ({self.site})")
                continue
            peer = X25519PublicKey.from_public_bytes(base64.b64decode(public))
            try:
                shared = self._private.exchange(peer)
            except ValueError as exc:
                raise AuthenticationFailed(f"the mask key of {site} is not a usable X25519 key") from exc
            low, high = sorted((self.site, site))
            info = b"\x00".join([b"pair", self.job_id.encode(), low.encode(), high.encode()])
            pairs.append((_hkdf(shared, info), self.site < site))
        return Masker(tuple(pairs), hashlib.sha256(canonical_json(round_input)).digest())

    def _check_peer(self, site: str, value: Any) -> str:
        try:
            announced = MaskKeyAnnouncement.model_validate(value)
            raw_key = base64.b64decode(announced.public_key, validate=True)
            signature = base64.b64decode(announced.signature, validate=True)
        except (ValidationError, binascii.Error, ValueError) as exc:
            raise InvalidInput(f"the mask key announced for {site} is malformed") from exc
        if announced.site != site or len(raw_key) != 32:
            raise InvalidInput(f"the mask key announced for {site} is for {announced.site}")
        cert = load_certificate_pem(announced.certificate)
        identity = self._keys.check_certificate(cert)
        if identity.role is not Role.GATEWAY or identity.name != site.split("/", 1)[0]:
            raise AuthenticationFailed(
                f"the mask key for {site} comes with the certificate of {identity.name} ({identity.role}), "
                "not of that site's gateway"
            )
        verify_signature(cert, _signed_bytes(self.job_id, site, announced.public_key), signature)
        return announced.public_key


@dataclass(frozen=True)
class Masker:
    """Adds this site's pairwise masks to vectors of one round; see the module docstring."""

    pairs: tuple[tuple[bytes, bool], ...]
    context: bytes

    def mask(self, label: str, values: Sequence[int]) -> str:
        """`values` (non-negative integers below 2**63) plus this site's masks, modulo 2**64, as the
        base64 of little-endian unsigned 64-bit words."""
        if any(v < 0 or v >= 1 << 63 for v in values):
            raise InvalidInput("only counts between 0 and 2**63 - 1 can be masked")
        import numpy as np

        total = np.asarray(values, dtype=np.uint64)
        for seed, adds in self.pairs:
            stream = hashlib.shake_256(seed + self.context + label.encode()).digest(8 * len(values))
            mask = np.frombuffer(stream, dtype=_WORD).astype(np.uint64)
            total = total + mask if adds else total - mask
        return base64.b64encode(total.astype(_WORD).tobytes()).decode("ascii")


def unmask_sum(masked: Iterable[str], length: int) -> list[int]:
    """The sum, modulo 2**64, of the sites' masked vectors of `length` words: the plain sum once every
    site's vector is in it. A vector of another length is refused."""
    import numpy as np

    total = np.zeros(length, dtype=np.uint64)
    for value in masked:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("a masked vector is not base64") from exc
        if len(raw) != 8 * length:
            raise InvalidInput(f"a masked vector has {len(raw) // 8} words; {length} expected")
        total = total + np.frombuffer(raw, dtype=_WORD).astype(np.uint64)
    return [int(v) for v in total]
