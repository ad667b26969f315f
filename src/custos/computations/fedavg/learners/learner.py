"""The contract of a `fedavg` learner (one model kind's local training inside the sandbox): the
settings of a round's training, and what training returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from custos.computations.fedavg.dp import DpSgdRound

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocalTraining:
    epochs: int
    batch_size: int
    learning_rate: float
    mu: float
    # DP-SGD, when the gateway asks for it (see fedavg.dp): replaces the epochs of shuffled batches.
    dp: DpSgdRound | None = None


@dataclass(frozen=True)
class Fit:
    """A site's trained weights (safetensors bytes) and its loss and accuracy on its training rows."""

    weights: bytes
    loss: float
    accuracy: float


class Learner(Protocol):
    """One model kind. `weights` are safetensors bytes in the layout of `fedavg.weights.layout`.
    MUST be deterministic given its inputs and the state of `rng`."""

    def train(
        self, weights: bytes, x: Floats, y: Floats, settings: LocalTraining, rng: np.random.Generator
    ) -> Fit: ...

    def evaluate(self, weights: bytes, x: Floats, y: Floats) -> tuple[float, float]:
        """(mean binary cross-entropy, accuracy at 0.5) on rows that number at least one."""
        ...
