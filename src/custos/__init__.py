"""Custos: compute-to-data. Data stays with its custodian; only permitted results leave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "__version__", "launch"]

if TYPE_CHECKING:
    from custos.local.launch import launch
    from custos.sdk import Client


def __getattr__(name: str) -> Any:
    # `custos.Client` is imported on first use, so `import custos` stays light for the sandbox.
    if name == "Client":
        from custos.sdk import Client

        return Client
    if name == "launch":
        # `custos.launch(n_gateways=3)`: a developer's deployment on loopback (custos.local.launch).
        from custos.local.launch import launch

        return launch
    raise AttributeError(f"module 'custos' has no attribute {name!r}")
