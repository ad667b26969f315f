"""Threat D35 (docs/threats.md): an unclipped or un-noised model update where the scope requires
DP is refused by the site's result filter, whatever the sandboxed code returned."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from custos.computations.fedavg.model import FedAvgModel
from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.weights import from_bytes, layout, to_bytes, update_norm
from custos.core.errors import PolicyDenied
from custos.privacy.controls import PrivacyControls
from custos.privacy.filters import FilterContext, SitePrivacy, chain_for

MODEL = FedAvgModel()
PARAMS: dict[str, Any] = {
    "model": "logistic", "features": ["age", "bmi"], "label": "smoker", "positive": "yes",
    "rounds": 2, "standardize": False, "scope": "private",
}  # fmt: skip
SHAPES = layout(parse_params(PARAMS))
SITE = SitePrivacy.model_validate(
    {"scopes": {"private": {"task_result_filters": [{"name": "clip_and_noise"}]}, "open": {}}}
)
TRAINING = PrivacyControls.model_validate(
    {
        "training": {"clip_norm": 1.0, "noise_multiplier": 2.0},
        "budget": {"epsilon_per_researcher": 100, "epsilon_per_org": 100,
                   "delta_per_researcher": 1e-4, "delta_per_org": 1e-4},
    }
)  # fmt: skip
GLOBAL = to_bytes({n: np.zeros(s, dtype=np.float32) for n, s in SHAPES.items()})
HUGE = to_bytes({n: np.full(s, 1e6, dtype=np.float32) for n, s in SHAPES.items()})
ROUND_INPUT = {"phase": "train", "round": 1, "weights": GLOBAL}


def _result(**extra: Any) -> dict[str, Any]:
    return {"phase": "train", "round": 1, "n_train": 50, "n_holdout": 10, "weights": HUGE, **extra}


def _context(controls: PrivacyControls, params: dict[str, Any] = PARAMS) -> FilterContext:
    plan = None
    if controls.training is not None:
        plan = MODEL.plan_training_dp(params, controls.training, rows=100)
    return FilterContext("fedavg", params, ROUND_INPUT, controls, params.get("scope"), plan)


def test_a_scope_requiring_dp_refuses_when_the_policy_sets_no_training() -> None:
    chain = chain_for(SITE, PARAMS)
    with pytest.raises(PolicyDenied, match="scope 'private' requires DP training"):
        chain.filter_result(_result(), _context(PrivacyControls()))


def test_the_scope_clips_and_noises_a_huge_update_from_the_sandbox() -> None:
    chain = chain_for(SITE, PARAMS, require_dp=True)
    released = MODEL.filter_site_result(PARAMS, chain.filter_result(_result(), _context(TRAINING)), TRAINING)
    norm = update_norm(from_bytes(GLOBAL, SHAPES, "g"), from_bytes(released["weights"], SHAPES, "w"))
    assert norm <= 1.0 + 2.0 * (math.sqrt(3) + 6)
    assert released["dp"]["clip_norm"] == 1.0 and released["filtered"] is True


def test_an_update_that_skipped_the_filter_is_refused() -> None:
    # The policy requires DP: a result that no clip_and_noise filter marked never leaves.
    with pytest.raises(PolicyDenied, match="was not clipped to 1 and noised"):
        MODEL.filter_site_result(PARAMS, _result(), TRAINING)


def test_sandboxed_code_cannot_claim_it_clipped_its_own_update() -> None:
    forged = _result(dp={"mechanism": "clip_and_noise", "clip_norm": 1.0, "noise_multiplier": 2.0,
                         "dp_sgd": False, "epsilon": 0.1, "delta": 1e-5})  # fmt: skip
    chain = chain_for(SITE, PARAMS, require_dp=True)
    with pytest.raises(PolicyDenied, match="only the gateway says so"):
        chain.filter_result(forged, _context(TRAINING))


def test_the_policy_forces_the_clip_even_in_a_scope_that_does_not_list_it() -> None:
    params = PARAMS | {"scope": "open"}
    assert chain_for(SITE, params).result == []
    chain = chain_for(SITE, params, require_dp=True)
    released = MODEL.filter_site_result(
        params, chain.filter_result(_result(), _context(TRAINING, params)), TRAINING
    )
    assert released["dp"]["mechanism"] == "clip_and_noise"


def test_exact_moments_never_leave_under_dp_training() -> None:
    moments = {"phase": "moments", "n_train": 50, "mean": [1.0, 2.0], "m2": [3.0, 4.0]}
    with pytest.raises(PolicyDenied, match="exact feature moments"):
        MODEL.filter_site_result(PARAMS, moments, TRAINING)
