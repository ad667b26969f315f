"""The `torch_mlp` kind of `fedavg`: a registered `torch.nn.Module` (never user code), trained with
torch's SGD inside the sandbox. Needs the optional `torch` extra at the gateway only; the orchestrator
averages the same safetensors bytes with NumPy.

Weights are read and written with `safetensors.torch` only: nothing is pickled or `torch.load`ed.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import numpy as np

from custos.computations.fedavg.learners.learner import Fit, Floats, LocalTraining
from custos.computations.fedavg.params import FedAvgParams
from custos.computations.fedavg.weights import layout
from custos.core.errors import InvalidInput

if TYPE_CHECKING:
    import torch


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def check_torch() -> None:
    if not torch_available():
        raise InvalidInput(
            "model: torch_mlp needs PyTorch at this site (pip install torch); use model mlp for the NumPy MLP"
        )


def build_module(features: int, hidden: int) -> torch.nn.Module:
    """The registered MLP: Linear(d, h) -> ReLU -> Linear(h, 1), one logit out."""
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(features, hidden)
            self.output = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.output(torch.relu(self.hidden(x))).squeeze(-1)
            return out

    import torch

    return Mlp().to(torch.float64)


class TorchLearner:
    def __init__(self, params: FedAvgParams) -> None:
        self.features = len(params.features)
        self.hidden = params.hidden
        self.layout = layout(params)

    def _module(self, weights: bytes) -> torch.nn.Module:
        import torch
        from safetensors.torch import load

        try:
            state = load(weights)
        except Exception as exc:
            raise InvalidInput(f"the round's weights: not a safetensors file ({exc})") from None
        if {k: tuple(v.shape) for k, v in state.items()} != self.layout:
            raise InvalidInput(f"the round's weights: tensors do not match the model's {sorted(self.layout)}")
        module = build_module(self.features, self.hidden)
        module.load_state_dict({k: v.to(torch.float64) for k, v in state.items()})
        return module

    def _dump(self, module: torch.nn.Module) -> bytes:
        import torch
        from safetensors.torch import save

        state = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
        return save(state)

    def train(
        self, weights: bytes, x: Floats, y: Floats, settings: LocalTraining, rng: np.random.Generator
    ) -> Fit:
        import torch

        if settings.dp is not None:
            raise InvalidInput("DP-SGD runs only in the NumPy models (logistic, mlp), not torch_mlp")
        module = self._module(weights)
        anchor = [p.detach().clone() for p in module.parameters()]
        optimiser = torch.optim.SGD(module.parameters(), lr=settings.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        n = len(y)
        for _ in range(settings.epochs):
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, settings.batch_size):
                rows = order[start : start + settings.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(module(xt[rows]), yt[rows])
                if settings.mu > 0:
                    proximal = sum(
                        ((p - a) ** 2).sum() for p, a in zip(module.parameters(), anchor, strict=True)
                    )
                    loss = loss + 0.5 * settings.mu * proximal
                loss.backward()
                optimiser.step()
        trained = self._dump(module)
        train_loss, train_accuracy = self.evaluate(trained, x, y)
        return Fit(trained, train_loss, train_accuracy)

    def evaluate(self, weights: bytes, x: Floats, y: Floats) -> tuple[float, float]:
        import torch

        module = self._module(weights)
        with torch.no_grad():
            z = module(torch.from_numpy(x))
            yt = torch.from_numpy(y)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt)
            acc = ((z > 0) == (yt > 0.5)).to(torch.float64).mean()
        return float(loss), float(acc)
