"""The PKI package's public surface: what other components import from `custos.pki`."""

from __future__ import annotations

import custos.pki


def test_every_public_name_is_exported_and_listed_once() -> None:
    names = custos.pki.__all__

    assert sorted(names) == list(names)
    assert len(set(names)) == len(names)
    assert all(getattr(custos.pki, name, None) is not None for name in names)
    assert {"load_kit", "provision", "KitAuth", "sign_in", "server_ssl_options", "verify_certificate"} <= set(
        names
    )
