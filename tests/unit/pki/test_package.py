"""The PKI package's public surface: what other components import from `custos.pki`. Its names load
their modules when first read; `provision` is a module's name, so provisioning is imported from it."""

from __future__ import annotations

import custos.pki
import custos.pki.provision


def test_every_public_name_is_exported_and_listed_once() -> None:
    names = custos.pki.__all__

    assert sorted(names) == list(names)
    assert len(set(names)) == len(names)
    assert all(getattr(custos.pki, name, None) is not None for name in names)
    assert {"load_kit", "KitAuth", "sign_in", "server_ssl_options", "verify_certificate"} <= set(names)
    assert callable(custos.pki.provision.provision)
