"""The sandbox limits a compute spec asks for: numbers, or a named size (`small`, `medium`, `large`).

A field left out (None) asks for nothing: the gateway gives the task its own cap for it. Each gateway
refuses, at activation, a spec that asks for more than its caps (naming the cap), and says what each
size means at its site (`gateway.yaml`'s `resources:`); `RESOURCE_TEMPLATES` are the sizes when it
says nothing, and the orchestrator's lease of a task is as long as the wall time its size allows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from custos.core.wire_base import WireModel

TemplateName = Literal["small", "medium", "large"]
TEMPLATE_NAMES: tuple[TemplateName, ...] = ("small", "medium", "large")
_NUMBER_FIELDS = ("cpu_seconds", "memory_mb", "wall_seconds", "max_processes", "output_mb")
# The wall time a task gets when the spec and its size say nothing (the sandbox's default).
_DEFAULT_WALL_SECONDS = 300


class ResourceSizes(WireModel):
    """The numbers of a size, all given."""

    cpu_seconds: int = Field(ge=1, le=86_400)
    memory_mb: int = Field(ge=64, le=262_144)
    wall_seconds: int = Field(ge=1, le=86_400)
    max_processes: int = Field(ge=1, le=4096)
    output_mb: int = Field(ge=1, le=1024)


RESOURCE_TEMPLATES: dict[TemplateName, ResourceSizes] = {
    "small": ResourceSizes(cpu_seconds=60, memory_mb=1024, wall_seconds=120, max_processes=64, output_mb=16),
    "medium": ResourceSizes(
        cpu_seconds=120, memory_mb=4096, wall_seconds=300, max_processes=256, output_mb=16
    ),
    "large": ResourceSizes(
        cpu_seconds=1800, memory_mb=16_384, wall_seconds=3600, max_processes=512, output_mb=256
    ),
}


class Resources(WireModel):
    """Sandbox limits a compute spec asks for: a `template` (a size the gateways define), or numbers,
    not both. A gateway refuses a spec that asks for more than its caps."""

    # "a template or numbers, not both" as the API's description states it: no template, or no number.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"template": {"type": "null"}}},
                {"properties": {name: {"type": "null"} for name in _NUMBER_FIELDS}},
            ]
        }
    )

    template: TemplateName | None = None
    cpu_seconds: int | None = Field(default=None, ge=1, le=86_400)
    memory_mb: int | None = Field(default=None, ge=64, le=262_144)
    wall_seconds: int | None = Field(default=None, ge=1, le=86_400)
    max_processes: int | None = Field(default=None, ge=1, le=4096)
    output_mb: int | None = Field(default=None, ge=1, le=1024)

    @model_validator(mode="after")
    def _template_or_numbers(self) -> Resources:
        if self.template is not None and self.asked():
            raise ValueError(
                f"resources: give a template ({self.template}) or numbers ({', '.join(self.asked())}), "
                "not both"
            )
        return self

    def asked(self) -> dict[str, int]:
        """The numbers the spec states (a field left out asks for nothing)."""
        return {name: value for name in _NUMBER_FIELDS if (value := getattr(self, name)) is not None}

    def lease_wall_seconds(self) -> int:
        """The wall time the orchestrator leases a task for: the spec's, its size's, or the default."""
        if self.wall_seconds is not None:
            return self.wall_seconds
        if self.template is not None:
            return RESOURCE_TEMPLATES[self.template].wall_seconds
        return _DEFAULT_WALL_SECONDS
