"""TLS settings built from a startup kit: mutual TLS where both sides trust only the project's root CA."""

from __future__ import annotations

import ssl
from typing import TypedDict

from custos.pki.certs import certificate_pem
from custos.pki.kit import Kit


class ServerSSLOptions(TypedDict):
    """uvicorn's TLS keyword arguments, typed so `uvicorn.run(app, **options)` type-checks."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_ca_certs: str
    ssl_cert_reqs: int


def server_ssl_options(kit: Kit, *, require_client_certificate: bool = True) -> ServerSSLOptions:
    """Keyword arguments for uvicorn (`uvicorn.run(app, **server_ssl_options(kit))`).

    By default a client must present a certificate signed by the project's root CA, or the handshake
    fails. `require_client_certificate=False` still verifies a certificate that is presented, for
    servers that also admit browsers signing in with a password.
    """
    return ServerSSLOptions(
        ssl_certfile=str(kit.cert_path),
        ssl_keyfile=str(kit.key_path),
        ssl_ca_certs=str(kit.root_path),
        ssl_cert_reqs=int(ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL),
    )


def client_ssl_context(kit: Kit) -> ssl.SSLContext:
    """A client context that trusts only the kit's root CA and presents the kit's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.load_verify_locations(cadata=certificate_pem(kit.root_certificate))
    context.load_cert_chain(certfile=str(kit.cert_path), keyfile=str(kit.key_path))
    return context
