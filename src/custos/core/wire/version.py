"""The version of the wire: what the orchestrator and its gateways must agree on to talk."""

from __future__ import annotations

WIRE_VERSION = 1
