"""DP for `fedavg`: the gateway's clip-and-noise of a site update, the job's projected epsilon, and
DP-SGD inside local NumPy training, driven round by round as the gateways and the orchestrator do."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from custos.computations.base import Final
from custos.computations.fedavg.dp import DpSgdRound, clip_and_noise, dp_sgd_round, plan_training
from custos.computations.fedavg.learners.numpy_learner import NumpyNet
from custos.computations.fedavg.model import FedAvgModel
from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.weights import from_bytes, initial_weights, layout, to_bytes, update_norm
from custos.core.blobs import through_wire
from custos.core.errors import PolicyDenied
from custos.data.table_reader import TableDalReader
from custos.privacy.accountant import training_epsilon
from custos.privacy.controls import PrivacyControls, TrainingDp
from custos.privacy.filters import FilterContext, SitePrivacy, chain_for

Json = dict[str, Any]
MODEL = FedAvgModel()
FEATURES = [str(name) for name in load_breast_cancer().feature_names][:10]
PARAMS: Json = {
    "model": "logistic",
    "features": FEATURES,
    "label": "target",
    "rounds": 3,
    "batch_size": 32,
    "learning_rate": 0.1,
    "holdout": 0.2,
    "standardize": False,
    "seed": 1,
}
SHAPES = layout(parse_params(PARAMS))
D = sum(math.prod(s) for s in SHAPES.values())


def _controls(**training: Any) -> PrivacyControls:
    return PrivacyControls.model_validate(
        {
            "training": {"clip_norm": 1.0, "noise_multiplier": 1.1, **training},
            "budget": {
                "epsilon_per_researcher": 1000,
                "epsilon_per_org": 1000,
                "delta_per_researcher": 1e-4,
                "delta_per_org": 1e-4,
            },
        }
    )


def _weights(scale: float, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return to_bytes({n: (scale * rng.standard_normal(s)).astype(np.float32) for n, s in SHAPES.items()})


def _norm(before: str, after: str) -> float:
    return update_norm(from_bytes(before, SHAPES, "before"), from_bytes(after, SHAPES, "after"))


def test_the_clip_caps_a_deliberately_huge_update() -> None:
    start, huge = _weights(0.1, seed=1), _weights(1e5, seed=2)
    assert _norm(start, huge) > 1e5
    released = clip_and_noise(start, huge, SHAPES, 1.0, 0.5, np.random.default_rng(3))
    # ||clip(u) + noise|| <= C + ||noise||, and ||noise|| / (sigma C) is chi with D degrees of
    # freedom: below sqrt(D) + 6 except with probability < e^-18.
    assert _norm(start, released) <= 1.0 + 0.5 * (math.sqrt(D) + 6)


def test_without_noise_an_update_is_scaled_to_the_clip_norm_only_when_longer() -> None:
    start = _weights(0.1, seed=1)
    long_update = _weights(10.0, seed=2)
    clipped = clip_and_noise(start, long_update, SHAPES, 2.0, 0.0, np.random.default_rng(0))
    assert _norm(start, clipped) == pytest.approx(2.0, rel=1e-5)
    small = clip_and_noise(start, clipped, SHAPES, 5.0, 0.0, np.random.default_rng(0))
    assert _norm(start, small) == pytest.approx(2.0, rel=1e-5)


def test_the_noise_has_std_noise_multiplier_times_clip_norm() -> None:
    zeros = to_bytes(initial_weights(parse_params(PARAMS)))
    rng = np.random.default_rng(11)
    draws = []
    for _ in range(400):
        released = from_bytes(clip_and_noise(zeros, zeros, SHAPES, 0.5, 1.5, rng), SHAPES, "released")
        draws.append(np.concatenate([t.ravel() for t in released.values()]))
    noise = np.concatenate(draws)
    assert noise.std() == pytest.approx(0.75, rel=0.03)
    assert abs(noise.mean()) < 0.02


def test_the_plan_charges_the_filter_at_sensitivity_2c_and_dp_sgd_at_its_sampling_rate() -> None:
    params = parse_params(PARAMS)
    plain = plan_training(params, TrainingDp(clip_norm=1.0, noise_multiplier=4.0), rows=1000)
    assert plain.cost.epsilon == pytest.approx(training_epsilon(3, 2.0, 1.0, 1, 1e-5))
    assert plain.cost.delta == 1e-5 and plain.settings == {}
    sgd = plan_training(params, TrainingDp(clip_norm=1.0, noise_multiplier=4.0, dp_sgd=True), rows=1000)
    assert sgd.settings == {"clip_norm": 1.0, "noise_multiplier": 4.0, "sampling_rate": 0.032, "steps": 32}
    assert sgd.cost.epsilon == pytest.approx(training_epsilon(3, 4.0, 0.032, 32, 1e-5))
    assert sgd.cost.epsilon < plain.cost.epsilon


def test_the_plan_refuses_exact_moments_and_dp_sgd_in_torch() -> None:
    training = TrainingDp(clip_norm=1.0, noise_multiplier=1.1, dp_sgd=True)
    with pytest.raises(PolicyDenied, match="standardize: false"):
        plan_training(parse_params(PARAMS | {"standardize": True}), training, rows=100)
    with pytest.raises(PolicyDenied, match="NumPy models"):
        plan_training(parse_params(PARAMS | {"model": "torch_mlp"}), training, rows=100)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_per_example_gradients_add_up_to_the_batch_gradient(kind: str) -> None:
    params = parse_params(PARAMS | {"model": kind, "hidden": 5})
    net = NumpyNet(params)
    rng = np.random.default_rng(4)
    w = {n: rng.standard_normal(s) for n, s in layout(params).items()}
    x, y = rng.standard_normal((17, len(FEATURES))), (rng.random(17) < 0.5).astype(np.float64)
    batch, each = net.gradients(w, x, y), net.example_gradients(w, x, y)
    for name, grad in batch.items():
        assert each[name].shape == (17, *grad.shape)
        np.testing.assert_allclose(each[name].sum(axis=0) / 17, grad, atol=1e-12)


def _sites() -> dict[str, pa.Table]:
    data = load_breast_cancer(as_frame=True).frame
    x = data[FEATURES]
    data[FEATURES] = (x - x.mean()) / x.std()
    table = pa.Table.from_pandas(data[[*FEATURES, "target"]], preserve_index=False)
    third = table.num_rows // 3
    return {f"site-{c}/cancer": table.slice(i * third, third) for i, c in enumerate("abc")}


def test_dp_sgd_trains_through_the_gateway_filter_and_the_result_reports_epsilon() -> None:
    params = PARAMS | {"model": "mlp", "hidden": 4}
    controls = _controls(dp_sgd=True)
    assert controls.training is not None
    sites = _sites()
    plan = MODEL.plan_training_dp(params, controls.training, rows=sites["site-a/cancer"].num_rows)
    step = MODEL.start(params)
    state, round_input = through_wire(step.state), through_wire(step.round_input)
    for _ in range(10):
        results = {}
        for key, table in sites.items():
            dataset = key.split("/")[1]
            given = round_input | {"dp": DpSgdRound.model_validate(plan.settings).model_dump()}
            raw = through_wire(MODEL.compute_site(TableDalReader({dataset: table}), dataset, params, given))
            chain = chain_for(SitePrivacy(), params, require_dp=True)
            context = FilterContext("fedavg", params, round_input, controls, None, plan)
            released = chain.filter_result(raw, context)
            results[key] = through_wire(MODEL.filter_site_result(params, released, controls))
        outcome = MODEL.aggregate(params, state, results, 10)
        if isinstance(outcome, Final):
            break
        state, round_input = through_wire(outcome.state), through_wire(outcome.round_input)
    assert isinstance(outcome, Final)
    assert [row["round"] for row in outcome.result["history"]] == [1, 2, 3]
    assert outcome.result["dp"]["site-a/cancer"] == {
        "mechanism": "clip_and_noise",
        "clip_norm": 1.0,
        "noise_multiplier": 1.1,
        "dp_sgd": True,
        "epsilon": plan.cost.epsilon,
        "delta": 1e-5,
    }
    final = from_bytes(outcome.result["weights"], layout(parse_params(params)), "final")
    assert all(np.isfinite(t).all() for t in final.values())


def test_dp_sgd_settings_follow_the_rows_and_batch() -> None:
    sgd = dp_sgd_round(
        parse_params(PARAMS | {"local_epochs": 2}), TrainingDp(clip_norm=1, noise_multiplier=1), 100
    )
    assert (sgd.sampling_rate, sgd.steps) == (0.32, 8)
    tiny = dp_sgd_round(parse_params(PARAMS), TrainingDp(clip_norm=1, noise_multiplier=1), 10)
    assert (tiny.sampling_rate, tiny.steps) == (1.0, 1)
