"""Disclosure control for `fedavg`, applied by each gateway to its site's result before it leaves, on
the one disclosure-control engine (`custos.privacy.sdc`) with the policy's rules.

- A site with 0 < n_train < min_count training rows refuses (PolicyDenied): its weights, moments and
  training metrics would describe too few people. A site with no training rows passes and adds nothing.
- Held-out metrics over 0 < n_holdout < min_count rows are removed (null); the count stays.
- Row counts (`n_train`, `n_holdout`) are counts: they leave rounded as the policy rounds counts
  (`round_count`), and the orchestrator weights the average by the rounded counts. An accuracy (a
  share of rows) would give the unrounded count back as its denominator, so under rounding it is
  derived from rounded counts: round(correct rows) / round(rows). A site whose count rounds to 0
  sends no weights and no training metrics.
- Standardisation moments (each feature's mean and sum of squared deviations over the training rows)
  are a mean cell like `stats`'s: the (n, k) dominance rule applies to each feature's values (a
  dominated feature refuses the moments round, naming the feature). Under rounding they leave
  coarsened, so that an exact mean cannot give back the count: the standard deviation to 2
  significant figures, the mean to a multiple of a tenth of it, and the sum of squared deviations
  rebuilt from those and the rounded count.
- Only the declared fields leave (`fedavg.wire` refuses any other), and metrics are means over rows.

Model release (whether the final weights may leave at all) is the orchestrator's decision; see
docs/fedavg.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from custos.computations.fedavg.wire import SiteEvaluate, SiteMoments, SiteResult, SiteTrain
from custos.core.errors import PolicyDenied
from custos.privacy.controls import DisclosureRules, TrainingDp
from custos.privacy.sdc import dominance_reason, is_dominated, round_count

Json = dict[str, Any]
_SITE_ONLY = {"largest", "abs_sum"}
# Coarsened moments: the standard deviation to this many significant figures, the mean to
# 1/MEAN_STEPS_PER_STD of that standard deviation.
STD_DIGITS = 2
MEAN_STEPS_PER_STD = 10


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


def check_moments_dominance(result: SiteMoments, rules: DisclosureRules, features: Sequence[str]) -> None:
    """Refuse moments whose mean of a feature the policy's (n, k) dominance rule flags, naming it."""
    rule = rules.dominance
    if rule is None or not result.n_train:
        return
    if result.largest is None or result.abs_sum is None or len(result.largest) != len(result.mean):
        raise PolicyDenied("the site's moments lack what the dominance rule needs; they may not leave")
    for j, (largest, total) in enumerate(zip(result.largest, result.abs_sum, strict=True)):
        if result.n_train <= rule.n or is_dominated(largest[: rule.n], total, rule.k):
            name = features[j] if j < len(features) else f"features[{j}]"
            raise PolicyDenied(
                f"feature {name!r} at this site: {dominance_reason(rule.n, rule.k)} (the policy's "
                "dominance rule), so its mean may not leave for standardisation; train with "
                "standardize: false"
            )


def significant(value: float, digits: int) -> float:
    """`value` to `digits` significant figures (0 stays 0)."""
    return float(f"{value:.{digits - 1}e}")


def coarse_moments(n_train: int, published_n: int, mean: Sequence[float], m2: Sequence[float]) -> Json:
    """Each feature's mean and sum of squared deviations as they leave under rounding: the standard
    deviation to STD_DIGITS significant figures, the mean to a multiple of a tenth of it (or to
    STD_DIGITS significant figures when it is 0), m2 as the published count times that variance."""
    means, m2s = [], []
    for mu, squares in zip(mean, m2, strict=True):
        std = significant(math.sqrt(squares / n_train), STD_DIGITS) if n_train else 0.0
        step = std / MEAN_STEPS_PER_STD
        means.append(round(mu / step) * step if step > 0 else significant(mu, STD_DIGITS))
        m2s.append(published_n * std * std)
    return {"mean": means, "m2": m2s}


def _rate(rate: float | None, rows: int, published_rows: int, rules: DisclosureRules) -> float | None:
    """A share of `rows` (an accuracy) as it may leave beside the rounded count: rounded hits over the
    rounded rows, so its denominator is never the unrounded count."""
    if rate is None or rules.rounding == "none":
        return rate
    if not published_rows:
        return None
    hits = round_count(min(rows, max(0, round(rate * rows))), rules)
    assert hits is not None
    return min(1.0, hits / published_rows)


def _rounded_sizes(result: SiteTrain | SiteEvaluate, rules: DisclosureRules) -> Json:
    """The counts of a train or evaluate result rounded as the policy rounds counts, with the
    accuracies derived from them and, for a site whose training rows round to 0, no update."""
    update: Json = {}
    holdout = round_count(result.n_holdout, rules)
    assert holdout is not None
    update["n_holdout"] = holdout
    update["holdout_accuracy"] = _rate(result.holdout_accuracy, result.n_holdout, holdout, rules)
    if isinstance(result, SiteTrain):
        train = round_count(result.n_train, rules)
        assert train is not None
        update["n_train"] = train
        update["train_accuracy"] = _rate(result.train_accuracy, result.n_train, train, rules)
        if result.n_train and not train:
            update |= {"weights": None, "train_loss": None, "train_accuracy": None}
    return update


def filter_site_result(result: SiteResult, rules: DisclosureRules, features: Sequence[str] = ()) -> Json:
    """The result as it may leave the site under `rules`; `features` name the columns in messages."""
    if isinstance(result, SiteMoments):
        check_training_rows(result.n_train, rules.min_count)
        check_moments_dominance(result, rules, features)
        update: Json = {"filtered": True, "largest": None, "abs_sum": None}
        if rules.rounding != "none":
            published = round_count(result.n_train, rules)
            assert published is not None
            update |= {"n_train": published}
            update |= coarse_moments(result.n_train, published, result.mean, result.m2)
        return result.model_copy(update=update).model_dump(exclude=_SITE_ONLY)
    if isinstance(result, SiteTrain):
        check_training_rows(result.n_train, rules.min_count)
    update = {"filtered": True}
    if 0 < result.n_holdout < rules.min_count:
        update |= {"holdout_loss": None, "holdout_accuracy": None}
    filtered = result.model_copy(update=update)
    return filtered.model_copy(update=_rounded_sizes(filtered, rules)).model_dump()
