"""Disclosure control for `fedavg`, applied by each gateway to its site's result before it leaves.

- A site with 0 < n_train < min_count training rows refuses (PolicyDenied): its weights, moments and
  training metrics would describe too few people. A site with no training rows passes and adds nothing.
- Held-out metrics over 0 < n_holdout < min_count rows are removed (null); the count stays.
- Only the declared fields leave (`fedavg.wire` refuses any other), and metrics are means over rows.

Counts are exact, as `glm` sends them: the average is weighted by them. Model release (whether the
final weights may leave at all) is a policy decision that a later step adds; see docs/fedavg.md.
"""

from __future__ import annotations

from typing import Any

from custos.computations.fedavg.wire import SiteEvaluate, SiteMoments, SiteResult, SiteTrain
from custos.core.errors import PolicyDenied
from custos.privacy.controls import TrainingDp

Json = dict[str, Any]


def check_training_rows(n_train: int, min_count: int) -> None:
    if 0 < n_train < min_count:
        raise PolicyDenied(
            f"this site has fewer than {min_count} training rows for the model (the policy's minimum)"
        )


def check_dp_release(result: SiteResult, training: TrainingDp) -> None:
    """Under the policy's `privacy.training`, refuse what DP does not cover: exact moments, and a
    train result whose update the gateway's clip_and_noise filter did not clip and noise as the
    policy says."""
    if isinstance(result, SiteMoments):
        raise PolicyDenied("this dataset's policy requires DP training; exact feature moments may not leave")
    if not isinstance(result, SiteTrain) or result.weights is None:
        return
    mark = result.dp
    if mark is None or (mark.clip_norm, mark.noise_multiplier) != (
        training.clip_norm,
        training.noise_multiplier,
    ):
        raise PolicyDenied(
            "this dataset's policy requires DP training: the site's update was not clipped to "
            f"{training.clip_norm:g} and noised (noise multiplier {training.noise_multiplier:g}) by the "
            "gateway's clip_and_noise filter, so it may not leave"
        )


def filter_site_result(result: SiteResult, min_count: int) -> Json:
    """The result as it may leave the site."""
    if isinstance(result, SiteMoments):
        check_training_rows(result.n_train, min_count)
        return result.model_copy(update={"filtered": True}).model_dump()
    if isinstance(result, SiteTrain):
        check_training_rows(result.n_train, min_count)
    update: Json = {"filtered": True}
    if isinstance(result, SiteTrain | SiteEvaluate) and 0 < result.n_holdout < min_count:
        update |= {"holdout_loss": None, "holdout_accuracy": None}
    return result.model_copy(update=update).model_dump()
