"""Parameters of the built-in `glm` model, and their checks against a dataset's schema and a compute
spec's columns.

    {"family": "binomial",
     "outcome": "smoker",
     "predictors": ["age", "bmi", "sex", "region"],
     "levels": {"smoker": ["no", "yes"], "sex": ["F", "M"],
                "region": ["central", "east", "north", "south", "west"]},
     "intercept": true,
     "max_iterations": 25,
     "tolerance": 1e-10,
     "filters": [{"column": "age", "op": ">=", "value": 40}]}

`alpha` (negative_binomial only; default 1, as statsmodels) is the known dispersion of a negative
binomial outcome, Var(y) = mu + alpha mu^2.

A predictor named in `levels` is categorical: it is dummy-coded with its first level as the reference,
one term `column[level]` per other level. Any other predictor is numeric and enters as it is. The
levels travel in the params because the sites never see the public schema, and must never take the
coding from their data: `validate_params` checks them against the schema's categories instead (every
category listed, so no row can be coded as the reference by omission). A binomial outcome is a 0/1
numeric column, a boolean column (true = 1), or a two-level categorical column whose `levels` say
which level is 0 and which is 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from custos.core.schema import ColumnSchema, DatasetSchema

Family = Literal["gaussian", "binomial", "poisson", "gamma", "negative_binomial"]
LINKS: dict[str, str] = {
    "gaussian": "identity",
    "binomial": "logit",
    "poisson": "log",
    "gamma": "log",
    "negative_binomial": "log",
}
# statsmodels' default for its NegativeBinomial family.
DEFAULT_ALPHA = 1.0
INTERCEPT = "intercept"
# Each site sends a p x p matrix every round: 200 terms is 20,100 numbers.
MAX_TERMS = 200
MAX_LEVELS = 100


@dataclass(frozen=True)
class Term:
    """One coefficient: the intercept (`column` None), a numeric column, or one level of a categorical."""

    name: str
    column: str | None = None
    level: str | None = None


class GlmParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    family: Family
    outcome: str
    predictors: list[str] = Field(default_factory=list, max_length=MAX_TERMS)
    levels: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_TERMS + 1)
    intercept: bool = Field(default=True, strict=True)
    max_iterations: int = Field(default=25, ge=1, le=100, strict=True)
    tolerance: float = Field(default=1e-10, gt=0, lt=1)
    alpha: float | None = Field(default=None, gt=0, le=1000)
    filters: list[Filter] = Field(default_factory=list, max_length=100)

    @property
    def link(self) -> str:
        return LINKS[self.family]

    @property
    def dispersion(self) -> float:
        """The negative binomial's alpha (Var = mu + alpha mu^2); 1 for the other families."""
        return self.alpha if self.alpha is not None else DEFAULT_ALPHA

    def terms(self) -> list[Term]:
        """The model's coefficients in order: intercept, then each predictor (its non-reference levels)."""
        terms = [Term(INTERCEPT)] if self.intercept else []
        for column in self.predictors:
            if column in self.levels:
                terms += [Term(f"{column}[{level}]", column, level) for level in self.levels[column][1:]]
            else:
                terms.append(Term(column, column))
        return terms

    def event(self) -> str | None:
        """For binomial: the outcome's level counted as 1, when the outcome is categorical."""
        outcome_levels = self.levels.get(self.outcome)
        return outcome_levels[1] if outcome_levels is not None else None

    def column_refs(self) -> list[tuple[str, str]]:
        """(field, column) for every column the params name, in the order they appear."""
        refs = [("outcome", self.outcome)]
        refs += [(f"predictors[{i}]", c) for i, c in enumerate(self.predictors)]
        refs += [(f"filters[{i}].column", f.column) for i, f in enumerate(self.filters)]
        return refs


def _check_levels(params: GlmParams) -> None:
    named = {params.outcome, *params.predictors}
    for column, levels in params.levels.items():
        field = f"levels.{column}"
        if column not in named:
            raise InvalidInput(
                f"{field}: {column!r} is neither the outcome nor a predictor; levels are given for "
                f"categorical predictors (and a two-level binomial outcome) only"
            )
        if not 2 <= len(levels) <= MAX_LEVELS:
            raise InvalidInput(
                f"{field}: give 2 to {MAX_LEVELS} levels, the reference first, got {len(levels)}"
            )
        seen: set[str] = set()
        for i, level in enumerate(levels):
            if level in seen:
                raise InvalidInput(f"{field}[{i}]: level {level!r} is listed twice; give each level once")
            seen.add(level)
    outcome_levels = params.levels.get(params.outcome)
    if outcome_levels is not None:
        if params.family != "binomial":
            raise InvalidInput(
                f"levels.{params.outcome}: the outcome of a {params.family} model is numeric and takes "
                "no levels; only a binomial outcome may be categorical"
            )
        if len(outcome_levels) != 2:
            raise InvalidInput(
                f"levels.{params.outcome}: a binomial outcome has exactly two levels, [0-level, 1-level], "
                f"got {len(outcome_levels)}"
            )


def parse_params(params: Mapping[str, Any]) -> GlmParams:
    """Check the params' structure (no schema needed). Raises InvalidInput naming the field."""
    try:
        parsed = GlmParams.model_validate(dict(params))
    except ValidationError as exc:
        raise InvalidInput(describe_params_error(exc.errors()[0], GlmParams, {"filters": Filter})) from exc
    seen: set[str] = set()
    for i, column in enumerate(parsed.predictors):
        if column == parsed.outcome:
            raise InvalidInput(
                f"predictors[{i}]: {column!r} is the outcome; a predictor must be another column"
            )
        if column in seen:
            raise InvalidInput(f"predictors[{i}]: column {column!r} is listed twice; give each column once")
        seen.add(column)
    _check_levels(parsed)
    if parsed.alpha is not None and parsed.family != "negative_binomial":
        raise InvalidInput(
            f"alpha: only a negative_binomial model takes alpha (its variance mu + alpha mu^2); "
            f"a {parsed.family} model does not"
        )
    terms = parsed.terms()
    if not terms:
        raise InvalidInput("the model has no terms; give predictors, or set intercept to true")
    if len(terms) > MAX_TERMS:
        raise InvalidInput(
            f"the model has {len(terms)} coefficients (dummy levels included); "
            f"at most {MAX_TERMS} are accepted"
        )
    names: set[str] = set()
    for term in terms:
        if term.name in names:
            raise InvalidInput(
                f"two coefficients would both be named {term.name!r}; rename the column or drop the intercept"
            )
        names.add(term.name)
    check_filters(parsed.filters)
    return parsed


def columns_used(params: GlmParams) -> list[str]:
    """Every column read: the outcome, the predictors and the filter columns, each once."""
    return columns_named(params.column_refs())


def _paste_hint(column: ColumnSchema) -> str:
    quoted = ", ".join(f'"{c}"' for c in column.categories or [])
    return f'"levels": {{"{column.name}": [{quoted}]}}'


def _check_categories(field: str, params: GlmParams, column: ColumnSchema) -> None:
    """`column` is coded by `params.levels`: the schema must list its categories, and every one of them
    must be a level (levels the schema lacks are allowed: another site's dataset may have them)."""
    if column.kind != "categorical" or not column.categories:
        raise InvalidInput(
            f"{field}: column {column.name!r} is {column.kind} ({column.type}) without public categories; "
            "only columns whose schema lists their categories can be given levels"
        )
    missing = [c for c in column.categories if c not in params.levels[column.name]]
    if missing:
        what = "category" if len(missing) == 1 else "categories"
        verb = "is" if len(missing) == 1 else "are"
        raise InvalidInput(
            f"levels.{column.name}: the dataset's {what} {', '.join(map(repr, missing))} {verb} not listed; "
            f"list every category, the reference first, e.g. {_paste_hint(column)}"
        )


def _check_outcome(params: GlmParams, column: ColumnSchema) -> None:
    family = params.family
    if column.name in params.levels:
        _check_categories("outcome", params, column)
        return
    if family == "binomial" and column.type == "boolean":
        return
    if column.kind != "numeric" or column.type not in NUMERIC_TYPES:
        accepted = (
            "a 0/1 numeric column, a boolean column, or a two-level categorical column with its levels"
            if family == "binomial"
            else "a numeric (integer or float) column"
        )
        hint = f"; for example {_paste_hint(column)}" if family == "binomial" and column.categories else ""
        raise InvalidInput(
            f"outcome: column {column.name!r} is {column.kind} ({column.type}); a {family} outcome is "
            f"{accepted}{hint}"
        )
    # Public bounds are rounded outward (counts from 0 to 10 publish [-1, 11]): they can show that no
    # row could be a valid outcome, never that some row is not. The site checks its own rows.
    low, high = column.min, column.max
    if family == "binomial" and ((low is not None and low > 1) or (high is not None and high < 0)):
        raise InvalidInput(
            f"outcome: column {column.name!r} ranges over [{low}, {high}] by its schema; "
            "a binomial outcome holds only 0 and 1"
        )
    if family in ("poisson", "negative_binomial") and high is not None and high < 0:
        raise InvalidInput(
            f"outcome: column {column.name!r} is below 0 in every row by its schema (at most {high}); "
            f"a {family} outcome holds counts (0 or more)"
        )
    if family == "gamma" and high is not None and high <= 0:
        raise InvalidInput(
            f"outcome: column {column.name!r} is 0 or below in every row by its schema (at most {high}); "
            "a gamma outcome is positive"
        )


def _check_predictor(field: str, params: GlmParams, column: ColumnSchema) -> None:
    if column.name in params.levels:
        _check_categories(field, params, column)
        return
    if column.kind == "numeric" and column.type in NUMERIC_TYPES:
        return
    if column.kind == "categorical" and column.categories:
        raise InvalidInput(
            f"{field}: column {column.name!r} is categorical; give its levels, the reference first, "
            f"e.g. {_paste_hint(column)}"
        )
    raise InvalidInput(
        f"{field}: column {column.name!r} is {column.kind} ({column.type}); a predictor is a numeric "
        "column, or a categorical column whose schema lists its categories"
    )


def validate_params(params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]) -> GlmParams:
    """Check `params` against the dataset's `schema` and the compute spec's `columns`."""
    parsed = parse_params(params)
    check_column_refs(parsed.column_refs(), schema, columns)
    _check_outcome(parsed, schema.column(parsed.outcome))
    for i, name in enumerate(parsed.predictors):
        _check_predictor(f"predictors[{i}]", parsed, schema.column(name))
    return parsed
