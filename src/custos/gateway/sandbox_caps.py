"""The sandbox caps of a site: the most any task may use at this gateway (docs/sandbox.md, "Limits").

They are gateway.yaml's `sandbox:` (`custos.gateway.config`), or, at an older site, the whole of its
`sandbox.yaml`. A spec that asks for more is refused; one that asks for less gets what it asked for.
Without them, the caps are `SandboxLimits()`'s defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from custos.sandbox.limits import MIB, SandboxLimits

SANDBOX_CAPS_FILE = "sandbox.yaml"
_DEFAULTS = SandboxLimits()


class SandboxCaps(BaseModel):
    """The file's fields, in the units of a compute spec's `resources`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(default=_DEFAULTS.cpu_seconds, ge=1, le=86_400)
    memory_mb: int = Field(default=_DEFAULTS.memory_bytes // MIB, ge=64, le=262_144)
    wall_seconds: int = Field(default=int(_DEFAULTS.wall_seconds), ge=1, le=86_400)
    max_processes: int = Field(default=_DEFAULTS.max_processes, ge=1, le=4096)
    output_mb: int = Field(default=_DEFAULTS.output_bytes // MIB, ge=1, le=1024)
    output_files: int = Field(default=_DEFAULTS.output_files, ge=1, le=100_000)
    tmp_mb: int = Field(default=_DEFAULTS.tmp_bytes // MIB, ge=1, le=65_536)

    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            cpu_seconds=self.cpu_seconds,
            memory_bytes=self.memory_mb * MIB,
            max_processes=self.max_processes,
            output_bytes=self.output_mb * MIB,
            output_files=self.output_files,
            wall_seconds=float(self.wall_seconds),
            tmp_bytes=self.tmp_mb * MIB,
        )
