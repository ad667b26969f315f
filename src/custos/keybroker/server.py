"""`custos keybroker start`: serve the broker over HTTPS with its kit's certificate; a client must
present a certificate of the project (mutual TLS), and proves who it is by the signatures it sends."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn
from cryptography import x509

from custos.attestation.nitro import NitroVerifier
from custos.attestation.software import SoftwareVerifier
from custos.attestation.verifier import AttestationVerifier
from custos.audit import AuditTrail
from custos.core.clock import utcnow
from custos.core.errors import KitError
from custos.core.identity import Role
from custos.core.wire.keybroker import EvidenceKind
from custos.keybroker.app import create_app
from custos.keybroker.service import KeyBroker
from custos.keybroker.vault import KeyVault
from custos.pki.kit import load_kit
from custos.pki.tls import server_ssl_options
from custos.pki.trust import RevocationTrust


def open_broker(kit_dir: Path, state: Path, vault_key: bytes, *, nitro_root: Path | None = None) -> KeyBroker:
    """The broker of the kit at `kit_dir`. With `nitro_root` (the AWS Nitro Enclaves root certificate,
    PEM, downloaded from AWS and checked against its published fingerprint) it accepts Nitro
    attestation documents chained to that root too."""
    kit = load_kit(kit_dir)
    if kit.identity.role is not Role.KEY_BROKER:
        raise KitError(
            f"kit at {kit_dir} belongs to {kit.identity.name} ({kit.identity.role}), not a key broker"
        )
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    trust = RevocationTrust(kit.root_certificate, state, utcnow)
    software = SoftwareVerifier(trust.check_certificate)
    verifiers: dict[EvidenceKind, AttestationVerifier] = {EvidenceKind.SOFTWARE: software}
    if nitro_root is not None:
        root = x509.load_pem_x509_certificate(nitro_root.read_bytes())
        verifiers[EvidenceKind.NITRO] = NitroVerifier(software, root)
    return KeyBroker(
        org=kit.identity.org,
        vault=KeyVault(state, vault_key),
        trust=trust,
        verifiers=verifiers,
        audit=AuditTrail(state / "audit.log"),
        clock=utcnow,
    )


def serve(
    kit_dir: Path, state: Path, vault_key: bytes, *, host: str | None = None, port: int | None = None
) -> None:
    kit = load_kit(kit_dir)
    broker = open_broker(kit_dir, state, vault_key)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(
        create_app(broker),
        host=host or kit.config.listen_host or "127.0.0.1",
        port=port or kit.config.listen_port or 9443,
        log_level="warning",
        **server_ssl_options(kit),
    )
