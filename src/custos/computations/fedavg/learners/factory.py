"""The learner of a `fedavg` job's model kind. The PyTorch learner is a plugin: its module, and
PyTorch, are imported only for a `torch_mlp` job, and a site without PyTorch refuses such a job."""

from __future__ import annotations

from custos.computations.fedavg.learners.learner import Learner
from custos.computations.fedavg.learners.numpy_learner import NumpyLearner
from custos.computations.fedavg.params import FedAvgParams


def learner_for(params: FedAvgParams) -> Learner:
    if params.model == "torch_mlp":
        from custos.computations.fedavg.learners.torch_learner import TorchLearner, check_torch

        check_torch()
        return TorchLearner(params)
    return NumpyLearner(params)
