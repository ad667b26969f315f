"""The sandbox limits a compute spec asks for."""

from __future__ import annotations

from pydantic import Field

from custos.core.wire_base import WireModel


class Resources(WireModel):
    """Sandbox limits a compute spec asks for. The gateway caps them with its own maxima."""

    cpu_seconds: int = Field(default=120, ge=1, le=86_400)
    memory_mb: int = Field(default=4096, ge=64, le=262_144)
    wall_seconds: int = Field(default=300, ge=1, le=86_400)
    max_processes: int = Field(default=256, ge=1, le=4096)
    output_mb: int = Field(default=16, ge=1, le=1024)
