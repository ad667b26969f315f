"""Release review: a job's result held until enough reviewers approve it, and their votes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from custos.core.states import JobState, ReleaseState
from custos.core.wire_base import WireModel


class ReleaseDecision(StrEnum):
    APPROVE = "approve"
    RETURN = "return"  # send the result back to the researcher with a reason; it is not released
    REJECT = "reject"


class ReleaseVoteCreate(WireModel):
    """A reviewer's vote. A reason is required to return or reject, and kept with an approval."""

    reason: str = Field(default="", max_length=4000)


class ReleaseVote(WireModel):
    reviewer: str
    org: str
    decision: ReleaseDecision
    reason: str
    created_at: datetime


ReleasePartState = Literal["pending", "approved", "returned", "rejected"]

# The gateway's automatic check of an output of code that is not the custodian's (custom code, a
# published package): which rule a finding is about, what kind of value it concerns, and what the
# gateway did about it.
FlagRule = Literal["min_count", "secondary", "rounding", "dominance", "row_level", "unchecked", "truncated"]
FlagValueClass = Literal["count", "magnitude", "table", "json", "file"]
FlagAction = Literal["flagged", "suppressed", "rounded", "unchecked"]


class OutputFlag(WireModel):
    """One finding of a gateway's automatic check of a site's output, for the reviewers: the cell
    (row and column; a column or the whole output when None), the rule, the class of value and what
    was done. It never carries the value itself. `dataset` (gateway/dataset) is filled in when the
    release is shown."""

    dataset: str | None = None
    row: int | None = Field(default=None, ge=0, description="0-based row of the table")
    column: str | None = None
    rule: FlagRule
    value_class: FlagValueClass
    action: FlagAction
    reason: str = Field(max_length=500)


class ReleasePart(WireModel):
    """One contributing org's part of a release review: its reviewers approve it for their org alone,
    and the release is released only when every part is approved."""

    org: str
    datasets: list[str] = Field(description="the job's datasets of this org")
    required: int = Field(description="distinct approvals needed from this org's reviewers")
    approvals: int
    reviewers: list[str] = Field(description="who approved for this org")
    state: ReleasePartState


class ReleasePublic(WireModel):
    """A job's result held for review, without the result."""

    id: str
    job_id: str
    job_state: JobState
    state: ReleaseState
    model: str
    submitter: str
    submitter_org: str
    datasets: list[str]
    orgs: list[str] = Field(description="the orgs whose reviewers must each approve their part")
    required: int = Field(description="distinct approvals needed to release, every org's together")
    approvals: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    parts: list[ReleasePart] = Field(default_factory=list, description="each org's part of the review")


class ReleaseDetail(ReleasePublic):
    """What a reviewer decides on: the held result and the spec and parameters that made it."""

    spec_id: str
    params: dict[str, Any]
    columns: list[str]
    result: dict[str, Any]
    votes: list[ReleaseVote]
    withheld: list[str] = Field(
        default_factory=list,
        description="site outputs of the held result left out: other orgs' parts, for their reviewers",
    )
    flags: list[OutputFlag] = Field(
        default_factory=list,
        description="what the gateways' automatic checks found in the site outputs shown",
    )


HELD_RESULT = "result"  # the name of a pooled result's one output (a model's aggregates)
HeldOutputKind = Literal["table", "json", "file", "result"]


class BlobPublic(WireModel):
    """Bytes an output refers to (a file's, a model's weights): `GET .../blobs/{sha256}` returns them."""

    sha256: str
    size: int


class HeldOutput(WireModel):
    """One output of a held result, as a reviewer's list shows it (no content)."""

    name: str = Field(description="gateway/dataset of a site's output; `result` for a pooled result")
    dataset: str | None = Field(description="the dataset a site's output came from; None when pooled")
    org: str | None = Field(description="the org whose reviewers see this site's output; None when pooled")
    kind: HeldOutputKind
    file_type: str | None = Field(default=None, description="a file output's type, e.g. png")
    blobs: list[BlobPublic] = Field(default_factory=list)
    flags: int = Field(default=0, description="how many flags the gateway's automatic check raised")


class HeldOutputView(HeldOutput):
    """One held output with its content, as held: bytes appear as blob references (`{"$blob": sha256,
    "size": n}`), each fetched from `GET /api/v1/releases/{id}/blobs/{sha256}`."""

    release_id: str
    output: dict[str, Any]
