"""What a gateway (or a key broker) trusts: its kit's root CA, minus the certificates of the newest
revocation list it has seen (from its state folder, or fetched from the orchestrator; the CA's
signature makes it safe to take from anyone, and an older list never replaces a newer one)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509

from custos.core.clock import Clock
from custos.core.identity import Identity
from custos.pki.revocation import RevocationList, load_crl
from custos.pki.verify import verify_certificate

log = logging.getLogger("custos.pki")
CRL_FILE = "revoked.crl.pem"


class RevocationTrust:
    def __init__(self, root: x509.Certificate, state_dir: Path, clock: Clock) -> None:
        self._root = root
        self._path = state_dir / CRL_FILE
        self._clock = clock
        self.revocations: RevocationList | None = None
        if self._path.is_file():
            self.revocations = load_crl(self._path.read_text(encoding="ascii"), root)

    def update(self, pem: str) -> bool:
        """Adopt `pem` if it is signed by the root and newer than the list held. True if adopted."""
        crl = load_crl(pem, self._root)
        if self.revocations is not None and crl.number <= self.revocations.number:
            return False
        partial = self._path.with_suffix(".partial")
        partial.write_text(crl.pem, encoding="ascii")
        os.replace(partial, self._path)
        self.revocations = crl
        log.info("revocation list %d in force: %d certificate(s) revoked", crl.number, len(crl.revoked))
        return True

    def check_certificate(self, cert: x509.Certificate) -> Identity:
        return verify_certificate(cert, self._root, self._clock(), self.revocations)
