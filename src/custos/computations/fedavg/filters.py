"""`fedavg`'s part of the gateway's `clip_and_noise` result filter (`custos.privacy.filters`): the
site's update (its weights less the round's global weights) clipped and noised in the job's weight
layout (`custos.computations.fedavg.dp.clip_and_noise`), and the gateway's mark on the release. The
filter decides when it runs (the dataset's policy); this decides what an update is. A training plan
(`FedAvgModel.plan_training_dp`) carries it to the filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from custos.computations.fedavg.dp import UpdateRelease, clip_and_noise
from custos.core.errors import PolicyDenied
from custos.privacy.controls import PrivacyCost, TrainingDp

Json = dict[str, Any]


@dataclass(frozen=True)
class UpdateClipper:
    """The clip-and-noise of one job's updates (`custos.privacy.plan.UpdateFilter`). `shapes` is the
    job's weight layout (`custos.computations.fedavg.weights.layout`)."""

    shapes: dict[str, tuple[int, ...]]

    def clip_and_noise(
        self,
        message: Json,
        round_input: Json,
        training: TrainingDp,
        cost: PrivacyCost,
        rng: np.random.Generator,
    ) -> Json:
        if message.get("phase") != "train" or message.get("weights") is None:
            return message
        global_weights = round_input.get("weights")
        if not isinstance(global_weights, bytes):
            raise PolicyDenied("the round's input has no global weights to clip the site's update against")
        weights = clip_and_noise(
            global_weights,
            message["weights"],
            self.shapes,
            training.clip_norm,
            training.noise_multiplier,
            rng,
        )
        release = UpdateRelease(
            clip_norm=training.clip_norm,
            noise_multiplier=training.noise_multiplier,
            dp_sgd=training.dp_sgd,
            epsilon=cost.epsilon,
            delta=cost.delta,
        )
        return message | {"weights": weights, "dp": release.model_dump(mode="json")}
