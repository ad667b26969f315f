"""The catalogue of built-in federated models, looked up by name and version."""

from __future__ import annotations

from custos.computations.base import FederatedModel
from custos.computations.custom.model import CustomModel
from custos.computations.fedavg.model import FedAvgModel
from custos.computations.glm.model import GlmModel
from custos.computations.package.model import PackageRunner
from custos.computations.stats.model import StatsModel
from custos.core.errors import NotFound

_MODELS: tuple[FederatedModel, ...] = (StatsModel(), GlmModel(), FedAvgModel())
# Reviewed custom code runs as this model; a code request, not a compute spec, starts its jobs.
_CUSTOM = CustomModel()
# Published packages run in the sandbox as this model, handed their verified archive by the gateway.
_PACKAGE = PackageRunner()


def list_models() -> list[FederatedModel]:
    return list(_MODELS)


def get_model(name: str, version: str) -> FederatedModel:
    for model in (*_MODELS, _CUSTOM, _PACKAGE):
        if model.name == name and model.version == version:
            return model
    available = ", ".join(f"{m.name}@{m.version}" for m in _MODELS)
    raise NotFound(f"unknown model {name}@{version}; available: {available}")


def is_builtin(ref: str) -> bool:
    """Whether `name@version` is a model that ships with Custos (else: a published package)."""
    name, _, version = ref.partition("@")
    return any(m.name == name and m.version == version for m in (*_MODELS, _CUSTOM, _PACKAGE))
