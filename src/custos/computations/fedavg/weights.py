"""Model weights for `fedavg`: named float32 tensors that travel as safetensors bytes, as blobs beside
the JSON messages (`custos.core.blobs`). Nothing is pickled: safetensors holds only a JSON header and
raw tensor data.

Names and shapes follow torch's `nn.Linear` (y = x W^T + b), so the NumPy and torch MLPs share one
layout and either can read the other's weights:

    logistic:       weight (1, d), bias (1,)
    mlp, torch_mlp: hidden.weight (h, d), hidden.bias (h,), output.weight (1, h), output.bias (1,)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load, save

from custos.computations.fedavg.params import FedAvgParams
from custos.core.errors import InvalidInput

Tensor = npt.NDArray[np.float32]
Weights = dict[str, Tensor]


def layout(params: FedAvgParams) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape, in order."""
    d, h = len(params.features), params.hidden
    if params.model == "logistic":
        return {"weight": (1, d), "bias": (1,)}
    return {"hidden.weight": (h, d), "hidden.bias": (h,), "output.weight": (1, h), "output.bias": (1,)}


def initial_weights(params: FedAvgParams) -> Weights:
    """Round 1's global weights: zeros for logistic regression; for an MLP, torch's default
    uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from the job's seed."""
    shapes = layout(params)
    if params.model == "logistic":
        return {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}
    rng = np.random.default_rng([params.seed, 0x5EED])
    weights: Weights = {}
    for name, shape in shapes.items():
        fan_in = len(params.features) if name.startswith("hidden.") else params.hidden
        bound = 1.0 / math.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return weights


def to_bytes(weights: Weights) -> bytes:
    return save({name: np.ascontiguousarray(t, dtype=np.float32) for name, t in weights.items()})


def from_bytes(data: bytes, expected: dict[str, tuple[int, ...]], what: str) -> Weights:
    """Parse safetensors bytes, refusing any tensor the layout does not name, or a wrong shape or dtype."""
    try:
        loaded = load(data)
    except (SafetensorError, ValueError) as exc:
        raise InvalidInput(f"{what}: not a safetensors file ({exc})") from None
    if set(loaded) != set(expected):
        raise InvalidInput(f"{what}: tensors {sorted(loaded)} do not match the model's {sorted(expected)}")
    weights: Weights = {}
    for name, shape in expected.items():
        tensor = loaded[name]
        if tensor.dtype != np.float32 or tuple(tensor.shape) != shape:
            raise InvalidInput(
                f"{what}: tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}; expected float32 {shape}"
            )
        if not np.isfinite(tensor).all():
            raise InvalidInput(f"{what}: tensor {name!r} holds values that are not finite")
        weights[name] = tensor
    return weights


def weighted_average(updates: list[tuple[float, Weights]]) -> dict[str, npt.NDArray[np.float64]]:
    """The sample-weighted mean of the sites' weights, in float64, in the order given."""
    total = math.fsum(n for n, _ in updates)
    names = list(updates[0][1])
    mean: dict[str, npt.NDArray[np.float64]] = {}
    for name in names:
        acc = np.zeros(updates[0][1][name].shape, dtype=np.float64)
        for n, weights in updates:
            acc += (n / total) * weights[name].astype(np.float64)
        mean[name] = acc
    return mean


def server_step(
    global_weights: Weights,
    average: dict[str, npt.NDArray[np.float64]],
    momentum: Weights | None,
    learning_rate: float,
    beta: float,
) -> tuple[Weights, Weights | None]:
    """FedAvg(M): v = beta v + (average - global); global += lr v. With lr 1 and beta 0 the new global
    weights are the average itself."""
    new_weights: Weights = {}
    new_momentum: Weights | None = {} if beta > 0 else None
    for name, current in global_weights.items():
        delta = average[name] - current.astype(np.float64)
        if new_momentum is not None:
            previous = 0.0 if momentum is None else momentum[name].astype(np.float64)
            delta = beta * previous + delta
            new_momentum[name] = delta.astype(np.float32)
        if learning_rate == 1.0 and new_momentum is None:
            new_weights[name] = average[name].astype(np.float32)
        else:
            new_weights[name] = (current.astype(np.float64) + learning_rate * delta).astype(np.float32)
    return new_weights, new_momentum


def update_norm(before: Weights, after: Weights) -> float:
    return math.sqrt(math.fsum(float(np.sum((after[n].astype(np.float64) - before[n]) ** 2)) for n in before))
