"""Custom code requests: the code a researcher submits, the approvals custodians sign over it, and what a
custom code task carries to its gateway."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from custos.core.refs import DatasetRefText
from custos.core.states import CodeRequestState
from custos.core.wire.mock_run import MAX_MOCK_RUN_CHARS, MockRun
from custos.core.wire_base import BASE64_PATTERN, WireModel

CUSTOM_MODEL = "custom@1.0.0"  # the model name and version a custom code job runs as
MAX_CODE_CHARS = 256 * 1024
CODE_APPROVAL_DOMAIN = "custos-code-approval-v1"
MAX_PACKAGE_BYTES = 1024 * 1024  # a code package's archive; its base64 fits the API's body limit
# What custom code returns: a DataFrame, a dict, or the bytes of a file of one allowed type, which the
# gateway recognises from the bytes (custos.computations.custom.files; its FILE_TYPES are these).
CodeOutput = Literal["table", "json", "file:csv", "file:json", "file:parquet", "file:pdf", "file:png"]
CodeDecision = Literal["approve", "deny"]
CodeKind = Literal["function", "package"]
# A function's name, or a package's entrypoint `module.path:function`.
CODE_FUNCTION = r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:)?[A-Za-z_][A-Za-z0-9_]*$"


def code_digest(source: str) -> str:
    """The SHA-256 of a code request's exact source (UTF-8): what an approval is bound to."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def package_digest(archive: bytes) -> str:
    """The SHA-256 of a code package's exact archive bytes: what an approval of a package binds."""
    return hashlib.sha256(archive).hexdigest()


def _check_b64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("package_b64 is not base64") from None
    return value


PackageB64 = Annotated[
    str,
    Field(
        min_length=4,
        max_length=4 * -(-MAX_PACKAGE_BYTES // 3),
        description="a code package's archive",
        json_schema_extra={"pattern": BASE64_PATTERN},
    ),
    AfterValidator(_check_b64),
]
# `CodeSource._one_kind` as the API's description states it: a non-empty source and no package, or
# a package and an empty (or absent) source. A source needs the function to call.
_ONE_KIND: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["source", "function"],
            "properties": {
                "source": {"minLength": 1},
                "function": {"type": "string"},
                "package_b64": {"type": "null"},
            },
        },
        {
            "required": ["package_b64"],
            "properties": {"source": {"maxLength": 0}, "package_b64": {"type": "string"}},
        },
    ]
}


class CodeSource(WireModel):
    """Exactly one of: a module's `source`, or a package's deterministic archive (`package_b64`, see
    `custos.computations.custom.code_package`). The digest an approval binds is that of the one given."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_ONE_KIND)

    source: str = Field(default="", max_length=MAX_CODE_CHARS, description="the exact module source")
    package_b64: PackageB64 | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CodeSource:
        if bool(self.source) == (self.package_b64 is not None):
            raise ValueError("give either source (a module's text) or package_b64 (a package's archive)")
        return self

    @property
    def kind(self) -> CodeKind:
        return "package" if self.package_b64 is not None else "function"

    def archive(self) -> bytes:
        """The package's archive bytes; b"" for a function's source."""
        return b"" if self.package_b64 is None else base64.b64decode(self.package_b64)

    def computed_digest(self) -> str:
        """The SHA-256 of exactly the code given, recomputed from its bytes."""
        if self.package_b64 is not None:
            return package_digest(self.archive())
        return code_digest(self.source)


class CodeRequestCreate(CodeSource):
    """A researcher's Python function, to run as `function(dal, datasets, params)` on `datasets`; or
    a package, whose manifest names the function (its entrypoint), the parameters and the output."""

    function: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
        description="the function to call; a package's comes from its manifest",
    )
    datasets: list[DatasetRefText] = Field(min_length=1, max_length=50)
    params: dict[str, Any] = Field(default_factory=dict)
    output: CodeOutput | None = Field(
        default=None,
        description="table (a DataFrame), json (a dict) or file:TYPE (bytes, e.g. file:png); a package's "
        "comes from its manifest",
    )
    mock_run: MockRun | None = Field(
        default=None,
        description=f"the author's run of this code on the datasets' mock tables, shown to the reviewers "
        f"as the author's word (never run or verified here); at most {MAX_MOCK_RUN_CHARS} characters as "
        "compact JSON, refused with 422 over it, or when its digest is not this code's or it names a "
        "dataset the request does not",
        json_schema_extra={"x-max-json-length": MAX_MOCK_RUN_CHARS},
    )


class CodeApproval(WireModel):
    """What a custodian's signature binds: this exact code (by digest), function, parameters, output
    type, datasets and author. A gateway runs custom code only with one it can verify."""

    request_id: str = Field(max_length=40)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    function: str = Field(max_length=100)
    params_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    output: CodeOutput
    datasets: list[str] = Field(max_length=50)
    author: str = Field(max_length=128)
    author_org: str = Field(max_length=64)
    approved_at: datetime


def code_approval_message(approval: CodeApproval) -> bytes:
    """The bytes an approval's signature covers."""
    from custos.core.digest import canonical_json

    return CODE_APPROVAL_DOMAIN.encode() + b"\n" + canonical_json(approval.model_dump(mode="json"))


class SignedCodeApproval(WireModel):
    approval: CodeApproval
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


class CodeReviewCreate(WireModel):
    """A custodian's decision. To approve, send the approval signed with your kit's key."""

    reason: str = Field(default="", max_length=2000)
    approval: SignedCodeApproval | None = None


class CodeReview(WireModel):
    reviewer: str
    org: str
    decision: CodeDecision
    reason: str
    created_at: datetime


class CodeRequestPublic(WireModel):
    id: str
    state: CodeRequestState
    kind: CodeKind = "function"
    function: str = Field(description="the function called; for a package, its entrypoint")
    digest: str
    datasets: list[str]
    params: dict[str, Any]
    output: CodeOutput
    author: str
    org: str
    orgs: list[str] = Field(description="the orgs whose custodians must each approve")
    reviews: list[CodeReview]
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


class CodeRequestDetail(CodeRequestPublic):
    source: str = Field(description="a function's exact module source; empty for a package")
    package_b64: str | None = Field(default=None, description="a package's exact archive")
    approvals: list[SignedCodeApproval] = Field(default_factory=list)
    mock_run: MockRun | None = Field(
        default=None, description="the author's run on the mock tables, unverified; none if not attached"
    )

    def code(self) -> CodeSource:
        """The code as stored, to recompute its digest from (what a reviewer approves)."""
        return CodeSource(source=self.source, package_b64=self.package_b64)


class CustomCodeTask(CodeSource):
    """What a custom code task carries in its `round_input["code"]`: the source or the package's
    archive, and every approval, so that the gateway can check the code it is handed is the code its
    custodian approved."""

    request_id: str = Field(max_length=40)
    function: str = Field(max_length=100, pattern=CODE_FUNCTION)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    output: CodeOutput
    approvals: list[SignedCodeApproval] = Field(max_length=50)
