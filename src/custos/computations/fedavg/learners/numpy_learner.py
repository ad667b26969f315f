"""The NumPy learner of `fedavg`, inside the sandbox: the logistic regression and one-hidden-layer
MLP (ReLU, sigmoid output) with forward and backward written out.

Training is mini-batch SGD on the mean binary cross-entropy, plus the FedProx term mu/2 ||w - w_global||^2
when mu > 0. The batch order comes from the `rng` the caller seeds (job seed, site, round), so a round
is reproducible. Arithmetic is float64; weights go back to float32 for the wire.

Under DP-SGD (`LocalTraining.dp`) each step takes a Poisson sample of the rows, clips every row's
gradient to the clip norm, sums, adds Gaussian noise and divides by the expected batch size
(Abadi et al. 2016, as Opacus does). Its sampling and noise come from fresh OS randomness.
"""

from __future__ import annotations

import numpy as np

from custos.computations.fedavg.dp import DpSgdRound
from custos.computations.fedavg.learners.learner import Fit, Floats, LocalTraining
from custos.computations.fedavg.params import FedAvgParams
from custos.computations.fedavg.weights import Weights, from_bytes, layout, to_bytes

Arrays = dict[str, Floats]


def bce_with_logits(z: Floats, y: Floats) -> float:
    return float(np.mean(np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z)))))


def sigmoid(z: Floats) -> Floats:
    result: Floats = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def accuracy(z: Floats, y: Floats) -> float:
    return float(np.mean((z > 0.0) == (y > 0.5)))


class NumpyNet:
    """Forward and backward of the logistic regression (no hidden layer) or the MLP."""

    def __init__(self, params: FedAvgParams) -> None:
        self.layout = layout(params)
        self.hidden = params.model != "logistic"

    def load(self, data: bytes) -> Arrays:
        weights = from_bytes(data, self.layout, "the round's weights")
        return {name: t.astype(np.float64) for name, t in weights.items()}

    def dump(self, arrays: Arrays) -> bytes:
        weights: Weights = {name: arrays[name].astype(np.float32) for name in self.layout}
        return to_bytes(weights)

    def logits(self, w: Arrays, x: Floats) -> Floats:
        if not self.hidden:
            out: Floats = x @ w["weight"][0] + w["bias"][0]
            return out
        h = np.maximum(x @ w["hidden.weight"].T + w["hidden.bias"], 0.0)
        out = h @ w["output.weight"][0] + w["output.bias"][0]
        return out

    def example_gradients(self, w: Arrays, x: Floats, y: Floats) -> Arrays:
        """Each row's gradient of its binary cross-entropy: every array has the rows as first axis."""
        if not self.hidden:
            dz = sigmoid(x @ w["weight"][0] + w["bias"][0]) - y
            return {"weight": (dz[:, None] * x)[:, None, :], "bias": dz[:, None]}
        pre = x @ w["hidden.weight"].T + w["hidden.bias"]
        h = np.maximum(pre, 0.0)
        dz = sigmoid(h @ w["output.weight"][0] + w["output.bias"][0]) - y
        dh = np.outer(dz, w["output.weight"][0]) * (pre > 0.0)
        return {
            "hidden.weight": dh[:, :, None] * x[:, None, :],
            "hidden.bias": dh,
            "output.weight": (dz[:, None] * h)[:, None, :],
            "output.bias": dz[:, None],
        }

    def gradients(self, w: Arrays, x: Floats, y: Floats) -> Arrays:
        """Gradients of the mean binary cross-entropy over the rows of `x`."""
        m = len(y)
        if not self.hidden:
            dz = (sigmoid(x @ w["weight"][0] + w["bias"][0]) - y) / m
            return {"weight": (dz @ x)[None, :], "bias": np.array([dz.sum()])}
        pre = x @ w["hidden.weight"].T + w["hidden.bias"]
        h = np.maximum(pre, 0.0)
        dz = (sigmoid(h @ w["output.weight"][0] + w["output.bias"][0]) - y) / m
        dh = np.outer(dz, w["output.weight"][0]) * (pre > 0.0)
        return {
            "hidden.weight": dh.T @ x,
            "hidden.bias": dh.sum(axis=0),
            "output.weight": (dz @ h)[None, :],
            "output.bias": np.array([dz.sum()]),
        }


class NumpyLearner:
    """`logistic` and `mlp`."""

    def __init__(self, params: FedAvgParams) -> None:
        self.net = NumpyNet(params)

    def train(
        self, weights: bytes, x: Floats, y: Floats, settings: LocalTraining, rng: np.random.Generator
    ) -> Fit:
        w = self.net.load(weights)
        anchor = {name: t.copy() for name, t in w.items()}
        n = len(y)
        if settings.dp is not None:
            self._dp_sgd(w, anchor, x, y, settings, settings.dp)
            trained = self.net.dump(w)
            loss, acc = self.evaluate(trained, x, y)
            return Fit(trained, loss, acc)
        for _ in range(settings.epochs):
            order = rng.permutation(n)
            for start in range(0, n, settings.batch_size):
                rows = order[start : start + settings.batch_size]
                grads = self.net.gradients(w, x[rows], y[rows])
                for name, grad in grads.items():
                    if settings.mu > 0:
                        grad = grad + settings.mu * (w[name] - anchor[name])
                    w[name] -= settings.learning_rate * grad
        trained = self.net.dump(w)
        loss, acc = self.evaluate(trained, x, y)
        return Fit(trained, loss, acc)

    def evaluate(self, weights: bytes, x: Floats, y: Floats) -> tuple[float, float]:
        z = self.net.logits(self.net.load(weights), x)
        return bce_with_logits(z, y), accuracy(z, y)

    def _dp_sgd(
        self, w: Arrays, anchor: Arrays, x: Floats, y: Floats, settings: LocalTraining, dp: DpSgdRound
    ) -> None:
        secret = np.random.default_rng()  # never the job's seed: the noise must stay unknown
        expected = max(dp.sampling_rate * len(y), 1.0)
        std = dp.noise_multiplier * dp.clip_norm
        for _ in range(dp.steps):
            rows = np.flatnonzero(secret.random(len(y)) < dp.sampling_rate)
            grads = self.net.example_gradients(w, x[rows], y[rows])
            norms = np.sqrt(sum(np.sum(g.reshape(len(rows), -1) ** 2, axis=1) for g in grads.values()))
            factor = np.minimum(1.0, dp.clip_norm / np.maximum(norms, 1e-12))
            for name, per_row in grads.items():
                clipped = np.tensordot(factor, per_row, axes=1) if len(rows) else np.zeros(w[name].shape)
                grad = (clipped + secret.normal(0.0, std, w[name].shape)) / expected
                if settings.mu > 0:
                    grad = grad + settings.mu * (w[name] - anchor[name])
                w[name] -= settings.learning_rate * grad
