"""Public-key infrastructure: the project CA, certificates, startup kits, provisioning, revocation and
sign-in. Provisioning is `custos.pki.provision.provision` (the name `provision` here is its module)."""

from typing import TYPE_CHECKING

from custos.core.lazy import lazy_names

if TYPE_CHECKING:
    from custos.pki.archive import unpack_kit_archive, write_kit_archive
    from custos.pki.certs import (
        certificate_pem,
        create_root_ca,
        fingerprint,
        generate_key,
        identity_of,
        issue_certificate,
        load_certificate_pem,
        load_private_key_pem,
        private_key_pem,
    )
    from custos.pki.enrolment import add_participant
    from custos.pki.kit import Kit, KitConfig, load_kit
    from custos.pki.project import ParticipantSpec, ProjectSpec, load_project
    from custos.pki.revocation import RevocationList, build_crl, load_crl, revoke_participant
    from custos.pki.signin import KitAuth, sign_in
    from custos.pki.tls import ServerSSLOptions, client_ssl_context, server_ssl_options
    from custos.pki.verify import sign, verify_certificate, verify_signature

__getattr__ = lazy_names(
    __name__,
    {
        "archive": ["unpack_kit_archive", "write_kit_archive"],
        "certs": [
            "certificate_pem",
            "create_root_ca",
            "fingerprint",
            "generate_key",
            "identity_of",
            "issue_certificate",
            "load_certificate_pem",
            "load_private_key_pem",
            "private_key_pem",
        ],
        "enrolment": ["add_participant"],
        "kit": ["Kit", "KitConfig", "load_kit"],
        "project": ["ParticipantSpec", "ProjectSpec", "load_project"],
        "revocation": ["RevocationList", "build_crl", "load_crl", "revoke_participant"],
        "signin": ["KitAuth", "sign_in"],
        "tls": ["ServerSSLOptions", "client_ssl_context", "server_ssl_options"],
        "verify": ["sign", "verify_certificate", "verify_signature"],
    },
)

__all__ = [
    "Kit",
    "KitAuth",
    "KitConfig",
    "ParticipantSpec",
    "ProjectSpec",
    "RevocationList",
    "ServerSSLOptions",
    "add_participant",
    "build_crl",
    "certificate_pem",
    "client_ssl_context",
    "create_root_ca",
    "fingerprint",
    "generate_key",
    "identity_of",
    "issue_certificate",
    "load_certificate_pem",
    "load_crl",
    "load_kit",
    "load_private_key_pem",
    "load_project",
    "private_key_pem",
    "revoke_participant",
    "server_ssl_options",
    "sign",
    "sign_in",
    "unpack_kit_archive",
    "verify_certificate",
    "verify_signature",
    "write_kit_archive",
]
