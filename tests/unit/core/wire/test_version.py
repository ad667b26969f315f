"""Both ends of the wire speak exactly one version; anything else is refused with both versions named."""

from __future__ import annotations

import pytest

from custos.core.errors import InvalidInput
from custos.core.wire import WIRE_VERSION, check_wire_version


@pytest.mark.parametrize("sent", [WIRE_VERSION, str(WIRE_VERSION)])
def test_this_version_as_a_number_or_a_header_text_passes(sent: object) -> None:
    check_wire_version(sent, sender="the caller", receiver="this orchestrator")


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (WIRE_VERSION + 1, f"wire version '{WIRE_VERSION + 1}'"),
        (str(WIRE_VERSION + 1), f"wire version '{WIRE_VERSION + 1}'"),
        (None, "no wire version"),
        (True, "wire version 'True'"),  # equal to 1 in Python, but no version number
        ("1" * 100, f"wire version '{'1' * 20}'"),  # a long header is not echoed whole
    ],
)
def test_any_other_version_is_refused_naming_both(sent: object, said: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_wire_version(sent, sender="the caller", receiver="this orchestrator")
    assert refused.value.message == (
        f"the caller speaks {said}, but this orchestrator speaks wire version {WIRE_VERSION}: "
        "run the same Custos release at both ends"
    )
