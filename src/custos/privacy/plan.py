"""A DP plan: what a job's differentially private queries at one site are, what they cost together
(the amount the gateway reserves from its budget ledger), and the settings the sandboxed code gets.
A model makes one from the policy (`plan_dp`, or `plan_training_dp` for training) before any data is
touched.

A training plan also carries the model's own clip-and-noise of a site's update (`UpdateFilter`), which
the gateway's `clip_and_noise` result filter runs (`custos.privacy.filters`): how an update is laid
out is the model's business, when it must be clipped and noised is the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from custos.privacy.controls import PrivacyCost, TrainingDp

if TYPE_CHECKING:
    import numpy as np

Json = dict[str, Any]


class UpdateFilter(Protocol):
    """A model's clip-and-noise of one site's update under a policy's `privacy.training`."""

    def clip_and_noise(
        self,
        message: Json,
        round_input: Json,
        training: TrainingDp,
        cost: PrivacyCost,
        rng: np.random.Generator,
    ) -> Json:
        """`message` (a site result) with its update clipped to `training.clip_norm` against the
        round's input and noised, marked with the release (`cost`: the job's projected epsilon and
        delta); a message that carries no update passes unchanged. Raise PolicyDenied when the update
        cannot be clipped. MUST draw its noise from `rng` only."""
        ...


@dataclass(frozen=True)
class DpPlan:
    """A round's differentially private queries at one site: how many, what they cost together (the
    amount the gateway reserves), and the settings the sandboxed code gets under `round_input["dp"]`."""

    queries: int
    cost: PrivacyCost
    settings: Json
    # Training only: the model's clip-and-noise of a site's update (see the module docstring).
    update_filter: UpdateFilter | None = field(default=None, compare=False, repr=False)
