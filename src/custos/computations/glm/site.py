"""What one site computes for `glm`, inside the sandbox: the triangle R and rotated response c of the
QR decomposition of [√W X | √W z] (see `glm.factor`; for gamma and negative binomial also the triangle of
the expected information), the deviance and the Pearson chi-squared of its own complete rows at the
round's coefficients, read through the DAL with the filters pushed down.

Rows with a null (or NaN) outcome or predictor are left out, as statsmodels' formula interface does
(`missing="drop"`). Categorical values are coded by the params' `levels`, never by what the data
holds: a value the levels do not list is an error, not a new level. X is built and factored a chunk of
rows at a time, so memory stays bounded however many rows the site has.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from custos.computations.base import DalReader
from custos.computations.columns import NumericColumn, as_numpy, is_numeric_type, squared_deviations
from custos.computations.glm.factor import SiteFactor, pack_upper
from custos.computations.glm.family import (
    NON_CANONICAL,
    lgamma_sum,
    log_sum,
    row_pieces,
    shifted_ylogy_sum,
    start_eta,
    ylogy_sum,
)
from custos.computations.glm.params import GlmParams, columns_used
from custos.computations.glm.wire import StartRound, StepRound
from custos.core.errors import InvalidInput

Json = dict[str, Any]
Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int64]
# Elements of one chunk of X: 4 M float64 values are 32 MB, whatever the number of terms.
_CHUNK_ELEMENTS = 1 << 22


def _codes(array: pa.ChunkedArray, levels: list[str], what: str) -> Codes:
    """Each row's index in `levels` (-1 for null). Booleans are "true"/"false", numbers their text."""
    plain = array.combine_chunks()
    if pa.types.is_dictionary(plain.type):
        plain = plain.dictionary_decode()
    if not pa.types.is_string(plain.type):
        plain = pc.cast(plain, pa.string())
    codes = pc.index_in(plain, value_set=pa.array(levels, type=pa.string()))
    if pc.any(pc.and_(pc.is_valid(plain), pc.is_null(codes))).as_py():
        raise InvalidInput(
            f"{what}: the column holds a category that its levels do not list; list every category"
        )
    return np.asarray(as_numpy(pc.fill_null(codes, -1)), dtype=np.int64)


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


def _outcome(table: pa.Table, params: GlmParams) -> Floats:
    levels = params.levels.get(params.outcome)
    if levels is not None:
        codes = _codes(table.column(params.outcome), levels, "outcome")
        return np.where(codes >= 0, codes, np.nan).astype(np.float64)
    y = _floats(table, params.outcome, "outcome")
    if params.family == "binomial" and not np.all(np.isnan(y) | (y == 0) | (y == 1)):
        raise InvalidInput(
            f"outcome: column {params.outcome!r} holds values other than 0 and 1 here; a binomial outcome "
            "is 0/1, boolean, or categorical with two levels"
        )
    if params.family in ("poisson", "negative_binomial"):
        _check_counts(y, params)
    if params.family == "gamma" and np.any(y <= 0):
        raise InvalidInput(
            f"outcome: column {params.outcome!r} holds values that are not positive here; gamma needs "
            "positive values"
        )
    return y


def _check_counts(y: Floats, params: GlmParams) -> None:
    """A count outcome holds whole numbers, 0 or more: checked on the site's own rows, since the
    public bounds are rounded outward (counts from 0 publish a minimum of -1 or below)."""
    if np.any(y < 0):
        raise InvalidInput(
            f"outcome: column {params.outcome!r} holds negative values here; {params.family} needs counts "
            "(0, 1, 2, ...)"
        )
    if np.any(np.isfinite(y) & (y != np.floor(y))):
        raise InvalidInput(
            f"outcome: column {params.outcome!r} holds values that are not whole numbers here; "
            f"{params.family} needs counts (0, 1, 2, ...)"
        )


class Design:
    """A site's complete rows: the outcome and each predictor, as float64 values or level codes."""

    def __init__(self, table: pa.Table, params: GlmParams) -> None:
        self.params = params
        y = _outcome(table, params)
        keep = ~np.isnan(y)
        self._numeric: dict[str, Floats] = {}
        self._codes: dict[str, Codes] = {}
        for i, column in enumerate(params.predictors):
            if column in params.levels:
                codes = _codes(table.column(column), params.levels[column], f"predictors[{i}]")
                keep &= codes >= 0
                self._codes[column] = codes
            else:
                values = _floats(table, column, f"predictors[{i}]")
                keep &= ~np.isnan(values)
                self._numeric[column] = values
        self.y = y[keep]
        self._numeric = {c: v[keep] for c, v in self._numeric.items()}
        self._codes = {c: v[keep] for c, v in self._codes.items()}
        self.terms = params.terms()
        self.n = len(self.y)

    def level_counts(self) -> dict[str, list[int]]:
        return {
            column: [int(c) for c in np.bincount(codes, minlength=len(self.params.levels[column]))]
            for column, codes in self._codes.items()
        }

    def chunks(self) -> Iterator[tuple[slice, Floats]]:
        """(rows, X for those rows), a bounded number of rows at a time."""
        size = max(1, _CHUNK_ELEMENTS // max(1, len(self.terms)))
        for start in range(0, self.n, size):
            rows = slice(start, min(start + size, self.n))
            x = np.empty((rows.stop - rows.start, len(self.terms)), dtype=np.float64)
            for j, term in enumerate(self.terms):
                if term.column is None:
                    x[:, j] = 1.0
                elif term.level is None:
                    x[:, j] = self._numeric[term.column][rows]
                else:
                    level = self.params.levels[term.column].index(term.level)
                    x[:, j] = self._codes[term.column][rows] == level
            yield rows, x


def _outcome_sums(design: Design) -> Json:
    y, family = design.y, design.params.family
    sums: Json = {"sum": float(y.sum())}
    if family == "gaussian":
        mean = float(y.mean()) if design.n else 0.0
        sums |= {"mean": mean, "m2": squared_deviations(y, mean) if design.n else 0.0}
    if family in ("poisson", "negative_binomial"):
        sums |= {"ylogy": ylogy_sum(y), "lgamma": lgamma_sum(y)}
    if family == "negative_binomial":
        shape = 1 / design.params.dispersion
        sums |= {"shifted_ylogy": shifted_ylogy_sum(y, shape), "shifted_lgamma": lgamma_sum(y, shape)}
    if family == "gamma":
        sums |= {"log_y": log_sum(y)}
    return sums


def fit_result(design: Design, round_input: StartRound | StepRound) -> Json:
    """This site's part of the round: at the start values, or at the round's coefficients."""
    p, family = len(design.terms), design.params.family
    beta: Floats | None = None
    if isinstance(round_input, StepRound):
        beta = np.asarray(round_input.coefficients, dtype=np.float64)
        if len(beta) != p:
            raise InvalidInput(f"round_input.coefficients: {len(beta)} values for a model of {p} terms")
    factor = SiteFactor(p)
    # The expected information, for the covariance, where the link is not canonical.
    expected = SiteFactor(p, response=False) if family in NON_CANONICAL else None
    deviance = pearson = 0.0
    boundary = False
    finite = True
    for rows, x in design.chunks():
        y = design.y[rows]
        eta = start_eta(family, y) if beta is None else x @ beta
        pieces = row_pieces(family, y, eta, design.params.dispersion)
        deviance += float(pieces.deviance.sum())
        pearson += float(pieces.pearson.sum())
        boundary = boundary or pieces.boundary
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            root = np.sqrt(pieces.weights)
            response = pieces.weighted_response / root
            root_expected = None if pieces.expected_weights is None else np.sqrt(pieces.expected_weights)
        finite = finite and all(
            bool(np.isfinite(v).all()) for v in (x * root[:, None], response, root_expected) if v is not None
        )
        if finite:
            factor.add(x, root, response)
            if expected is not None and root_expected is not None:
                expected.add(x, root_expected)
    finite = finite and all(math.isfinite(v) for v in (deviance, pearson))
    triangle, rotated = factor.canonical() if finite else (None, None)
    result: Json = {
        "phase": round_input.phase,
        "iteration": 0 if isinstance(round_input, StartRound) else round_input.iteration,
        "n": design.n,
        "finite": finite,
        "r": pack_upper(triangle) if triangle is not None else None,
        "qtz": rotated.tolist() if rotated is not None else None,
        "r_expected": pack_upper(expected.canonical()[0]) if expected is not None and finite else None,
        "deviance": deviance if finite else None,
        "pearson_chi2": pearson if finite else None,
        "boundary": boundary,
        "checks": {
            "events": int(design.y.sum()) if family == "binomial" else None,
            "levels": design.level_counts(),
        },
    }
    if isinstance(round_input, StartRound):
        result["outcome"] = _outcome_sums(design)
    return result


def read_design(dal: DalReader, dataset: str, params: GlmParams) -> Design:
    table = dal.read(dataset, columns_used(params), params.filters)
    return Design(table, params)
