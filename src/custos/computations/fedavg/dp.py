"""Differential privacy for `fedavg`: the gateway's plan for a job under a policy's `privacy.training`,
and the update clipping and noise the gateway applies to each site result before it leaves.

**The update filter** (gateway side, whatever the sandboxed code did): the site's update
u = local weights - global weights is clipped to L2 norm C and Gaussian noise of standard deviation
noise_multiplier * C is added to every coordinate; the site sends global + clip(u) + noise. Adding,
removing or changing one row can move the clipped update anywhere in the ball of radius C, so its L2
sensitivity is 2C and the accountant sees an effective noise multiplier of noise_multiplier / 2, one
full-batch Gaussian step per round (sampling rate 1).

**DP-SGD** (`dp_sgd: true`, NumPy models; inside local training): each step takes a Poisson sample of
the training rows at rate q = batch_size / rows (rows: the dataset's row count at the gateway, at
least the training rows, so the rate used is what the accountant counts), clips each row's gradient
to C, adds Gaussian noise of std noise_multiplier * C to the sum and divides by the expected batch
size; `local_epochs * ceil(1 / q)` steps a round. Its epsilon composes over rounds * steps.

The job's projected epsilon is the smaller of the two bounds (both hold for the released weights: the
filter's by itself, DP-SGD's because the filter only post-processes its output). The gateway reserves
it once, before the job's first round. Noise and DP-SGD's sampling use fresh OS randomness, never the
job's seed: a researcher who knows the seed must not be able to subtract the noise.

Only the weights are covered by epsilon: counts and the mean loss and accuracy still leave under the
disclosure rules (a custodian drops them with the `exclude_keys` filter). The `moments` round would send
exact feature means, so a DP job must set `standardize: false`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from custos.computations.fedavg.params import FedAvgParams
from custos.computations.fedavg.weights import Weights, from_bytes, to_bytes
from custos.core.errors import PolicyDenied
from custos.privacy.controls import PrivacyCost, TrainingDp
from custos.privacy.plan import DpPlan

MECHANISM = "clip_and_noise"


@runtime_checkable
class DpTrainingModel(Protocol):
    """A model that trains under a policy's `privacy.training` (today `fedavg`)."""

    def plan_training_dp(self, params: Mapping[str, Any], training: TrainingDp, rows: int) -> DpPlan:
        """The job's projected (epsilon, delta) over all its rounds at a site of `rows` rows, and the
        settings its sandbox gets. Raise PolicyDenied when the params cannot run under DP."""
        ...


class DpSgdRound(BaseModel):
    """What the gateway tells the sandbox under `round_input["dp"]` when the policy asks for DP-SGD."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    clip_norm: float = Field(gt=0)
    noise_multiplier: float = Field(gt=0)
    sampling_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=1)


class UpdateRelease(BaseModel):
    """The gateway's mark on a train result whose update it clipped and noised."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mechanism: str = MECHANISM
    clip_norm: float
    noise_multiplier: float
    dp_sgd: bool = False
    # The job's projected (epsilon, delta) at this site: what the gateway reserved for all its rounds.
    epsilon: float
    delta: float


def dp_sgd_round(params: FedAvgParams, training: TrainingDp, rows: int) -> DpSgdRound:
    """DP-SGD's sampling rate and steps per round for a dataset of `rows` rows."""
    rate = min(1.0, params.batch_size / max(rows, 1))
    steps = params.local_epochs * math.ceil(1.0 / rate)
    return DpSgdRound(
        clip_norm=training.clip_norm,
        noise_multiplier=training.noise_multiplier,
        sampling_rate=rate,
        steps=steps,
    )


def plan_training(params: FedAvgParams, training: TrainingDp, rows: int) -> DpPlan:
    """The job's DP plan at one site: its projected (epsilon, delta) for all rounds, and the settings
    the sandbox gets under `round_input["dp"]` (DP-SGD's `DpSgdRound`, or `{}` without DP-SGD).
    Raises PolicyDenied when the params cannot run under DP."""
    if params.standardize:
        raise PolicyDenied(
            "standardize: the moments round sends exact feature means, which differential privacy does "
            "not cover; this dataset's policy requires DP training, so set standardize: false"
        )
    if training.dp_sgd and params.model == "torch_mlp":
        raise PolicyDenied(
            "this dataset's policy requires DP-SGD, which only the NumPy models (logistic, mlp) run"
        )
    # One round's clipped update has L2 sensitivity 2C (see the module docstring).
    # Imported here: the accountant pulls in SciPy (~2 s), which no other job's runtime should pay.
    from custos.privacy.accountant import training_epsilon

    epsilon = training_epsilon(params.rounds, training.noise_multiplier / 2, 1.0, 1, training.delta)
    settings: dict[str, Any] = {}
    if training.dp_sgd:
        sgd = dp_sgd_round(params, training, rows)
        sgd_epsilon = training_epsilon(
            params.rounds, sgd.noise_multiplier, sgd.sampling_rate, sgd.steps, training.delta
        )
        epsilon = min(epsilon, sgd_epsilon)
        settings = sgd.model_dump(mode="json")
    return DpPlan(queries=params.rounds, cost=PrivacyCost(epsilon, training.delta), settings=settings)


def clip_and_noise(
    global_weights: bytes,
    local_weights: bytes,
    shapes: dict[str, tuple[int, ...]],
    clip_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> bytes:
    """global + clip(local - global, C) + N(0, (noise_multiplier * C)^2), as safetensors bytes."""
    before = from_bytes(global_weights, shapes, "the round's global weights")
    after = from_bytes(local_weights, shapes, "the site's weights")
    delta = {name: after[name].astype(np.float64) - before[name].astype(np.float64) for name in shapes}
    norm = math.sqrt(math.fsum(float(np.sum(d * d)) for d in delta.values()))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    std = noise_multiplier * clip_norm
    released: Weights = {}
    for name, shape in shapes.items():
        noisy = before[name].astype(np.float64) + scale * delta[name] + rng.normal(0.0, std, shape)
        released[name] = noisy.astype(np.float32)
    return to_bytes(released)
