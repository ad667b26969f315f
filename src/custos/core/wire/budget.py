"""Privacy budget: what gateways report, the orchestrator's read-only mirror of it, and the cost preview."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.core.wire_base import WireModel


class BudgetStanding(BaseModel):
    """What a gateway puts under `budget` in a DP task's result: the submitter's standing on the
    dataset after the task. Fields a newer gateway adds are ignored, so the mirror keeps working."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    spent_epsilon: float = Field(ge=0)
    cap_epsilon: float = Field(ge=0)
    remaining_epsilon: float = Field(ge=0)
    spent_delta: float = Field(default=0.0, ge=0)
    cap_delta: float = Field(default=0.0, ge=0)
    remaining_delta: float = Field(default=0.0, ge=0)


class BudgetPublic(WireModel):
    """One row of the orchestrator's read-only budget mirror: what a researcher (`kind` researcher)
    or an organisation (`kind` org) has spent on a dataset, as of `updated_at`. The gateway's
    ledger is the authority; the mirror is for display."""

    dataset: str
    kind: Literal["researcher", "org"]
    subject: str = Field(description="the researcher's name, or the org's")
    org: str = Field(description="the subject's org")
    spent_epsilon: float
    cap_epsilon: float
    remaining_epsilon: float
    spent_delta: float
    cap_delta: float
    remaining_delta: float
    updated_at: datetime
    reconciled_at: datetime | None = Field(
        default=None, description="when the mirror was last reconciled to the gateway's ledger"
    )
    behind_tasks: int = Field(
        default=0,
        description="DP tasks leased at the dataset's gateway since its ledger was last reported: "
        "what they spent may not be mirrored yet",
    )
    behind_epsilon: float = Field(default=0.0, description="the most those tasks can have spent")
    site_offline_since: datetime | None = None


class DatasetCostPreview(WireModel):
    """What a job would spend on one dataset, and what would remain of the submitter's budget."""

    dataset: str
    dp: bool = Field(description="false: the dataset's policy has no differential privacy; nothing is spent")
    mechanism: str | None = None
    queries: int = 0
    epsilon: float = 0.0
    delta: float = 0.0
    cap_epsilon: float | None = Field(default=None, description="the researcher's cap")
    cap_delta: float | None = None
    remaining_epsilon: float | None = Field(default=None, description="before the job, per the mirror")
    remaining_delta: float | None = None
    mirrored: bool = Field(
        default=False, description="false: nothing is mirrored yet for you here, so the full cap is shown"
    )
    would_exceed: bool = False


class JobPreview(WireModel):
    """A job's cost, computed from the datasets' policies without running or recording anything."""

    spec_id: str
    model: str
    datasets: list[DatasetCostPreview]


class LedgerSpent(WireModel):
    """What one researcher (of `org`) has spent on a dataset's data, reserved or committed."""

    researcher: str = Field(max_length=128)
    org: str = Field(max_length=64)
    epsilon: float = Field(ge=0, allow_inf_nan=False)
    delta: float = Field(ge=0, allow_inf_nan=False)


class LedgerDataset(WireModel):
    """The ledger's totals for one of the gateway's datasets (over its lineage and those linked)."""

    dataset: str = Field(max_length=64, description="the dataset's name at the gateway")
    spent: list[LedgerSpent] = Field(max_length=10_000)


class LedgerReport(WireModel):
    """The gateway's privacy budget ledger as it stands: its head (the newest reservation's sequence
    number) and its totals per dataset. The orchestrator reconciles its mirror from it."""

    head: int = Field(ge=0)
    datasets: list[LedgerDataset] = Field(max_length=1000)
