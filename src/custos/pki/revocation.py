"""Revocation: an X.509 CRL signed by the project's root CA, and revoking a participant's certificate.

`custos provision revoke NAME` adds the serial of NAME's certificate to `OUT/ca/revoked.crl.pem` and
re-signs the list with a CRL number one higher than before. A component loads the list with
`load_crl`, which accepts only a list the root CA signed, and passes it to `verify_certificate`.
A consumer that already holds a list should refuse one with a lower number: that would be a replay of
an older list that revokes less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.clock import utcnow
from custos.core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from custos.pki.authority import (
    CRL_FILE,
    ISSUED_FILE,
    IssuedCertificate,
    ca_folder,
    issued_json,
    load_authority,
    locked,
    write_atomic,
)
from custos.pki.certs import subject_name
from custos.pki.project import normalize_name

MAX_CRL_BYTES = 16 * 1024 * 1024
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class RevocationList:
    """A CRL that `load_crl` verified: its number, the revoked serials, and the PEM it came from."""

    number: int
    revoked: frozenset[int]
    pem: str

    def revoked_on(self, serial: int) -> datetime | None:
        """When the certificate with `serial` was revoked, or None if it was not."""
        return self._dates.get(serial)

    def entries(self) -> list[tuple[int, datetime]]:
        """(serial, revocation time) of every entry, oldest first: what `build_crl` takes."""
        return sorted(self._dates.items(), key=lambda entry: (entry[1], entry[0]))

    @cached_property
    def _dates(self) -> dict[int, datetime]:
        crl = x509.load_pem_x509_crl(self.pem.encode())
        return {entry.serial_number: entry.revocation_date_utc for entry in crl}


@dataclass(frozen=True)
class Revocation:
    """What `revoke_participant` did: the certificate it revoked and the list it wrote."""

    certificate: IssuedCertificate
    crl: RevocationList
    path: Path


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    entries: Sequence[tuple[int, datetime]],
    number: int,
    now: datetime,
) -> x509.CertificateRevocationList:
    """A CRL listing each (serial, revocation time) of `entries`, signed by the CA.

    It names no next update a consumer must wait for: it stands until a list with a higher number
    replaces it, and never past the CA's own expiry."""
    if number < 1:
        raise InvalidInput(f"CRL number {number} is not accepted; use a whole number >= 1")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(max(ca_cert.not_valid_after_utc, now))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for serial, revoked_at in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hashes.SHA256())


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def load_crl(pem: bytes | str, root: x509.Certificate) -> RevocationList:
    """The revocation list in `pem`, after checking that `root` issued and signed it."""
    data = pem.encode() if isinstance(pem, str) else pem
    if len(data) > MAX_CRL_BYTES:
        raise AuthenticationFailed(f"revocation list is larger than {MAX_CRL_BYTES} bytes")
    try:
        crl = x509.load_pem_x509_crl(data)
        entries = list(crl)
    except ValueError as exc:
        raise AuthenticationFailed(
            "revocation list is not a PEM-encoded X.509 CRL "
            "(expected text starting with '-----BEGIN X509 CRL-----')"
        ) from exc
    project = subject_name(root)
    if crl.issuer != root.subject:
        raise AuthenticationFailed(
            f"revocation list was issued by {crl.issuer.rfc4514_string()!r}, "
            f"not by the CA of project {project}"
        )
    public_key = root.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public_key):
        raise AuthenticationFailed(
            f"revocation list's signature does not verify with the CA of project {project}; "
            "it was altered or signed by another CA"
        )
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound as exc:
        raise AuthenticationFailed(
            "revocation list has no CRL number; Custos lists always carry one"
        ) from exc
    return RevocationList(
        number=number,
        revoked=frozenset(entry.serial_number for entry in entries),
        pem=crl.public_bytes(serialization.Encoding.PEM).decode(),
    )


def load_project_crl(out_dir: Path, root: x509.Certificate) -> RevocationList | None:
    """OUT/ca/revoked.crl.pem, verified; None when nothing was revoked yet."""
    path = ca_folder(out_dir) / CRL_FILE
    if not path.is_file():
        return None
    try:
        return load_crl(path.read_bytes(), root)
    except AuthenticationFailed as exc:
        raise InvalidInput(f"{path}: {exc.message}") from exc


def revoke_participant(
    out_dir: Path, name: str, *, reason: str | None = None, now: datetime | None = None
) -> Revocation:
    """Add the certificate issued to `name` to OUT/ca/revoked.crl.pem under the next CRL number."""
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason is {len(reason)} characters long; keep it to {MAX_REASON_CHARS}")
    try:
        name = normalize_name(name, "name")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    # A CRL records whole seconds; the ledger records the same moment.
    moment = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    with locked(out_dir):
        authority = load_authority(out_dir)
        record = authority.issued_to(name)
        if record is None:
            known = ", ".join(r.name for r in authority.issued[:20]) or "none"
            raise NotFound(
                f"no certificate was issued to {name!r} in {out_dir}; issued to: {known}"
                + (" ..." if len(authority.issued) > 20 else "")
            )
        current = load_project_crl(out_dir, authority.certificate)
        if current is not None and record.serial_number in current.revoked:
            when = current.revoked_on(record.serial_number)
            raise Conflict(
                f"the certificate of {name} (serial {record.serial}) was already revoked"
                + (f" on {when:%Y-%m-%d %H:%M:%S} UTC" if when else "")
            )
        entries = [] if current is None else current.entries()
        number = 1 if current is None else current.number + 1
        crl = build_crl(
            authority.certificate,
            authority.key,
            [*entries, (record.serial_number, moment)],
            number,
            moment,
        )
        revoked = record.model_copy(update={"revoked_at": moment, "revocation_reason": reason})
        path = authority.folder / CRL_FILE
        # The list first: should the ledger write fail, the certificate is still revoked.
        write_atomic(path, crl_pem(crl))
        write_atomic(
            authority.folder / ISSUED_FILE,
            issued_json([revoked if r is record else r for r in authority.issued]),
        )
    return Revocation(certificate=revoked, crl=load_crl(crl_pem(crl), authority.certificate), path=path)
