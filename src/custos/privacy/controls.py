"""The privacy section of an asset policy: disclosure rules, differential privacy and budget caps.

A custodian writes it under the dataset's policy (see docs/privacy.md):

    privacy:
      disclosure:
        min_count: 10              # a cell of 1..9 rows is suppressed
        rounding: nearest          # none | nearest | midpoint6
        round_to: 5                # only with rounding: nearest
        dominance: {n: 2, k: 85}   # null turns the rule off
        extremes_min_count: 20     # min, max, quantiles: a group of 20 rows; min, max: 20 rows hold it
        totals_from_cells: false   # true: a total is the sum of its rounded, published cells
        max_levels: 50             # a categorical with more levels: no frequency table, no group_by
        min_subset: 20             # the researcher's filters must leave at least 20 rows at a site
      dp:                          # absent: no differential privacy
        mechanism: gaussian        # laplace | gaussian
        epsilon_per_job: 1.0       # or epsilon_per_query
        delta: 1.0e-6              # gaussian only; per job or per query, like epsilon
        bounds: {age: [0, 110]}    # else the dataset's public schema bounds
        rows_per_person: 1         # the most rows one person has in the data
      budget:                      # required with dp
        epsilon_per_researcher: 3.0
        delta_per_researcher: 1.0e-5
        epsilon_per_org: 10.0
        delta_per_org: 1.0e-4
      training:                    # model training (fedavg): clip and noise each site's update
        clip_norm: 1.0             # C: each update (local minus global weights) is clipped to L2 norm C
        noise_multiplier: 1.1      # Gaussian noise of std noise_multiplier * C is added at the gateway
        dp_sgd: false              # true: DP-SGD inside local training too (NumPy models)
        delta: 1.0e-5              # the delta the accountant reports epsilon at

Everything has a default except the budget caps: with no `privacy` section a policy gets the
disclosure defaults (min_count 10, dominance (2, 85 %), no rounding) and no differential privacy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from custos.core.errors import InvalidInput, PolicyDenied

Mechanism = Literal["laplace", "gaussian"]
Rounding = Literal["none", "nearest", "midpoint6"]


@dataclass(frozen=True)
class PrivacyCost:
    """An amount of privacy loss: ε and δ of (ε, δ)-differential privacy."""

    epsilon: float
    delta: float = 0.0


def split_budget(epsilon: float, delta: float, n_queries: int) -> PrivacyCost:
    """One query's share when a job's (ε, δ) is split evenly over its queries (basic composition:
    the shares add up to the job's budget)."""
    if n_queries < 1:
        raise InvalidInput(f"a budget is split over at least 1 query, got {n_queries}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInput(f"epsilon must be a positive number, got {epsilon}")
    if not (math.isfinite(delta) and 0 <= delta < 1):
        raise InvalidInput(f"delta must be in [0, 1), got {delta}")
    return PrivacyCost(epsilon / n_queries, delta / n_queries)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DominanceRule(_Section):
    """(n, k) dominance: a sum is suppressed when its n largest contributors give more than k % of it."""

    n: int = Field(default=2, ge=1, le=100)
    k: float = Field(default=85.0, gt=0, lt=100)


class DisclosureRules(_Section):
    min_count: int = Field(default=10, ge=1, le=1_000_000)
    rounding: Rounding = "none"
    round_to: int = Field(default=5, ge=2, le=1_000_000)
    dominance: DominanceRule | None = Field(default_factory=DominanceRule)
    extremes_min_count: int | None = Field(default=None, ge=1, le=1_000_000)
    totals_from_cells: bool = False
    # DataSHIELD's knobs: a categorical with more levels is refused for frequency tables and grouping;
    # a researcher's filters must leave at least min_subset rows at the site.
    max_levels: int | None = Field(default=None, ge=1, le=1_000_000)
    min_subset: int | None = Field(default=None, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _round_to_needs_nearest(self) -> Self:
        if "round_to" in self.model_fields_set and self.rounding != "nearest":
            raise ValueError(f"round_to applies only to rounding: nearest (rounding is {self.rounding})")
        return self

    @property
    def extremes_threshold(self) -> int:
        """Rows a group needs before its min, max and quantiles are released: never fewer than
        min_count, since a group below min_count has its count suppressed too."""
        return max(self.min_count, self.extremes_min_count or self.min_count)


class DpSettings(_Section):
    mechanism: Mechanism = "laplace"
    epsilon_per_query: float | None = Field(default=None, gt=0, le=100)
    epsilon_per_job: float | None = Field(default=None, gt=0, le=100)
    delta: float = Field(default=0.0, ge=0, lt=1)
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    rows_per_person: int = Field(default=1, ge=1, le=10_000)

    @field_validator("bounds")
    @classmethod
    def _bounds_ordered(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for column, (lower, upper) in value.items():
            if not lower < upper:
                raise ValueError(f"bounds of {column!r} must be [lower, upper] with lower < upper")
        return value

    @model_validator(mode="after")
    def _one_epsilon_and_a_matching_delta(self) -> Self:
        if (self.epsilon_per_query is None) == (self.epsilon_per_job is None):
            raise ValueError("set exactly one of epsilon_per_query and epsilon_per_job")
        if self.mechanism == "gaussian" and self.delta == 0:
            raise ValueError("mechanism gaussian needs a delta > 0, e.g. delta: 1.0e-6")
        if self.mechanism == "laplace" and self.delta != 0:
            raise ValueError("delta applies only to mechanism gaussian; laplace spends delta 0")
        return self

    def query_cost(self, n_queries: int) -> PrivacyCost:
        """What one of a job's `n_queries` DP queries may spend."""
        if self.epsilon_per_query is not None:
            return PrivacyCost(self.epsilon_per_query, self.delta)
        assert self.epsilon_per_job is not None  # the validator requires one of the two
        return split_budget(self.epsilon_per_job, self.delta, n_queries)

    def job_cost(self, n_queries: int) -> PrivacyCost:
        """What a job of `n_queries` DP queries spends in total (the amount the ledger reserves)."""
        if self.epsilon_per_job is not None:
            if n_queries < 1:
                raise InvalidInput(f"a job has at least 1 query, got {n_queries}")
            return PrivacyCost(self.epsilon_per_job, self.delta)
        assert self.epsilon_per_query is not None
        return PrivacyCost(self.epsilon_per_query * n_queries, self.delta * n_queries)

    def bounds_for(
        self, column: str, schema_min: float | None = None, schema_max: float | None = None
    ) -> tuple[float, float]:
        """The clamping bounds of a column: the policy's, else the dataset's public schema bounds."""
        if column in self.bounds:
            return self.bounds[column]
        if schema_min is not None and schema_max is not None and schema_min < schema_max:
            return float(schema_min), float(schema_max)
        raise PolicyDenied(
            f"column {column!r} has no public bounds for differential privacy: "
            f"add privacy.dp.bounds.{column}: [lower, upper] to the policy"
        )


class BudgetCaps(_Section):
    """The most ε and δ one researcher, and one organisation, may spend on a dataset's content."""

    epsilon_per_researcher: float = Field(gt=0, le=1000)
    delta_per_researcher: float = Field(default=0.0, ge=0, lt=1)
    epsilon_per_org: float = Field(gt=0, le=1000)
    delta_per_org: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _researcher_within_org(self) -> Self:
        if self.epsilon_per_researcher > self.epsilon_per_org:
            raise ValueError(
                f"epsilon_per_researcher {self.epsilon_per_researcher:g} is above epsilon_per_org "
                f"{self.epsilon_per_org:g}; a researcher can never spend more than their organisation"
            )
        if self.delta_per_researcher > self.delta_per_org:
            raise ValueError(
                f"delta_per_researcher {self.delta_per_researcher:g} is above delta_per_org "
                f"{self.delta_per_org:g}; a researcher can never spend more than their organisation"
            )
        return self


class TrainingDp(_Section):
    """Differential privacy for model training: the gateway clips each site update to `clip_norm` and
    adds Gaussian noise of std `noise_multiplier * clip_norm`; an accountant turns the job's rounds
    into the epsilon the ledger reserves, at `delta`."""

    clip_norm: float = Field(gt=0, le=1e6)
    noise_multiplier: float = Field(ge=0.3, le=1000)
    dp_sgd: bool = False
    delta: float = Field(default=1e-5, gt=0, lt=0.01)


class PrivacyControls(_Section):
    disclosure: DisclosureRules = Field(default_factory=DisclosureRules)
    dp: DpSettings | None = None
    budget: BudgetCaps | None = None
    training: TrainingDp | None = None

    @model_validator(mode="after")
    def _dp_needs_a_budget(self) -> Self:
        if self.training is not None and self.budget is None:
            raise ValueError("training needs a budget section (epsilon_per_researcher, epsilon_per_org)")
        training, budget = self.training, self.budget
        if training is not None and budget is not None and training.delta > budget.delta_per_researcher:
            raise ValueError(
                f"training.delta {training.delta:g} is above delta_per_researcher "
                f"{budget.delta_per_researcher:g}: no training job could ever run"
            )
        if self.budget is not None and self.dp is None and self.training is None:
            raise ValueError("budget applies only with dp or training; add one or remove budget")
        if self.dp is None or self.budget is None:
            if self.dp is not None:
                raise ValueError("dp needs a budget section with epsilon_per_researcher and epsilon_per_org")
            return self
        smallest = self.dp.job_cost(1)
        if smallest.epsilon > self.budget.epsilon_per_researcher:
            raise ValueError(
                f"one query spends epsilon {smallest.epsilon:g}, more than epsilon_per_researcher "
                f"{self.budget.epsilon_per_researcher:g}: no DP query could ever run"
            )
        if smallest.delta > self.budget.delta_per_researcher:
            raise ValueError(
                f"one query spends delta {smallest.delta:g}, more than delta_per_researcher "
                f"{self.budget.delta_per_researcher:g}: no DP query could ever run"
            )
        return self


def parse_privacy(data: Mapping[str, Any], source: str = "policy") -> PrivacyControls:
    """Validate a policy's `privacy` mapping. Raises InvalidInput naming the field and the problem."""
    try:
        return PrivacyControls.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(["privacy", *(str(p) for p in first["loc"])])
        raise InvalidInput(f"{source}: {field}: {first['msg']}") from exc
