"""The site's `sandbox.yaml`: the most any task may use at this gateway (docs/sandbox.md, "Limits").

A compute spec asks for resources; the gateway gives each task the smaller of what was asked and these
caps. The file sits next to `DATASETS.yaml`; without it, the caps are `SandboxLimits()`'s defaults.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custos.core.errors import InvalidInput
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


def load_sandbox_caps(path: Path) -> SandboxLimits:
    """Read a site's sandbox.yaml (no file: the defaults). Raises InvalidInput naming the field."""
    if not path.is_file():
        return _DEFAULTS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return SandboxCaps.model_validate(data).limits()
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path.name}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        accepted = ", ".join(SandboxCaps.model_fields)
        raise InvalidInput(f"{path.name}: {where}: {first['msg']} (fields: {accepted})") from None
