"""Runs one Python computation in isolation: no network, read-only system, limits enforced."""

from custos.sandbox.bubblewrap import BubblewrapRunner
from custos.sandbox.limits import SandboxExit, SandboxLimits
from custos.sandbox.runner import Bind, Runner, SandboxRequest, SandboxResult

__all__ = [
    "Bind",
    "BubblewrapRunner",
    "Runner",
    "SandboxExit",
    "SandboxLimits",
    "SandboxRequest",
    "SandboxResult",
]
