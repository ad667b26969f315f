"""Parameters of the built-in `fedavg` model, and their checks against a dataset's schema and a compute
spec's columns.

    {"model": "logistic",            # logistic | mlp | torch_mlp
     "features": ["age", "bmi", "systolic_bp"],
     "label": "smoker", "positive": "yes",
     "hidden": 16,                   # mlp and torch_mlp: width of the one hidden layer
     "rounds": 10, "local_epochs": 1, "batch_size": 32, "learning_rate": 0.1,
     "mu": 0.0,                      # FedProx proximal term; 0 is FedAvg
     "server_learning_rate": 1.0, "server_momentum": 0.0,   # FedAvgM when momentum > 0
     "min_clients": 1, "seed": 0, "holdout": 0.2, "standardize": true,
     "filters": [{"column": "age", "op": ">=", "value": 40}],
     "scope": "private",             # the sites' privacy scope; else their default scope
     "task_result_filters": [{"name": "exclude_keys", "args": {"keys": ["train_seconds"]}}]}

The label is a 0/1 numeric column, a boolean column, or a two-level categorical column with
`positive` naming the level counted as 1. Features are numeric columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custos.computations.params import (
    NUMERIC_TYPES,
    check_column_refs,
    check_filters,
    columns_named,
    describe_params_error,
)
from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema

Kind = Literal["logistic", "mlp", "torch_mlp"]
MAX_FEATURES = 1000
# Weights travel base64-encoded in JSON messages whose size is bounded (16 MB by default).
MAX_PARAMETERS = 20_000_000


class FedAvgParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: Kind = "logistic"
    features: list[str] = Field(min_length=1, max_length=MAX_FEATURES)
    label: str
    positive: str | None = None
    hidden: int = Field(default=16, ge=1, le=10_000_000, strict=True)
    rounds: int = Field(default=10, ge=1, le=1000, strict=True)
    local_epochs: int = Field(default=1, ge=1, le=1000, strict=True)
    batch_size: int = Field(default=32, ge=1, le=1_000_000, strict=True)
    learning_rate: float = Field(default=0.1, gt=0, le=100)
    mu: float = Field(default=0.0, ge=0, le=1000)
    server_learning_rate: float = Field(default=1.0, gt=0, le=100)
    server_momentum: float = Field(default=0.0, ge=0, lt=1)
    min_clients: int = Field(default=1, ge=1, le=10_000, strict=True)
    seed: int = Field(default=0, ge=0, lt=2**63, strict=True)
    holdout: float = Field(default=0.2, ge=0, lt=1)
    standardize: bool = Field(default=True, strict=True)
    filters: list[Filter] = Field(default_factory=list, max_length=100)
    # The site's privacy scope (its privacy.yaml) and the job's own task filters, applied by each
    # gateway from its registry of filters (custos.privacy.filters), which checks them.
    scope: str | None = Field(default=None, min_length=1, max_length=100)
    task_data_filters: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    task_result_filters: list[dict[str, Any]] = Field(default_factory=list, max_length=20)

    @property
    def algorithm(self) -> str:
        return "fedprox" if self.mu > 0 else "fedavg"

    def parameter_count(self) -> int:
        d = len(self.features)
        if self.model == "logistic":
            return d + 1
        return self.hidden * (d + 2) + 1

    def column_refs(self) -> list[tuple[str, str]]:
        refs = [("label", self.label)]
        refs += [(f"features[{i}]", c) for i, c in enumerate(self.features)]
        refs += [(f"filters[{i}].column", f.column) for i, f in enumerate(self.filters)]
        return refs


def parse_params(params: Mapping[str, Any]) -> FedAvgParams:
    """Check the params' structure (no schema needed). Raises InvalidInput naming the field."""
    try:
        parsed = FedAvgParams.model_validate(dict(params))
    except ValidationError as exc:
        raise InvalidInput(describe_params_error(exc.errors()[0], FedAvgParams, {"filters": Filter})) from exc
    seen: set[str] = set()
    for i, column in enumerate(parsed.features):
        if column == parsed.label:
            raise InvalidInput(f"features[{i}]: {column!r} is the label; a feature must be another column")
        if column in seen:
            raise InvalidInput(f"features[{i}]: column {column!r} is listed twice; give each column once")
        seen.add(column)
    if parsed.parameter_count() > MAX_PARAMETERS:
        raise InvalidInput(
            f"hidden: the model would have {parsed.parameter_count():,} parameters; "
            f"at most {MAX_PARAMETERS:,} are accepted"
        )
    check_filters(parsed.filters)
    return parsed


def columns_used(params: FedAvgParams) -> list[str]:
    """Every column read: the label, the features and the filter columns, each once."""
    return columns_named(params.column_refs())


def validate_params(params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]) -> FedAvgParams:
    """Check `params` against the dataset's `schema` and the compute spec's `columns`."""
    parsed = parse_params(params)
    check_column_refs(parsed.column_refs(), schema, columns)
    for i, name in enumerate(parsed.features):
        column = schema.column(name)
        if column.kind != "numeric" or column.type not in NUMERIC_TYPES:
            raise InvalidInput(
                f"features[{i}]: column {name!r} is {column.kind} ({column.type}); a feature is a numeric "
                "(integer or float) column"
            )
    label = schema.column(parsed.label)
    if label.kind == "categorical" and label.categories:
        if len(label.categories) != 2:
            raise InvalidInput(
                f"label: column {label.name!r} has {len(label.categories)} categories; a label has two"
            )
        if parsed.positive not in label.categories:
            quoted = " or ".join(repr(c) for c in label.categories)
            raise InvalidInput(
                f"positive: give the level of {label.name!r} counted as 1 ({quoted}), got {parsed.positive!r}"
            )
    elif label.type == "boolean" or (label.kind == "numeric" and label.type in NUMERIC_TYPES):
        if parsed.positive is not None:
            raise InvalidInput(f"positive: column {label.name!r} is not categorical; leave positive out")
        # Public bounds are rounded outward: a 0/1 column publishes (-0.1, 1.1).
        if label.type != "boolean" and (
            (label.max is not None and label.max >= 2) or (label.min is not None and label.min <= -1)
        ):
            raise InvalidInput(
                f"label: column {label.name!r} ranges over [{label.min}, {label.max}] by its schema; "
                "a label holds only 0 and 1"
            )
    else:
        raise InvalidInput(
            f"label: column {label.name!r} is {label.kind} ({label.type}); a label is a 0/1 numeric column, "
            "a boolean column, or a two-level categorical column with `positive`"
        )
    return parsed
