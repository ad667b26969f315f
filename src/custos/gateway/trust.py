"""What this gateway trusts: its kit's root CA, minus the certificates of the newest revocation list
it has seen (custos.pki.trust)."""

from __future__ import annotations

from custos.pki.trust import CRL_FILE, RevocationTrust


class GatewayTrust(RevocationTrust):
    """The gateway's RevocationTrust: the revocation list is kept in its state folder."""


__all__ = ["CRL_FILE", "GatewayTrust"]
