"""The address sign-in failures are counted against (services/rate_limit.py)."""

from __future__ import annotations

import pytest

from custos.orchestrator.services.rate_limit import client_address


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("127.0.0.1", "127.0.0.1"),
        # One subscriber usually holds a whole /64: its addresses count as one.
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
        ("", "unknown"),
        ("evil]\nname", "unknown"),
    ],
)
def test_the_address_counted_for_a_peer(host: str | None, address: str) -> None:
    assert client_address(host) == address
