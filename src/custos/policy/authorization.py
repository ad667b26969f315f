"""Site authorization (`authorization.yaml` in a gateway's kit), NVIDIA FLARE's semantics: which user
roles may do what at this site, whatever the orchestrator decided.

    format_version: 1
    permissions:
      project_admin: any            # a bare condition applies to every right
      lead_researcher:
        submit_job: ["not n:mallory", "not o:rival-corp", any]   # block rules first
        activate_spec: any

Rights: submit_job (run a job's compute tasks), activate_spec (validate and prepare a compute spec, the
PREPARE task), custom_code (run reviewed custom code; reserved). Conditions: any, none, o:site (the
submitter's org is the site's org), n:submitter and o:submitter (always true for a task, whose subject
is its submitter), o:NAME, n:NAME; "not " before one makes it a block rule. Block rules are checked
first and any match denies; then any positive match allows; anything else is denied. Names and orgs
compare case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.identity import USER_ROLES, Role
from custos.core.yamltext import parse_yaml_mapping

AUTHORIZATION_FILE = "authorization.yaml"
FORMAT_VERSION = 1
MAX_AUTHORIZATION_BYTES = 64 * 1024
BLOCK_PREFIX = "not "

DEFAULT_AUTHORIZATION_YAML = """\
format_version: 1
permissions:
  project_admin: any
  org_admin:
    submit_job: o:site
    activate_spec: o:site
  lead_researcher:
    submit_job: any
    activate_spec: any
  member_researcher:
    submit_job: none
"""


class Right(StrEnum):
    SUBMIT_JOB = "submit_job"
    ACTIVATE_SPEC = "activate_spec"
    CUSTOM_CODE = "custom_code"  # reserved for reviewed custom code; parsed, not yet asked for


class ConditionKind(StrEnum):
    ANY = "any"
    NONE = "none"
    SITE_ORG = "o:site"
    SUBMITTER = "submitter"  # n:submitter, o:submitter
    ORG = "o:NAME"
    NAME = "n:NAME"


_ROLE_NAMES = ", ".join(sorted(r.value for r in USER_ROLES))
_RIGHT_NAMES = ", ".join(r.value for r in Right)
_CONDITIONS = "any, none, o:site, o:submitter, n:submitter, o:NAME, n:NAME, each optionally after 'not '"


class Condition(BaseModel):
    """One parsed condition. `text` is as written, for reasons; `value` is the casefolded NAME."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    blocks: bool
    kind: ConditionKind
    value: str = ""

    @classmethod
    def parse(cls, raw: object, where: str) -> Condition:
        if not isinstance(raw, str):
            raise ValueError(f"{where}: expected a condition ({_CONDITIONS}), not {raw!r}")
        text = " ".join(raw.split())
        body = text.casefold()
        blocks = body.startswith(BLOCK_PREFIX)
        body = body.removeprefix(BLOCK_PREFIX).strip() if blocks else body
        kind, value = _condition_kind(body)
        if kind is None:
            raise ValueError(f"{where}: condition {raw!r} is not accepted; accepted: {_CONDITIONS}")
        if blocks and kind is ConditionKind.NONE:
            raise ValueError(f"{where}: condition {raw!r} blocks nobody; remove it")
        return cls(text=text, blocks=blocks, kind=kind, value=value)

    def matches(self, subject: Subject) -> str | None:
        """Why this condition (ignoring `not`) holds for `subject` ("" when it always does), or None
        when it does not."""
        match self.kind:
            case ConditionKind.ANY:
                return ""
            case ConditionKind.NONE:
                return None
            case ConditionKind.SITE_ORG:
                same = subject.org.casefold() == subject.site_org.casefold()
                return f"submitter org {subject.org} is the site's org" if same else None
            case ConditionKind.SUBMITTER:
                return "the submitter of a task is always its subject"
            case ConditionKind.ORG:
                return f"submitter org is {subject.org}" if subject.org.casefold() == self.value else None
            case ConditionKind.NAME:
                return f"submitter name is {subject.user}" if subject.user.casefold() == self.value else None


def _condition_kind(body: str) -> tuple[ConditionKind | None, str]:
    if body in ("any", "none", "o:site"):
        return ConditionKind(body), ""
    if body in ("n:submitter", "o:submitter"):
        return ConditionKind.SUBMITTER, ""
    prefix, sep, name = body.partition(":")
    if sep and prefix in ("o", "n") and name and not any(c.isspace() for c in name):
        return (ConditionKind.ORG if prefix == "o" else ConditionKind.NAME), name
    return None, ""


Rules = dict[Role, dict[Right, tuple[Condition, ...]]]


class SiteAuthorization(BaseModel):
    """The rules of one site: for each user role, the conditions under which it holds each right."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    permissions: Rules

    @field_validator("format_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if value != FORMAT_VERSION or isinstance(value, bool):
            raise ValueError(f"format_version {value!r} is not supported; accepted: {FORMAT_VERSION}")
        return value

    @field_validator("permissions", mode="before")
    @classmethod
    def _permissions(cls, value: object) -> Rules:
        if not isinstance(value, dict):
            raise ValueError(f"permissions: expected a mapping of role to rights; roles are {_ROLE_NAMES}")
        return {_role(key): _rights(f"permissions.{key}", rights) for key, rights in value.items()}

    def conditions(self, role: Role, right: Right) -> tuple[Condition, ...] | None:
        return self.permissions.get(role, {}).get(right)


def _role(key: object) -> Role:
    if not isinstance(key, str) or key not in {r.value for r in USER_ROLES}:
        raise ValueError(f"permissions: role {key!r} is not accepted; accepted roles are {_ROLE_NAMES}")
    return Role(key)


def _rights(where: str, value: object) -> dict[Right, tuple[Condition, ...]]:
    if not isinstance(value, dict):  # a bare condition (or list) gives every right
        conditions = _conditions(where, value)
        return dict.fromkeys(Right, conditions)
    rights: dict[Right, tuple[Condition, ...]] = {}
    for key, conditions in value.items():
        if not isinstance(key, str) or key not in {r.value for r in Right}:
            raise ValueError(f"{where}: right {key!r} is not accepted; accepted rights are {_RIGHT_NAMES}")
        rights[Right(key)] = _conditions(f"{where}.{key}", conditions)
    return rights


def _conditions(where: str, value: object) -> tuple[Condition, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"{where}: the list of conditions is empty; write none to deny")
    return tuple(
        Condition.parse(item, f"{where}[{i}]" if isinstance(value, list) else where)
        for i, item in enumerate(items)
    )


def load_authorization(text: str, source: str) -> SiteAuthorization:
    """Parse authorization YAML safely. Raises InvalidInput naming the field and what is accepted."""
    data = parse_yaml_mapping(
        text, source, max_bytes=MAX_AUTHORIZATION_BYTES, expected="keys format_version, permissions"
    )
    try:
        return SiteAuthorization.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "authorization"
        match first["type"]:
            case "value_error":
                message = str(first["ctx"]["error"])
            case "extra_forbidden":
                message = f"key {field!r} is not accepted; accepted keys are format_version, permissions"
            case "missing":
                message = f"{field} is required"
            case _:
                message = f"{field}: {first['msg']}"
        raise InvalidInput(f"{source}: {message}") from None


def default_authorization() -> SiteAuthorization:
    """The rules a gateway applies when its kit holds no authorization.yaml."""
    return load_authorization(DEFAULT_AUTHORIZATION_YAML, "the built-in default authorization")


def load_site_authorization(kit_dir: Path) -> tuple[SiteAuthorization, str]:
    """The site's rules from `<kit>/authorization.yaml`, or the defaults; and where they came from."""
    path = kit_dir / AUTHORIZATION_FILE
    if not path.exists():
        return default_authorization(), "built-in defaults"
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file; it must hold the site's authorization YAML")
    with path.open("rb") as handle:
        raw = handle.read(MAX_AUTHORIZATION_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    return load_authorization(text, str(path)), f"{AUTHORIZATION_FILE} in the kit"


def parse_right(value: str) -> Right:
    if value not in {r.value for r in Right}:
        raise InvalidInput(f"right {value!r} is not accepted; accepted rights are {_RIGHT_NAMES}")
    return Right(value)


def parse_user_role(value: str) -> Role:
    if value not in {r.value for r in USER_ROLES}:
        raise InvalidInput(f"role {value!r} is not accepted; accepted roles are {_ROLE_NAMES}")
    return Role(value)


@dataclass(frozen=True)
class Subject:
    user: str
    org: str
    site_org: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # one sentence naming the rule that decided


def decide(
    auth: SiteAuthorization, *, site_org: str, user: str, org: str, role: str, right: Right
) -> Decision:
    """Whether `user` of `org`, in `role`, holds `right` at a site of `site_org`: block rules first,
    then any positive condition, else default deny."""
    if role not in {r.value for r in USER_ROLES}:
        return Decision(
            False, f"role {role!r} is not a user role, and only users hold the right {right} ({_ROLE_NAMES})"
        )
    conditions = auth.conditions(Role(role), right)
    if conditions is None:
        return Decision(False, f"no rule gives {role} the right {right}; denied by default")
    subject = Subject(user=user, org=org, site_org=site_org)
    for condition in (c for c in conditions if c.blocks):
        why = condition.matches(subject)
        if why is not None:
            return Decision(False, f"blocked by '{condition.text}' for {role} {right}" + _because(why))
    positive = [c for c in conditions if not c.blocks]
    for condition in positive:
        why = condition.matches(subject)
        if why is not None:
            return Decision(True, f"allowed by '{condition.text}' for {role} {right}" + _because(why))
    if all(c.kind is ConditionKind.NONE for c in positive):
        return Decision(False, f"denied by 'none' for {role} {right}")
    written = ", ".join(f"'{c.text}'" for c in positive)
    return Decision(
        False,
        f"no condition for {role} {right} ({written}) matches {user} of {org} at this site (org {site_org}); "
        "denied by default",
    )


def _because(why: str) -> str:
    return f": {why}" if why else ""


def check_authorization(
    auth: SiteAuthorization, *, site_org: str, user: str, org: str, role: str, right: Right
) -> None:
    """Raise PolicyDenied with the deciding rule unless the site's authorization allows this."""
    decision = decide(auth, site_org=site_org, user=user, org=org, role=role, right=right)
    if not decision.allowed:
        raise PolicyDenied(decision.reason)


def can_authorize(
    auth: SiteAuthorization, *, site_org: str, user: str, org: str, role: str, right: Right
) -> bool:
    return decide(auth, site_org=site_org, user=user, org=org, role=role, right=right).allowed
