"""The version of the wire: what the orchestrator and its gateways must agree on to talk.

There is no negotiation: both ends speak exactly `WIRE_VERSION`. A gateway sends its version in the
`Custos-Wire-Version` header of every request, and the orchestrator refuses another (a request
without the header, such as a browser's, is not checked). The orchestrator sends its version in every
task (`TaskAssignment.wire_version`), and the gateway refuses a task of another.
"""

from __future__ import annotations

from custos.core.errors import InvalidInput

WIRE_VERSION = 1
WIRE_VERSION_HEADER = "Custos-Wire-Version"


def check_wire_version(sent: object, *, sender: str, receiver: str) -> None:
    """Raise InvalidInput unless `sent` (a header's text, or a task's `wire_version`) is this
    release's WIRE_VERSION; the message names both versions and what to do."""
    if sent == str(WIRE_VERSION) or (type(sent) is int and sent == WIRE_VERSION):
        return
    said = "no wire version" if sent is None else f"wire version {str(sent)[:20]!r}"
    raise InvalidInput(
        f"{sender} speaks {said}, but {receiver} speaks wire version {WIRE_VERSION}: "
        "run the same Custos release at both ends"
    )
