"""The messages of the `fedavg` model. Parsing refuses anything not declared here, so a site result
carries weights, counts and aggregate metrics only.

Round inputs (orchestrator -> sites):
    {"phase": "moments"}                                          only when standardize is true
    {"phase": "train", "round": 3, "weights": <safetensors bytes>, "mean": [...], "std": [...]}
    {"phase": "evaluate", "round": 11, "weights": "...", "mean": [...], "std": [...]}

Site results (sites -> gateway filter -> orchestrator):
    {"phase": "moments", "n_train": 812, "mean": [...], "m2": [...]}   (+ "largest", "abs_sum" to the
                                                                       gateway's filter only)
    {"phase": "train", "round": 3, "n_train", "n_holdout", "weights", "train_loss", "train_accuracy",
     "holdout_loss", "holdout_accuracy", "train_seconds"}
    {"phase": "evaluate", "round": 11, "n_holdout", "holdout_loss", "holdout_accuracy"}

`holdout_*` in a train result are the round's global model on the site's held-out rows, before local
training; `train_*` are the site's trained model on its training rows. `filtered` is set by the
gateway's filter; the orchestrator refuses a result without it. Under DP training (`fedavg.dp`) the
gateway adds `"dp"` to the train round's input (DP-SGD settings) and to a train result (how its
update was clipped and noised), and `"budget"` (the submitter's standing) to train and evaluate results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.computations.fedavg.dp import DpSgdRound, UpdateRelease
from custos.computations.messages import parse_message
from custos.core.errors import InvalidInput

Metric = float | None
# The most contributions per feature a moments result carries for the dominance rule (its n is at most 100).
MAX_LARGEST = 100


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class MomentsRound(_Message):
    phase: Literal["moments"]


class WeightsRound(_Message):
    phase: Literal["train", "evaluate"]
    round: int = Field(ge=1)
    weights: bytes
    mean: list[float] | None = None
    std: list[float] | None = None
    # Set by the gateway (never the orchestrator) when the policy asks for DP-SGD.
    dp: DpSgdRound | None = None


class SiteMoments(_Message):
    phase: Literal["moments"]
    n_train: int = Field(ge=0)
    mean: list[float]
    m2: list[float]
    filtered: bool = False
    # Site -> gateway only (the filter removes them): per feature, the largest absolute values,
    # largest first, and the sum of absolute values, for the policy's dominance rule.
    largest: list[list[float]] | None = None
    abs_sum: list[float] | None = None


class SiteTrain(_Message):
    phase: Literal["train"]
    round: int = Field(ge=1)
    n_train: int = Field(ge=0)
    n_holdout: int = Field(ge=0)
    weights: bytes | None
    train_loss: Metric = None
    train_accuracy: Metric = None
    holdout_loss: Metric = None
    holdout_accuracy: Metric = None
    train_seconds: float = Field(default=0.0, ge=0)
    filtered: bool = False
    # Set by the gateway's clip_and_noise filter; the sandbox's result must not carry them.
    dp: UpdateRelease | None = None
    budget: dict[str, float] | None = None


class SiteEvaluate(_Message):
    phase: Literal["evaluate"]
    round: int = Field(ge=1)
    n_holdout: int = Field(ge=0)
    holdout_loss: Metric = None
    holdout_accuracy: Metric = None
    filtered: bool = False
    budget: dict[str, float] | None = None


RoundInput = MomentsRound | WeightsRound
SiteResult = SiteMoments | SiteTrain | SiteEvaluate


class FedAvgState(_Message):
    """What the orchestrator persists between rounds (Job.model_state)."""

    phase: Literal["moments", "train", "evaluate"]
    round: int = Field(ge=0)
    weights: bytes
    momentum: bytes | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    site_metrics: list[dict[str, Any]] = Field(default_factory=list)
    # Each site's UpdateRelease from the last train round, under DP training.
    dp: dict[str, dict[str, Any]] | None = None


def parse_round_input(value: Mapping[str, Any]) -> RoundInput:
    if value.get("phase") == "moments":
        return parse_message(MomentsRound, value, "the round input")
    return parse_message(WeightsRound, value, "the round input")


def parse_site_result(value: Mapping[str, Any], what: str) -> SiteResult:
    phase = value.get("phase")
    if phase == "moments":
        return parse_message(SiteMoments, value, what)
    if phase == "train":
        return parse_message(SiteTrain, value, what)
    if phase == "evaluate":
        return parse_message(SiteEvaluate, value, what)
    raise InvalidInput(f"{what} has phase {phase!r}; expected moments, train or evaluate")
