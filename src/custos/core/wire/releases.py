"""Release review: a job's result held until enough reviewers approve it, and their votes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

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
    orgs: list[str] = Field(description="the orgs whose reviewers may vote")
    required: int = Field(description="distinct approvals needed to release")
    approvals: int
    reason: str | None
    created_at: datetime
    updated_at: datetime


class ReleaseDetail(ReleasePublic):
    """What a reviewer decides on: the held result and the spec and parameters that made it."""

    spec_id: str
    params: dict[str, Any]
    columns: list[str]
    result: dict[str, Any]
    votes: list[ReleaseVote]
