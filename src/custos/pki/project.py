"""The project file (`project.yaml`) that provisioning reads: the project, its orchestrator, its participants.

    name: demo
    orchestrator: {host: 127.0.0.1, port: 8443}
    certificate_days: 825          # optional: how long participant certificates last
    participants:
      - name: site-a
        type: gateway
        org: hospital-a
        authorization: {...}       # optional, gateways only: written to the kit as authorization.yaml
      - {name: alice@university.org, type: user, org: university, role: lead_researcher}

Names are normalised once, here (NFKC, then case folded), and must then be plain ASCII, so a look-alike
such as "alice" spelled with a Cyrillic a (U+0430) is refused rather than provisioned as a second Alice.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from custos.core.errors import InvalidInput
from custos.core.identity import USER_ROLES, Role
from custos.core.refs import check_name
from custos.core.yamltext import parse_yaml_mapping

MAX_PROJECT_BYTES = 1024 * 1024
MAX_PARTICIPANTS = 10_000
DEFAULT_CERTIFICATE_DAYS = 825
# No participant certificate outlives the root CA, which provisioning makes valid for ten years.
MAX_CERTIFICATE_DAYS = 3650
# The authorization file goes into the kit, whose files are capped at 64 KiB each.
MAX_AUTHORIZATION_BYTES = 64 * 1024
# `ca/` in the output folder holds the root CA, so no kit may be called that.
RESERVED_NAMES = frozenset({"ca"})

_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
_ORG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_name(value: str, what: str) -> str:
    """NFKC + case folding, then refuse anything that is not plain ASCII."""
    folded = unicodedata.normalize("NFKC", value).casefold().strip()
    for char in folded:
        if not char.isascii():
            label = unicodedata.name(char, "a non-ASCII character")
            raise ValueError(
                f"{what} {value!r} contains {label} (U+{ord(char):04X}); names must use plain ASCII "
                "letters and digits, so look-alike letters from other alphabets are refused"
            )
    return folded


def _gateway_name(value: str, what: str) -> str:
    try:
        return check_name(normalize_name(value, what), what)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


class OrchestratorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    name: str = "orchestrator"

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip().lower()
        if is_ip_address(host):
            return host
        labels = host.removesuffix(".").split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise ValueError(f"host {value!r} is not an IP address or a DNS name such as custos.example.org")
        return host.removesuffix(".")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _gateway_name(value, "orchestrator name")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


class ParticipantSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: Literal["gateway", "user", "keybroker"]
    org: str
    role: Role
    certificate_days: int | None = Field(default=None, ge=1, le=MAX_CERTIFICATE_DAYS)
    authorization: dict[str, Any] | None = None
    # A key broker serves HTTPS: the address its certificate names and it listens on.
    host: str | None = Field(default=None, min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _gateway_role(cls, data: Any) -> Any:
        if isinstance(data, dict) and "role" not in data:
            role = {"gateway": Role.GATEWAY, "keybroker": Role.KEY_BROKER}.get(str(data.get("type")))
            if role is not None:
                return {**data, "role": role.value}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = normalize_name(value, "name")
        if not _USER_NAME.match(name):
            raise ValueError(
                f"name {value!r} is not accepted; use 1-128 lower-case letters, digits, "
                "'.', '_', '@' or '-', starting with a letter or digit"
            )
        return name

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        org = normalize_name(value, "org")
        if not _ORG.match(org):
            raise ValueError(
                f"org {value!r} is not accepted; use 1-63 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return org

    @field_validator("authorization", mode="before")
    @classmethod
    def _authorization(cls, value: Any) -> Any:
        # Its meaning is the gateway's business (custos.policy); here it only has to fit in a kit file.
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(
                f"authorization must be a mapping (key: value lines), not {type(value).__name__}"
            )
        try:
            text = authorization_yaml(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"authorization holds a value YAML cannot write: {exc}") from exc
        if len(text.encode()) > MAX_AUTHORIZATION_BYTES:
            raise ValueError(f"authorization is larger than {MAX_AUTHORIZATION_BYTES} bytes as YAML")
        return value

    @model_validator(mode="after")
    def _fits_type(self) -> ParticipantSpec:
        if self.authorization is not None and self.type != "gateway":
            raise ValueError(
                f"user {self.name!r} has an authorization; only a gateway carries a site authorization file"
            )
        if (self.host is not None or self.port is not None) and self.type != "keybroker":
            raise ValueError(f"{self.type} {self.name!r} has a host or port; only a keybroker serves")
        if self.type == "keybroker":
            if self.role is not Role.KEY_BROKER or self.host is None:
                raise ValueError(
                    f"keybroker {self.name!r} needs role key_broker (the default) and a host to serve on"
                )
        elif self.type == "gateway":
            _gateway_name(self.name, "gateway name")
            if self.role is not Role.GATEWAY:
                raise ValueError(
                    f"gateway {self.name!r} has role {self.role.value!r}; a gateway's role is gateway"
                )
        elif self.role not in USER_ROLES:
            accepted = ", ".join(sorted(r.value for r in USER_ROLES))
            raise ValueError(
                f"user {self.name!r} has role {self.role.value!r}; accepted roles are {accepted}"
            )
        return self


class ProjectSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    orchestrator: OrchestratorSpec = Field(default_factory=OrchestratorSpec)
    certificate_days: int = Field(default=DEFAULT_CERTIFICATE_DAYS, ge=1, le=MAX_CERTIFICATE_DAYS)
    participants: list[ParticipantSpec] = Field(default_factory=list, max_length=MAX_PARTICIPANTS)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _gateway_name(value, "project name")

    @model_validator(mode="after")
    def _names_unique(self) -> ProjectSpec:
        seen = {self.orchestrator.name: "orchestrator.name"}
        for index, participant in enumerate(self.participants):
            where = f"participants.{index}.name"
            if participant.name in RESERVED_NAMES:
                raise ValueError(
                    f"{where} {participant.name!r} is reserved for the root CA folder; pick another"
                )
            if participant.name in seen:
                raise ValueError(
                    f"{where} {participant.name!r} is already used by {seen[participant.name]} "
                    "(names are compared after case folding)"
                )
            seen[participant.name] = where
        if self.orchestrator.name in RESERVED_NAMES:
            raise ValueError(f"orchestrator.name {self.orchestrator.name!r} is reserved; pick another")
        return self

    def certificate_days_of(self, participant: ParticipantSpec) -> int:
        return participant.certificate_days or self.certificate_days


def authorization_yaml(authorization: dict[str, Any]) -> str:
    """The kit's `authorization.yaml`: the mapping as written, in its own key order."""
    return yaml.safe_dump(authorization, sort_keys=False, allow_unicode=True)


def dump_project(spec: ProjectSpec) -> str:
    """`spec` as a project file that `load_project` reads back to an equal spec."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def load_project(path: Path) -> ProjectSpec:
    """Read and check a project file. Raises InvalidInput naming the file, the field and the problem."""
    if not path.is_file():
        raise InvalidInput(f"project file {path} does not exist")
    with path.open("rb") as handle:
        raw = handle.read(MAX_PROJECT_BYTES + 1)
    data = parse_yaml_mapping(
        raw,
        f"project file {path}",
        max_bytes=MAX_PROJECT_BYTES,
        expected="keys name, orchestrator, participants",
    )
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InvalidInput(f"{path}: {_describe(errors[0])}{more}") from exc


def parse_participant(data: dict[str, Any], source: str) -> ParticipantSpec:
    """A participant given outside a project file (e.g. on the command line); errors name `source`."""
    try:
        return ParticipantSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            accepted = ", ".join(ParticipantSpec.model_fields)
            message = f"{first['loc'][0]}: unknown field; accepted fields are {accepted}"
        else:
            message = _describe(first)
        raise InvalidInput(f"{source}: {message}") from exc


def _describe(error: ErrorDetails) -> str:
    loc = error["loc"]
    field = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        accepted = ", ".join(_model_at(loc).model_fields)
        return f"{field}: unknown field; accepted fields are {accepted}"
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{field}: {message}" if field and not message.startswith(field) else message
    if error["type"] == "missing":
        return f"{field}: required but missing"
    return f"{field or 'project'}: {error['msg']}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model that owns the last part of an error location."""
    if loc[:1] == ("orchestrator",):
        return OrchestratorSpec
    if loc[:1] == ("participants",) and len(loc) >= 3:
        return ParticipantSpec
    return ProjectSpec
