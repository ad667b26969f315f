from __future__ import annotations

from custos.core.errors import ERRORS_BY_STATUS, CustosError, PolicyDenied


def test_a_client_raises_the_class_the_server_mapped_to_that_status() -> None:
    for status, kind in ERRORS_BY_STATUS.items():
        assert issubclass(kind, CustosError)
        assert kind.status == (400 if status == 422 else status)
    assert issubclass(PolicyDenied, ERRORS_BY_STATUS[403])
