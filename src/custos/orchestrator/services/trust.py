"""What the orchestrator trusts: its project's root CA, minus the certificates the newest revocation
list names. The list lives in the database, so every worker sees the same one."""

from __future__ import annotations

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import Conflict
from custos.core.identity import Identity
from custos.orchestrator.tables import RevocationList as RevocationRow
from custos.pki.revocation import RevocationList, load_crl
from custos.pki.verify import verify_certificate

_ROW_ID = 1
# Built once: every request runs it.
_NUMBER_IN_FORCE = select(RevocationRow.number).where(RevocationRow.id == _ROW_ID)


class Trust:
    def __init__(self, root: x509.Certificate, clock: Clock) -> None:
        self.root = root
        self._clock = clock
        self._cached: RevocationList | None = None

    def revocations(self, session: Session) -> RevocationList | None:
        """The list in force. Every request asks: only the list's number is read, and the list itself
        (read and its signature verified) only when the number is not the one last verified."""
        number = session.scalar(_NUMBER_IN_FORCE)
        if number is None:
            return None
        if self._cached is None or self._cached.number != number:
            row = session.get(RevocationRow, _ROW_ID)
            assert row is not None
            self._cached = load_crl(row.crl_pem, self.root)
        return self._cached

    def verify(self, session: Session, cert: x509.Certificate) -> Identity:
        """The identity of `cert`: signed by the root, valid now, and not revoked."""
        return verify_certificate(cert, self.root, self._clock(), self.revocations(session))

    def publish_crl(self, session: Session, pem: str) -> RevocationList:
        """Store a newer revocation list. It must be signed by the root and carry a higher number."""
        crl = load_crl(pem, self.root)
        row = session.get(RevocationRow, _ROW_ID, with_for_update=True)
        if row is not None and crl.number <= row.number:
            raise Conflict(
                f"revocation list number {crl.number} is not newer than the one in force ({row.number})"
            )
        if row is None:
            session.add(
                RevocationRow(id=_ROW_ID, number=crl.number, crl_pem=crl.pem, updated_at=self._clock())
            )
        else:
            row.number, row.crl_pem, row.updated_at = crl.number, crl.pem, self._clock()
        return crl

    def crl_pem(self, session: Session) -> str | None:
        row = session.get(RevocationRow, _ROW_ID)
        return row.crl_pem if row else None
