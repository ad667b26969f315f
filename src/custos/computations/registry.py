"""The catalogue of built-in federated models, looked up by name and version.

A model's module is imported when the model is first asked for, not when this catalogue is: the
orchestrator registers the built-ins at start by name and version alone, and pays for a model's
imports (NumPy, pyarrow.compute, safetensors) only when a job or a request needs it.
`tests/unit/computations/test_registry.py` checks that each entry names the model its class does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from custos.computations.base import FederatedModel
from custos.core.errors import NotFound


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    version: str
    module: str
    cls: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


# The models a compute spec may name.
BUILTINS: tuple[BuiltinModel, ...] = (
    BuiltinModel("stats", "1.0.0", "custos.computations.stats.model", "StatsModel"),
    BuiltinModel("glm", "1.0.0", "custos.computations.glm.model", "GlmModel"),
    BuiltinModel("fedavg", "1.0.0", "custos.computations.fedavg.model", "FedAvgModel"),
)
# Reviewed custom code runs as `custom`; a code request, not a compute spec, starts its jobs.
# Published packages run in the sandbox as `package`, handed their verified archive by the gateway.
RUNNERS: tuple[BuiltinModel, ...] = (
    BuiltinModel("custom", "1.0.0", "custos.computations.custom.model", "CustomModel"),
    BuiltinModel("package", "1.0.0", "custos.computations.package.model", "PackageRunner"),
)


@cache
def _load(entry: BuiltinModel) -> FederatedModel:
    model: FederatedModel = getattr(importlib.import_module(entry.module), entry.cls)()
    return model


def list_models() -> list[FederatedModel]:
    return [_load(entry) for entry in BUILTINS]


def load_all() -> None:
    """Import every built-in model and runner now (a sandboxed runtime, before its first round)."""
    for entry in (*BUILTINS, *RUNNERS):
        _load(entry)


def get_model(name: str, version: str) -> FederatedModel:
    for entry in (*BUILTINS, *RUNNERS):
        if entry.name == name and entry.version == version:
            return _load(entry)
    available = ", ".join(entry.ref for entry in BUILTINS)
    raise NotFound(f"unknown model {name}@{version}; available: {available}")


def is_builtin(ref: str) -> bool:
    """Whether `name@version` is a model that ships with Custos (else: a published package)."""
    return any(entry.ref == ref for entry in (*BUILTINS, *RUNNERS))
