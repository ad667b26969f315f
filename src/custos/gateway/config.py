"""The custodian's `gateway.yaml`, beside `DATASETS.yaml`: how this gateway runs (docs/operations.md).

    sandbox: {cpu_seconds: 120, memory_mb: 4096, ...}   # the caps: the most any task may use here
    resources:                                          # what a spec's `template` means at this site
      small: {cpu_seconds: 60, memory_mb: 1024, wall_seconds: 120, max_processes: 64, output_mb: 16}
    tasks_in_flight: 4      # job runtimes kept live at once
    warm_spares: 1          # sandboxes booted ahead of need (0: none, the lightest idle gateway)
    poll_wait_s: 20         # how long a poll asks to be held (capped by the orchestrator's long poll);
                            # a busy gateway heartbeats this often
    crl_refresh_s: 30       # how often the project's revocation list is fetched again
    log_level: info
    metrics_file: /var/lib/node_exporter/textfile/custos-site-a.prom

Every key is optional. The caps are a ceiling: a spec that asks for more (in numbers, or through a
size) is refused at activation with the cap named (`check_resources`). A size left out is the
built-in one (`RESOURCE_TEMPLATES`) cut down to the caps; a size written out must fit in the caps, and
its wall time in the built-in size's, which is what the orchestrator leases the task for.

Older sites have a `sandbox.yaml` holding the caps alone: without a gateway.yaml it is still read, as
gateway.yaml's `sandbox:`; with both, the start is refused until it is moved in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.wire import RESOURCE_TEMPLATES, TEMPLATE_NAMES, Resources, ResourceSizes, TemplateName
from custos.gateway.sandbox_caps import SANDBOX_CAPS_FILE, SandboxCaps
from custos.sandbox.limits import MIB, SandboxLimits

GATEWAY_CONFIG_FILE = "gateway.yaml"
LogLevelName = Literal["debug", "info", "warning", "error"]
# Resources fields and the caps' fields that bound them, with the caps' unit.
_BOUNDS = {
    "cpu_seconds": ("cpu_seconds", 1),
    "memory_mb": ("memory_bytes", MIB),
    "wall_seconds": ("wall_seconds", 1),
    "max_processes": ("max_processes", 1),
    "output_mb": ("output_bytes", MIB),
}


class GatewayConfigFile(BaseModel):
    """The file's fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sandbox: SandboxCaps = SandboxCaps()
    resources: dict[TemplateName, ResourceSizes] = {}
    tasks_in_flight: int = Field(default=4, ge=1, le=64)
    warm_spares: int = Field(default=1, ge=0, le=8)
    poll_wait_s: float = Field(default=20.0, ge=1, le=300)
    crl_refresh_s: float = Field(default=30.0, ge=1, le=86400)
    log_level: LogLevelName = "info"
    metrics_file: Path | None = None

    @model_validator(mode="after")
    def _sizes_fit(self) -> GatewayConfigFile:
        caps = self.sandbox.limits()
        for name, size in self.resources.items():
            over = over_caps(size.model_dump(), caps)
            if over:
                raise ValueError(f"resources.{name}: {over} (sandbox: the caps)")
            lease = RESOURCE_TEMPLATES[name].wall_seconds
            if size.wall_seconds > lease:
                raise ValueError(
                    f"resources.{name}.wall_seconds {size.wall_seconds} is more than {lease}, the wall "
                    f"time the orchestrator leases a {name} task for"
                )
        return self


@dataclass(frozen=True)
class GatewayConfig:
    """gateway.yaml as the gateway uses it: caps, every size resolved, and where it came from."""

    caps: SandboxLimits = field(default_factory=SandboxLimits)
    templates: dict[TemplateName, ResourceSizes] = field(default_factory=dict)
    tasks_in_flight: int = 4
    warm_spares: int = 1
    poll_wait_s: float = 20.0
    crl_refresh_s: float = 30.0
    log_level: LogLevelName = "info"
    metrics_file: Path | None = None
    origin: str = "defaults (no gateway.yaml)"

    @classmethod
    def from_file(cls, parsed: GatewayConfigFile, origin: str, base: Path) -> GatewayConfig:
        caps = parsed.sandbox.limits()
        templates = {
            name: parsed.resources.get(name) or fit(RESOURCE_TEMPLATES[name], caps) for name in TEMPLATE_NAMES
        }
        metrics = parsed.metrics_file
        return cls(
            caps=caps,
            templates=templates,
            tasks_in_flight=parsed.tasks_in_flight,
            warm_spares=parsed.warm_spares,
            poll_wait_s=parsed.poll_wait_s,
            crl_refresh_s=parsed.crl_refresh_s,
            log_level=parsed.log_level,
            metrics_file=(base / metrics) if metrics is not None and not metrics.is_absolute() else metrics,
            origin=origin,
        )

    def limits_for(self, resources: Resources) -> SandboxLimits:
        return task_limits(resources, self.caps, self.templates)


def task_limits(
    resources: Resources, caps: SandboxLimits, templates: Mapping[TemplateName, ResourceSizes]
) -> SandboxLimits:
    """The limits of a task whose spec asks for `resources`; raises PolicyDenied naming the cap when
    it asks for more than this site allows. A template takes this site's size of that name."""
    check_resources(resources, caps)
    if resources.template is not None:
        size = templates.get(resources.template) or fit(RESOURCE_TEMPLATES[resources.template], caps)
        resources = Resources(**size.model_dump())
    return SandboxLimits.from_resources(resources, caps)


def fit(size: ResourceSizes, caps: SandboxLimits) -> ResourceSizes:
    """A built-in size cut down to the site's caps."""
    values = size.model_dump()
    for name, (cap_name, unit) in _BOUNDS.items():
        values[name] = min(values[name], int(getattr(caps, cap_name) // unit))
    return ResourceSizes(**values)


def over_caps(asked: dict[str, int], caps: SandboxLimits) -> str | None:
    """The first number in `asked` above its cap, said in a sentence; None if all fit."""
    for name, (cap_name, unit) in _BOUNDS.items():
        value = asked.get(name)
        cap = getattr(caps, cap_name) / unit
        if value is not None and value > cap:
            return f"{name} {value} is more than this gateway's cap of {cap:g} (sandbox.{name})"
    return None


def check_resources(resources: Resources, caps: SandboxLimits) -> None:
    """Refuse a spec that asks for more than the caps. A template is this site's to size, so it
    always fits (its sizes are checked against the caps when gateway.yaml is read)."""
    over = over_caps(resources.asked(), caps)
    if over is not None:
        raise PolicyDenied(f"the spec asks for more than this gateway allows: {over}")


def load_gateway_config(folder: Path, overrides: Mapping[str, object] | None = None) -> GatewayConfig:
    """Read `folder`'s gateway.yaml (else its older sandbox.yaml, else the defaults), with the
    `overrides` of `custos gateway start`'s flags over it (`{"warm_spares": 0, "sandbox": {...}}`).
    Raises InvalidInput naming the file and the field."""
    path, legacy = folder / GATEWAY_CONFIG_FILE, folder / SANDBOX_CAPS_FILE
    if path.is_file() and legacy.is_file():
        raise InvalidInput(
            f"{folder} has both {GATEWAY_CONFIG_FILE} and {SANDBOX_CAPS_FILE}: move the caps of "
            f"{SANDBOX_CAPS_FILE} under {GATEWAY_CONFIG_FILE}'s sandbox: and remove {SANDBOX_CAPS_FILE}"
        )
    if legacy.is_file():
        data: object = {"sandbox": _read_yaml(legacy)}
        source = legacy
    elif path.is_file():
        data = _read_yaml(path)
        source = path
    else:
        data, source = {}, path
    origin = source.name if source.is_file() else "defaults (no gateway.yaml)"
    if overrides and isinstance(data, dict):
        data = _merged(data, overrides)
        origin += " and flags"
    try:
        parsed = GatewayConfigFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-after", "[key]")))
        if source is legacy:
            where = where.removeprefix("sandbox").lstrip(".")
        accepted = ", ".join((SandboxCaps if source is legacy else GatewayConfigFile).model_fields)
        message = str(first["msg"]).removeprefix("Value error, ")
        named = f"{source.name} (or its flag)" if overrides else source.name
        raise InvalidInput(f"{named}: {where or 'the file'}: {message} (fields: {accepted})") from None
    return GatewayConfig.from_file(parsed, origin, folder)


def _merged(data: dict[str, object], overrides: Mapping[str, object]) -> dict[str, object]:
    merged = dict(data)
    for key, value in overrides.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            merged[key] = {**below, **value}
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise InvalidInput(f"{path.name}: not valid YAML{where} ({problem})") from None
