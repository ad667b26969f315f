"""`fedavg` driven as the orchestrator and the gateways drive it — start, compute_site at each site
through a DalReader over Arrow tables, the gateway filter, aggregate, every message through canonical
JSON — on scikit-learn's breast-cancer data split non-IID across three sites, against centralised
training of the same model with the same epoch budget."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from safetensors.numpy import load
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from custos.computations.base import Final, NextRound
from custos.computations.fedavg.learners.numpy_learner import NumpyNet
from custos.computations.fedavg.model import FedAvgModel
from custos.computations.fedavg.params import parse_params, validate_params
from custos.computations.fedavg.site import holdout_mask
from custos.computations.fedavg.weights import from_bytes, initial_weights, layout, to_bytes
from custos.core.blobs import through_wire
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.data.table_reader import TableDalReader

Json = dict[str, Any]
MODEL = FedAvgModel()
FEATURES = [str(name) for name in load_breast_cancer().feature_names]
BASE: Json = {
    "model": "logistic",
    "features": FEATURES,
    "label": "target",
    "rounds": 15,
    "local_epochs": 1,
    "batch_size": 16,
    "learning_rate": 0.05,
    "holdout": 0.0,
    "seed": 3,
}


def run_rounds(
    params: Json,
    sites: Mapping[str, pa.Table],
    *,
    step: NextRound | None = None,
    stop_at_round: int | None = None,
    min_count: int = 10,
) -> Final | NextRound:
    """Drive the job until Final, or until the next round to run is training round `stop_at_round`."""
    step = step or MODEL.start(params)
    state, round_input = through_wire(step.state), through_wire(step.round_input)
    for _ in range(1000):
        if stop_at_round is not None and state["phase"] == "train" and state["round"] == stop_at_round:
            return NextRound(round_input=round_input, state=state)
        results = {}
        for key, table in sites.items():
            dataset = key.split("/")[1]
            reader = TableDalReader({dataset: table})
            raw = through_wire(MODEL.compute_site(reader, dataset, params, round_input))
            results[key] = through_wire(MODEL.filter_site_result(params, raw, min_count))
        outcome = MODEL.aggregate(params, state, results, min_count)
        if isinstance(outcome, Final):
            return Final(through_wire(outcome.result))
        state, round_input = through_wire(outcome.state), through_wire(outcome.round_input)
    raise AssertionError("fedavg did not finish")


def run(params: Json, sites: Mapping[str, pa.Table]) -> Json:
    final = run_rounds(params, sites)
    assert isinstance(final, Final)
    return final.result


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.25, random_state=0, stratify=data["target"])
    return train, test


def non_iid(train: pd.DataFrame) -> dict[str, pa.Table]:
    """Three sites holding consecutive blocks of the rows sorted by mean radius (label skew too)."""
    ordered = train.sort_values("mean radius", kind="stable").reset_index(drop=True)
    bounds = np.linspace(0, len(ordered), 4).astype(int)
    return {
        f"site-{'abc'[i]}/data": pa.Table.from_pandas(ordered.iloc[lo:hi], preserve_index=False)
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
    }


def central(train: pd.DataFrame) -> dict[str, pa.Table]:
    return {"one/data": pa.Table.from_pandas(train.reset_index(drop=True), preserve_index=False)}


def accuracy_on_test(params: Json, result: Json, test: pd.DataFrame) -> float:
    parsed = parse_params(params)
    weights = from_bytes(result["weights"], layout(parsed), "result")
    std = result["standardization"]
    x = (test[FEATURES].to_numpy(dtype=float) - np.asarray(std["mean"])) / np.asarray(std["std"])
    y = test["target"].to_numpy(dtype=float)
    if parsed.model == "torch_mlp":
        parsed = parsed.model_copy(update={"model": "mlp"})
    net = NumpyNet(parsed)
    z = net.logits({k: v.astype(np.float64) for k, v in weights.items()}, x)
    return float(np.mean((z > 0) == (y > 0.5)))


def test_numpy_logistic_fedavg_on_non_iid_sites_is_within_two_points_of_centralised_training(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = cancer
    federated = accuracy_on_test(BASE, run(BASE, non_iid(train)), test)
    centralised = accuracy_on_test(BASE, run(BASE, central(train)), test)
    assert centralised > 0.93
    assert federated >= centralised - 0.02, (federated, centralised)


def test_fedprox_and_fedavgm_also_train_to_a_good_model(cancer: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cancer
    prox = {**BASE, "mu": 0.1, "rounds": 8}
    result = run(prox, non_iid(train))
    assert result["algorithm"] == "fedprox"
    assert accuracy_on_test(prox, result, test) > 0.93
    momentum = {**BASE, "server_momentum": 0.5, "rounds": 8}
    assert accuracy_on_test(momentum, run(momentum, non_iid(train)), test) > 0.93


def test_numpy_mlp_trains_to_a_good_model(cancer: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cancer
    params = {**BASE, "model": "mlp", "hidden": 8, "rounds": 10, "learning_rate": 0.1}
    result = run(params, non_iid(train))
    assert result["parameters"] == 8 * (len(FEATURES) + 2) + 1
    assert accuracy_on_test(params, result, test) > 0.93


def test_torch_mlp_on_non_iid_sites_is_within_two_points_of_centralised_training(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    pytest.importorskip("torch", reason="torch_mlp needs the optional torch extra (pip install torch)")
    train, test = cancer
    params = {**BASE, "model": "torch_mlp", "hidden": 8, "rounds": 10, "learning_rate": 0.1}
    federated = accuracy_on_test(params, run(params, non_iid(train)), test)
    centralised = accuracy_on_test(params, run(params, central(train)), test)
    assert centralised > 0.93
    assert federated >= centralised - 0.02, (federated, centralised)


def test_numpy_and_torch_mlps_compute_the_same_function() -> None:
    pytest.importorskip("torch", reason="torch_mlp needs the optional torch extra (pip install torch)")
    from custos.computations.fedavg.learners.numpy_learner import NumpyLearner
    from custos.computations.fedavg.learners.torch_learner import TorchLearner

    params = parse_params({**BASE, "model": "torch_mlp", "features": ["a", "b", "c"], "hidden": 5})
    blob = to_bytes(initial_weights(params))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), (rng.random(40) < 0.5).astype(float)
    np.testing.assert_allclose(
        TorchLearner(params).evaluate(blob, x, y), NumpyLearner(params).evaluate(blob, x, y), rtol=1e-9
    )


def test_weights_round_trip_through_safetensors_bytes_and_nothing_else() -> None:
    params = parse_params({**BASE, "model": "mlp", "hidden": 4})
    weights = initial_weights(params)
    raw = to_bytes(weights)
    assert set(load(raw)) == {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}
    back = from_bytes(raw, layout(params), "w")
    for name, tensor in weights.items():
        np.testing.assert_array_equal(back[name], tensor)
    with pytest.raises(InvalidInput, match="not a safetensors file"):
        from_bytes(b"\x80\x04pickle", layout(params), "w")
    with pytest.raises(InvalidInput, match="do not match"):
        from_bytes(to_bytes({"weight": np.zeros((1, 2), np.float32)}), layout(params), "w")


def test_two_runs_with_the_same_seed_give_identical_weights_and_another_seed_does_not(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    sites = non_iid(cancer[0])
    params = {**BASE, "model": "mlp", "hidden": 4, "rounds": 3, "holdout": 0.2}
    first, second = run(params, sites), run(params, sites)
    assert first["weights"] == second["weights"]
    assert run({**params, "seed": 4}, sites)["weights"] != first["weights"]


def test_a_job_restarted_from_its_persisted_state_at_round_3_ends_with_the_same_weights(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    sites = non_iid(cancer[0])
    params = {**BASE, "model": "mlp", "hidden": 4, "rounds": 5, "holdout": 0.2, "server_momentum": 0.3}
    uninterrupted = run(params, sites)
    paused = run_rounds(params, sites, stop_at_round=3)
    assert isinstance(paused, NextRound)
    # As the database stores it: JSON text with the weights as blobs, read back into fresh objects.
    loaded = through_wire({"state": paused.state, "round_input": paused.round_input})
    assert [row["round"] for row in loaded["state"]["history"]] == [1, 2]
    resumed = run_rounds(params, sites, step=NextRound(loaded["round_input"], loaded["state"]))
    assert isinstance(resumed, Final)
    assert resumed.result["weights"] == uninterrupted["weights"]
    assert resumed.result["history"] == uninterrupted["history"]


def test_the_result_carries_per_round_metrics_and_the_final_holdout_evaluation(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    params = {**BASE, "rounds": 3, "holdout": 0.2}
    result = run(params, non_iid(cancer[0]))
    assert [row["round"] for row in result["history"]] == [1, 2, 3]
    assert all(row["clients"] == 3 for row in result["history"])
    assert len(result["site_metrics"]) == 9
    assert result["history"][-1]["holdout_accuracy"] > 0.85
    assert result["final"]["holdout_accuracy"] > 0.9
    assert result["final"]["n_holdout"] == sum(row["n_holdout"] for row in result["final"]["sites"])
    assert result["history"][0]["n_train"] + result["final"]["n_holdout"] == len(cancer[0])


def test_holdout_rows_are_chosen_by_a_hash_of_position_and_seed() -> None:
    mask = holdout_mask(10_000, 7, 0.2)
    assert 0.18 < mask.mean() < 0.22
    np.testing.assert_array_equal(mask, holdout_mask(10_000, 7, 0.2))
    assert (mask != holdout_mask(10_000, 8, 0.2)).any()
    np.testing.assert_array_equal(mask[:500], holdout_mask(500, 7, 0.2))


def test_a_site_with_too_few_training_rows_refuses_and_small_holdouts_lose_their_metrics(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    params = {**BASE, "standardize": False, "holdout": 0.2}
    step = MODEL.start(params)
    small = pa.Table.from_pandas(cancer[0].iloc[:15], preserve_index=False)
    raw = through_wire(MODEL.compute_site(TableDalReader({"d": small}), "d", params, step.round_input))
    with pytest.raises(PolicyDenied, match="fewer than 20 training rows"):
        MODEL.filter_site_result(params, raw, 20)
    kept = MODEL.filter_site_result(params, raw, 10)
    assert 0 < kept["n_holdout"] < 10
    assert kept["holdout_accuracy"] is None and kept["holdout_loss"] is None
    assert kept["filtered"] is True


def test_fewer_contributing_sites_than_min_clients_fails_the_round(
    cancer: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    with pytest.raises(InvalidInput, match="3 site\\(s\\) contributed training rows; min_clients is 4"):
        run({**BASE, "min_clients": 4, "rounds": 1}, non_iid(cancer[0]))


def test_an_unfiltered_or_stale_site_result_is_refused() -> None:
    params = {**BASE, "standardize": False, "features": ["a"]}
    step = MODEL.start(params)
    table = pa.table({"a": np.arange(40.0), "target": np.arange(40) % 2})
    raw = MODEL.compute_site(TableDalReader({"d": table}), "d", params, step.round_input)
    with pytest.raises(InvalidInput, match="not filtered by its gateway"):
        MODEL.aggregate(params, step.state, {"s/d": raw}, 10)
    stale = MODEL.filter_site_result(params, raw, 10) | {"round": 2}
    with pytest.raises(InvalidInput, match="answers train round 2; the job asked for train round 1"):
        MODEL.aggregate(params, step.state, {"s/d": stale}, 10)


def test_params_are_checked_against_the_schema_naming_the_field() -> None:
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="age", type="integer", kind="numeric", min=18, max=95),
            ColumnSchema(name="smoker", type="string", kind="categorical", categories=["no", "yes"]),
            ColumnSchema(name="region", type="string", kind="categorical", categories=["n", "s"]),
        ]
    )
    columns = ["age", "smoker", "region"]
    validate_params({"features": ["age"], "label": "smoker", "positive": "yes"}, schema, columns)
    with pytest.raises(InvalidInput, match="positive: give the level of 'smoker' counted as 1"):
        validate_params({"features": ["age"], "label": "smoker"}, schema, columns)
    with pytest.raises(InvalidInput, match="features\\[0\\]: column 'region' is categorical"):
        validate_params({"features": ["region"], "label": "smoker", "positive": "yes"}, schema, columns)
    with pytest.raises(InvalidInput, match="unknown field 'epochs'"):
        parse_params({"features": ["age"], "label": "smoker", "epochs": 3})
    with pytest.raises(InvalidInput, match="features\\[0\\]: 'smoker' is the label"):
        parse_params({"features": ["smoker"], "label": "smoker"})
    with pytest.raises(InvalidInput, match="at most 20,000,000 are accepted"):
        parse_params({"features": ["age"], "label": "smoker", "model": "mlp", "hidden": 8_000_000})
