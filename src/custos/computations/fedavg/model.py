"""The built-in federated model `fedavg@1.0.0`: federated training of a binary classifier with FedAvg,
FedProx (`mu` > 0) and FedAvgM (`server_momentum` > 0). Kinds: a NumPy logistic regression, a NumPy
MLP, and a torch MLP (`torch_mlp`) where the sites have PyTorch.

Rounds: when `standardize` is true, round 0 (`moments`) has each site send the count, mean and sum of
squared deviations of each feature over its training rows; the orchestrator pools them (Chan's
formula) into the mean and standard deviation every site then uses — the same scaling as centralised
standardisation of the pooled training rows, without any bounds guessed from the schema (under a
policy that rounds counts, from the rounded counts and coarsened moments: see `fedavg.disclosure`).
Then rounds 1..`rounds` (`train`) send the global weights; each site trains locally and returns its
weights and metrics; the orchestrator takes the sample-weighted mean (and the server step). A last round
(`evaluate`) measures the final model on every site's held-out rows. Params, messages, site code and
disclosure rules are in `fedavg.params`, `fedavg.wire`, `fedavg.site` and `fedavg.disclosure`.

A site that fails or times out in a round (after its lease's retries) is left out of that round;
the job fails when fewer than `min_clients` sites answer, or contribute training rows. Everything between
rounds lives in the persisted state, so an orchestrator restart continues from the stored round.

The final result:

    {"model": "logistic", "algorithm": "fedavg" | "fedprox", "rounds": 10, "parameters": 4,
     "features": [...], "label": "smoker", "positive": "yes",
     "standardization": {"mean": [...], "std": [...]} | null,
     "history": [{"round", "clients", "n_train", "train_loss", "train_accuracy",
                  "n_holdout", "holdout_loss", "holdout_accuracy", "update_norm"}],
     "site_metrics": [{"round", "site", "n_train", "n_holdout", "train_loss", "train_accuracy",
                       "holdout_loss", "holdout_accuracy", "train_seconds"}],
     "final": {"n_holdout", "holdout_loss", "holdout_accuracy", "sites": [...]},
     "weights_format": "safetensors", "weights": <safetensors bytes: a blob on the wire>}

A history row's `holdout_*` is the global model the round started from; `final` is the model after
the last round. Weights are float32 tensors named as in `fedavg.weights`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from custos.computations.base import DalReader, Disclosure, Final, NextRound, Step, as_controls
from custos.computations.fedavg.disclosure import check_dp_release, filter_site_result
from custos.computations.fedavg.dp import plan_training
from custos.computations.fedavg.filters import UpdateClipper
from custos.computations.fedavg.params import FedAvgParams, columns_used, parse_params, validate_params
from custos.computations.fedavg.site import read_site, site_result
from custos.computations.fedavg.weights import (
    from_bytes,
    initial_weights,
    layout,
    server_step,
    to_bytes,
    update_norm,
    weighted_average,
)
from custos.computations.fedavg.wire import (
    FedAvgState,
    SiteEvaluate,
    SiteMoments,
    SiteResult,
    SiteTrain,
    parse_round_input,
    parse_site_result,
)
from custos.computations.messages import parse_message
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings, TrainingDp
from custos.privacy.plan import DpPlan

Json = dict[str, Any]
_NEEDS_TRAINING = (
    "this dataset's policy requires differential privacy; fedavg trains under DP only with the "
    "policy's privacy.training section (clip_norm, noise_multiplier)"
)


def _weighted(pairs: Sequence[tuple[int, float | None]]) -> tuple[int, float | None]:
    """(rows, row-weighted mean) over the pairs whose value is present."""
    present = [(n, v) for n, v in pairs if v is not None and n > 0]
    total = sum(n for n, _ in present)
    if not total:
        return 0, None
    return total, math.fsum(n * v for n, v in present) / total


def _next(state: FedAvgState) -> NextRound:
    round_input: Json = {
        "phase": state.phase,
        "round": state.round,
        "weights": state.weights,
        "mean": state.mean,
        "std": state.std,
    }
    return NextRound(round_input=round_input, state=state.model_dump())


def _check_clients(params: FedAvgParams, state: FedAvgState, contributing: int) -> None:
    if contributing < params.min_clients:
        raise InvalidInput(
            f"round {state.round} ({state.phase}): {contributing} site(s) contributed training rows; "
            f"min_clients is {params.min_clients}"
        )


def _pool_moments(params: FedAvgParams, state: FedAvgState, results: Sequence[SiteMoments]) -> NextRound:
    present = [r for r in results if r.n_train > 0]
    _check_clients(params, state, len(present))
    d = len(params.features)
    n = sum(r.n_train for r in present)
    mean = np.zeros(d)
    for r in present:
        mean += (r.n_train / n) * np.asarray(r.mean)
    m2 = np.zeros(d)
    for r in present:
        m2 += np.asarray(r.m2) + r.n_train * (np.asarray(r.mean) - mean) ** 2
    std = np.sqrt(m2 / n)
    std[~(std > 0)] = 1.0
    following = state.model_copy(
        update={"phase": "train", "round": 1, "mean": mean.tolist(), "std": std.tolist()}
    )
    return _next(following)


def _site_row(site: str, r: SiteTrain) -> Json:
    return {
        "round": r.round,
        "site": site,
        "n_train": r.n_train,
        "n_holdout": r.n_holdout,
        "train_loss": r.train_loss,
        "train_accuracy": r.train_accuracy,
        "holdout_loss": r.holdout_loss,
        "holdout_accuracy": r.holdout_accuracy,
        "train_seconds": r.train_seconds,
    }


def _train_round(
    params: FedAvgParams, state: FedAvgState, results: Sequence[tuple[str, SiteTrain]]
) -> NextRound:
    shapes = layout(params)
    updates = []
    for site, r in results:
        if r.n_train > 0:
            if r.weights is None:
                raise InvalidInput(f"the result of {site} has {r.n_train} training rows but no weights")
            updates.append((float(r.n_train), from_bytes(r.weights, shapes, f"the weights of {site}")))
    _check_clients(params, state, len(updates))
    current = from_bytes(state.weights, shapes, "the job's global weights")
    momentum = None if state.momentum is None else from_bytes(state.momentum, shapes, "the job's momentum")
    following, momentum = server_step(
        current,
        weighted_average(updates),
        momentum,
        params.server_learning_rate,
        params.server_momentum,
    )
    trained = [r for _, r in results]
    n_train, train_loss = _weighted([(r.n_train, r.train_loss) for r in trained])
    _, train_accuracy = _weighted([(r.n_train, r.train_accuracy) for r in trained])
    n_holdout, holdout_loss = _weighted([(r.n_holdout, r.holdout_loss) for r in trained])
    _, holdout_accuracy = _weighted([(r.n_holdout, r.holdout_accuracy) for r in trained])
    row = {
        "round": state.round,
        "clients": len(updates),
        "n_train": n_train,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "n_holdout": n_holdout,
        "holdout_loss": holdout_loss,
        "holdout_accuracy": holdout_accuracy,
        "update_norm": update_norm(current, following),
    }
    last = state.round >= params.rounds
    released = {s: r.dp.model_dump(mode="json") for s, r in results if r.dp is not None}
    return _next(
        state.model_copy(
            update={
                "phase": "evaluate" if last else "train",
                "round": state.round if last else state.round + 1,
                "weights": to_bytes(following),
                "momentum": None if momentum is None else to_bytes(momentum),
                "history": [*state.history, row],
                "site_metrics": [*state.site_metrics, *(_site_row(s, r) for s, r in results)],
                "dp": released or state.dp,
            }
        )
    )


def _final(params: FedAvgParams, state: FedAvgState, results: Sequence[tuple[str, SiteEvaluate]]) -> Final:
    n_holdout, loss = _weighted([(r.n_holdout, r.holdout_loss) for _, r in results])
    _, acc = _weighted([(r.n_holdout, r.holdout_accuracy) for _, r in results])
    sites = [
        {
            "site": s,
            "n_holdout": r.n_holdout,
            "holdout_loss": r.holdout_loss,
            "holdout_accuracy": r.holdout_accuracy,
        }
        for s, r in results
    ]
    standardization = None if state.mean is None else {"mean": state.mean, "std": state.std}
    return Final(
        {
            "model": params.model,
            "algorithm": params.algorithm,
            "rounds": params.rounds,
            "parameters": params.parameter_count(),
            "features": list(params.features),
            "label": params.label,
            "positive": params.positive,
            "standardization": standardization,
            "history": state.history,
            "site_metrics": state.site_metrics,
            "final": {"n_holdout": n_holdout, "holdout_loss": loss, "holdout_accuracy": acc, "sites": sites},
            "dp": state.dp,
            "budget": {s: r.budget for s, r in results if r.budget is not None} or None,
            "weights_format": "safetensors",
            "weights": state.weights,
        }
    )


class FedAvgModel:
    """`fedavg@1.0.0`. Stateless: everything between rounds is in the orchestrator's `state`."""

    name: str = "fedavg"
    version: str = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        validate_params(params, schema, columns)

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        return columns_used(parse_params(params))

    def start(self, params: Mapping[str, Any]) -> NextRound:
        parsed = parse_params(params)
        weights = to_bytes(initial_weights(parsed))
        if parsed.standardize:
            state = FedAvgState(phase="moments", round=0, weights=weights)
            return NextRound(round_input={"phase": "moments"}, state=state.model_dump())
        return _next(FedAvgState(phase="train", round=1, weights=weights))

    def quorum(self, params: Mapping[str, Any]) -> int:
        """Rounds go on without a failed site while `min_clients` sites answer (`PartialRounds`)."""
        return parse_params(params).min_clients

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        parsed = parse_params(params)
        return site_result(parsed, read_site(dal, dataset, parsed), parse_round_input(round_input))

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Disclosure control; under `privacy.training` also the fence behind the gateway's
        clip_and_noise filter: a train result whose update it did not clip and noise is refused."""
        controls = as_controls(privacy)
        if controls.training is None and controls.dp is not None:
            raise PolicyDenied(_NEEDS_TRAINING)
        features = parse_params(params).features
        parsed = parse_site_result(result, "the site result")
        if controls.training is not None:
            check_dp_release(parsed, controls.training)
        return filter_site_result(parsed, controls.disclosure, features)

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        raise PolicyDenied(_NEEDS_TRAINING)

    def plan_training_dp(self, params: Mapping[str, Any], training: TrainingDp, rows: int) -> DpPlan:
        """The job's DP plan at a site of `rows` rows under the policy's `privacy.training`: its
        projected epsilon over all rounds (reserved once) and the DP-SGD settings, if any. It carries
        the clip-and-noise of this job's updates, which the gateway's clip_and_noise filter runs."""
        parsed = parse_params(params)
        plan = plan_training(parsed, training, rows)
        return replace(plan, update_filter=UpdateClipper(layout(parsed)))

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        parsed = parse_params(params)
        current = parse_message(FedAvgState, state, "the job's state")
        if not site_results:
            raise InvalidInput("there are no site results to aggregate")
        results: list[tuple[str, SiteResult]] = []
        for site, value in sorted(site_results.items()):
            result = parse_site_result(value, f"the result of {site}")
            if not result.filtered:
                raise InvalidInput(f"the result of {site} was not filtered by its gateway")
            answered = getattr(result, "round", 0)
            if result.phase != current.phase or answered != current.round:
                raise InvalidInput(
                    f"the result of {site} answers {result.phase} round {answered}; "
                    f"the job asked for {current.phase} round {current.round}"
                )
            results.append((site, result))
        if current.phase == "moments":
            return _pool_moments(parsed, current, [r for _, r in results if isinstance(r, SiteMoments)])
        if current.phase == "train":
            return _train_round(parsed, current, [(s, r) for s, r in results if isinstance(r, SiteTrain)])
        return _final(parsed, current, [(s, r) for s, r in results if isinstance(r, SiteEvaluate)])
