"""What one site computes for `fedavg`, inside the sandbox.

Rows come through the DAL with the job's filters pushed down. Each row is held out for evaluation when
a hash of its position and the job's seed (splitmix64) falls below `holdout`, so the split is the same
every round and after any restart; rows with a null label or feature are then dropped. Features are
standardised with the pooled mean and standard deviation of the training rows (from the `moments`
round) when the job asks for it.

Local training draws its batch order from a generator seeded by (job seed, round, a digest of the
site's training rows): deterministic given the seed, the site and the round, and different across
sites without the site knowing its own name.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from custos.computations.base import DalReader
from custos.computations.columns import NumericColumn, is_numeric_type
from custos.computations.fedavg.learners.factory import learner_for
from custos.computations.fedavg.learners.learner import LocalTraining
from custos.computations.fedavg.params import FedAvgParams, columns_used
from custos.computations.fedavg.wire import MAX_LARGEST, MomentsRound, RoundInput, WeightsRound
from custos.core.errors import InvalidInput

Json = dict[str, Any]
Floats = npt.NDArray[np.float64]
_MASK64 = (1 << 64) - 1


def holdout_mask(n: int, seed: int, fraction: float) -> npt.NDArray[np.bool_]:
    """True for the rows held out: splitmix64(position + seed * golden) / 2^64 < fraction."""
    offset = np.uint64((seed * 0x9E3779B97F4A7C15) & _MASK64)
    z = np.arange(n, dtype=np.uint64) + offset
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    uniform = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    mask: npt.NDArray[np.bool_] = uniform < fraction
    return mask


def _floats(table: pa.Table, column: str, what: str) -> Floats:
    array = table.column(column)
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    if not is_numeric_type(array.type):
        raise InvalidInput(f"{what}: column {column!r} holds {array.type} values here; it must be numeric")
    values = NumericColumn(array).floats
    if np.isinf(values).any():
        raise InvalidInput(f"{what}: column {column!r} holds infinite values here")
    return values


def _label(table: pa.Table, params: FedAvgParams) -> Floats:
    array = table.column(params.label)
    if params.positive is not None:
        plain = array.combine_chunks()
        if pa.types.is_dictionary(plain.type):
            plain = plain.dictionary_decode()
        text = pc.cast(plain, pa.string())
        valid = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
        hits = np.asarray(pc.fill_null(pc.equal(text, params.positive), False).to_numpy(zero_copy_only=False))
        return np.where(valid, hits.astype(np.float64), np.nan)
    y = _floats(table, params.label, "label")
    if not np.all(np.isnan(y) | (y == 0) | (y == 1)):
        raise InvalidInput(
            f"label: column {params.label!r} holds values other than 0 and 1 here; give `positive` for a "
            "categorical label"
        )
    return y


@dataclass(frozen=True)
class SiteData:
    x_train: Floats
    y_train: Floats
    x_holdout: Floats
    y_holdout: Floats

    def standardised(self, mean: list[float] | None, std: list[float] | None) -> SiteData:
        if mean is None or std is None:
            return self
        m, s = np.asarray(mean), np.asarray(std)
        if len(m) != self.x_train.shape[1] or len(s) != len(m):
            raise InvalidInput(f"round_input.mean/std: {len(m)} values for {self.x_train.shape[1]} features")
        return SiteData((self.x_train - m) / s, self.y_train, (self.x_holdout - m) / s, self.y_holdout)

    def digest(self) -> int:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.x_train).tobytes())
        h.update(np.ascontiguousarray(self.y_train).tobytes())
        return int.from_bytes(h.digest()[:8], "big")


def read_site(dal: DalReader, dataset: str, params: FedAvgParams) -> SiteData:
    table = dal.read(dataset, columns_used(params), params.filters)
    y = _label(table, params)
    x = np.empty((table.num_rows, len(params.features)), dtype=np.float64)
    for j, column in enumerate(params.features):
        x[:, j] = _floats(table, column, f"features[{j}]")
    held = holdout_mask(table.num_rows, params.seed, params.holdout)
    complete = ~np.isnan(y) & ~np.isnan(x).any(axis=1)
    train, holdout = complete & ~held, complete & held
    return SiteData(x[train], y[train], x[holdout], y[holdout])


def largest_contributions(values: Floats) -> tuple[list[float], float]:
    """The largest absolute values of one feature (at most MAX_LARGEST, largest first) and the sum of
    absolute values: what the gateway's dominance rule needs. They never leave the gateway."""
    size = np.abs(values)
    top = size if len(size) <= MAX_LARGEST else np.partition(size, len(size) - MAX_LARGEST)[-MAX_LARGEST:]
    return [float(v) for v in np.sort(top)[::-1]], float(size.sum())


def moments_result(data: SiteData) -> Json:
    n = len(data.y_train)
    mean = data.x_train.mean(axis=0) if n else np.zeros(data.x_train.shape[1])
    m2 = ((data.x_train - mean) ** 2).sum(axis=0)
    contributions = [largest_contributions(data.x_train[:, j]) for j in range(data.x_train.shape[1])]
    return {
        "phase": "moments",
        "n_train": n,
        "mean": mean.tolist(),
        "m2": m2.tolist(),
        "largest": [largest for largest, _ in contributions],
        "abs_sum": [total for _, total in contributions],
    }


def _metric(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else value


def weights_result(params: FedAvgParams, data: SiteData, step: WeightsRound) -> Json:
    data = data.standardised(step.mean, step.std)
    blob = step.weights
    learner = learner_for(params)
    n_train, n_holdout = len(data.y_train), len(data.y_holdout)
    holdout_loss = holdout_accuracy = None
    if n_holdout:
        holdout_loss, holdout_accuracy = learner.evaluate(blob, data.x_holdout, data.y_holdout)
    base = {"phase": step.phase, "round": step.round, "n_holdout": n_holdout}
    metrics = {"holdout_loss": _metric(holdout_loss), "holdout_accuracy": _metric(holdout_accuracy)}
    if step.phase == "evaluate":
        return base | metrics
    if not n_train:
        return base | metrics | {"n_train": 0, "weights": None}
    dp = step.dp if step.phase == "train" else None
    settings = LocalTraining(params.local_epochs, params.batch_size, params.learning_rate, params.mu, dp)
    rng = np.random.default_rng([params.seed, step.round, data.digest()])
    started = time.perf_counter()
    fit = learner.train(blob, data.x_train, data.y_train, settings, rng)
    seconds = time.perf_counter() - started
    return (
        base
        | metrics
        | {
            "n_train": n_train,
            "weights": fit.weights,
            "train_loss": _metric(fit.loss),
            "train_accuracy": _metric(fit.accuracy),
            "train_seconds": seconds,
        }
    )


def site_result(params: FedAvgParams, data: SiteData, step: RoundInput) -> Json:
    if isinstance(step, MomentsRound):
        return moments_result(data)
    return weights_result(params, data, step)
