"""Public-key infrastructure: the project CA, certificates, startup kits, provisioning and sign-in."""

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
from custos.pki.kit import Kit, KitConfig, load_kit
from custos.pki.project import ProjectSpec, load_project
from custos.pki.provision import provision
from custos.pki.signin import KitAuth, sign_in
from custos.pki.tls import ServerSSLOptions, client_ssl_context, server_ssl_options
from custos.pki.verify import sign, verify_certificate, verify_signature

__all__ = [
    "Kit",
    "KitAuth",
    "KitConfig",
    "ProjectSpec",
    "ServerSSLOptions",
    "certificate_pem",
    "client_ssl_context",
    "create_root_ca",
    "fingerprint",
    "generate_key",
    "identity_of",
    "issue_certificate",
    "load_certificate_pem",
    "load_kit",
    "load_private_key_pem",
    "load_project",
    "private_key_pem",
    "provision",
    "server_ssl_options",
    "sign",
    "sign_in",
    "verify_certificate",
    "verify_signature",
]
