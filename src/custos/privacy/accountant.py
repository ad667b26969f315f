"""The privacy accountant for model training: how much (epsilon, delta)-DP a training job spends.

Built on Google's `dp-accounting` package. A training job is `rounds` rounds; each round runs a
Gaussian mechanism `steps_per_round` times, each step on a Poisson sample of the rows taken with
probability `sampling_rate` (1.0: every row, as the gateway's per-round update filter sees them; a
batch over the rows for DP-SGD). The events compose over all steps, and the accountant converts the
total to epsilon at the policy's delta.

- `rdp` (the default): Renyi DP (Mironov 2017; Mironov, Talwar, Zhang 2019), a valid upper bound,
  fast for any number of steps.
- `pld`: privacy loss distributions (Koskela et al.; Google's implementation), tighter, slower for
  many steps. Both are upper bounds on the true epsilon; the tests check that PLD is within RDP and
  that both agree with the exact analytic Gaussian mechanism for one step.

The noise multiplier is the ratio of the noise's standard deviation to the L2 sensitivity of what
is noised: callers pass the effective one (see `custos.computations.fedavg.dp`).
"""

from __future__ import annotations

import math
from typing import Literal

import dp_accounting  # type: ignore[import-untyped]  # no py.typed marker

from custos.core.errors import InvalidInput

Accountant = Literal["rdp", "pld"]
# The most composed Gaussian steps accounted for: far beyond any job a policy would allow.
MAX_STEPS = 100_000_000


def _check(
    rounds: int, noise_multiplier: float, sampling_rate: float, steps_per_round: int, delta: float
) -> None:
    if rounds < 1 or steps_per_round < 1 or rounds * steps_per_round > MAX_STEPS:
        raise InvalidInput(
            f"a training job has 1 to {MAX_STEPS:,} noisy steps, got {rounds} round(s) of {steps_per_round}"
        )
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise InvalidInput(f"noise_multiplier must be a positive number, got {noise_multiplier}")
    if not (math.isfinite(sampling_rate) and 0 < sampling_rate <= 1):
        raise InvalidInput(f"sampling_rate must be in (0, 1], got {sampling_rate}")
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise InvalidInput(f"delta must be in (0, 1), got {delta}")


def training_event(
    rounds: int, noise_multiplier: float, sampling_rate: float, steps_per_round: int = 1
) -> dp_accounting.DpEvent:
    """The job as one dp-accounting event: a (Poisson-subsampled) Gaussian, composed over every step."""
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1:
        event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
    return dp_accounting.SelfComposedDpEvent(event, rounds * steps_per_round)


def training_epsilon(
    rounds: int,
    noise_multiplier: float,
    sampling_rate: float,
    steps_per_round: int,
    delta: float,
    *,
    accountant: Accountant = "rdp",
) -> float:
    """The epsilon at `delta` of `rounds` rounds of `steps_per_round` Gaussian steps each, with noise
    multiplier `noise_multiplier` on samples taken at `sampling_rate`. Raises InvalidInput naming the
    argument when one is out of range."""
    _check(rounds, noise_multiplier, sampling_rate, steps_per_round, delta)
    event = training_event(rounds, noise_multiplier, sampling_rate, steps_per_round)
    if accountant == "pld":
        engine: dp_accounting.PrivacyAccountant = dp_accounting.pld.PLDAccountant()
    else:
        engine = dp_accounting.rdp.RdpAccountant()
    engine.compose(event)
    return float(engine.get_epsilon(delta))
