"""The `stats` protocol driven end to end in-process: a DalReader over in-memory Arrow tables (the
sandbox's seam), every message passed through canonical JSON, and cohorts split unevenly over sites."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from custos.computations.base import Final
from custos.computations.stats.model import StatsModel
from custos.core.blobs import through_wire
from custos.core.dal_wire import Filter

Json = dict[str, Any]

_COMPARE = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


class ArrowReader:
    """Projection and pushed-down filters over in-memory tables, with SQL's null semantics (a row
    whose filter column is null fails every comparison, `in` and `not_in`)."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        self.tables = dict(tables)
        self.reads: list[tuple[str, list[str], list[Filter]]] = []

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        self.reads.append((dataset, list(columns), list(filters)))
        table = self.tables[dataset]
        for flt in filters:
            table = table.filter(self._mask(table.column(flt.column), flt))
        return table.select(list(columns))

    @staticmethod
    def _mask(column: pa.ChunkedArray, flt: Filter) -> pa.ChunkedArray:
        if flt.op == "is_null":
            return pc.is_null(column)
        if flt.op == "not_null":
            return pc.is_valid(column)
        if flt.op in ("in", "not_in"):
            inside = pc.is_in(column, value_set=pa.array(flt.value))
            chosen = inside if flt.op == "in" else pc.invert(inside)
            return pc.and_(chosen, pc.is_valid(column))
        return pc.fill_null(_COMPARE[flt.op](column, flt.value), False)


@dataclass
class StatsRun:
    result: Json
    round_inputs: list[Json] = field(default_factory=list)
    site_results: list[dict[str, Json]] = field(default_factory=list)


def run_stats(
    params: Json,
    sites: Mapping[str, pa.Table],
    min_count: int = 1,
    site_min_count: int | None = None,
    max_rounds: int = 40,
) -> StatsRun:
    """start -> compute_site at each site -> gateway filter -> aggregate, until Final."""
    model = StatsModel()
    step = model.start(params)
    state = through_wire(step.state)
    round_input = through_wire(step.round_input)
    run = StatsRun(result={})
    for _ in range(max_rounds):
        run.round_inputs.append(round_input)
        results = {}
        for key, table in sites.items():
            dataset = key.split("/")[1]
            raw = through_wire(
                model.compute_site(ArrowReader({dataset: table}), dataset, params, round_input)
            )
            filtered = model.filter_site_result(params, raw, site_min_count or min_count)
            results[key] = through_wire(filtered)
        run.site_results.append(results)
        outcome = model.aggregate(params, state, results, min_count)
        if isinstance(outcome, Final):
            run.result = through_wire(outcome.result)
            return run
        state, round_input = through_wire(outcome.state), through_wire(outcome.round_input)
    raise AssertionError(f"stats did not finish within {max_rounds} rounds")


def _masked(rng: np.random.Generator, values: np.ndarray, rate: float) -> pa.Array:
    return pa.array(values, mask=rng.random(len(values)) < rate)


def cohort(seed: int, sizes: Sequence[int] = (640, 1500, 230)) -> dict[str, pa.Table]:
    """Three sites, each with its own distributions: integer ages with nulls, rounded BMIs (ties,
    nulls and a few NaN), heavily tied integer scores, signed floats around zero, a categorical sex
    with nulls and a boolean. Each site's table comes in several chunks."""
    rng = np.random.default_rng(seed)
    sites = {}
    for index, n in enumerate(sizes):
        low, high = [(18, 70), (30, 96), (18, 45)][index % 3]
        bmi = np.round(rng.normal(24 + 3 * index, 3 + index, n), 1)
        bmi[rng.random(n) < 0.01] = np.nan
        delta = rng.normal(0, 1000, n)
        delta[rng.random(n) < 0.02] = 0.0
        delta[rng.random(n) < 0.02] = -0.0
        table = pa.table(
            {
                "age": _masked(rng, rng.integers(low, high, n), 0.05),
                "bmi": _masked(rng, bmi, 0.08),
                "score": pa.array(rng.integers(0, 6, n)),
                "delta": pa.array(delta),
                "sex": _masked(rng, rng.choice(["F", "M", "X"], n, p=[0.5, 0.42, 0.08]), 0.03),
                "smoker": _masked(rng, rng.random(n) < 0.2 + 0.1 * index, 0.02),
            }
        )
        cut = n // 3
        sites[f"site-{'abc'[index]}/cohort"] = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    return sites


@pytest.fixture
def stats_runner() -> Callable[..., StatsRun]:
    return run_stats


@pytest.fixture
def make_cohort() -> Callable[..., dict[str, pa.Table]]:
    return cohort


@pytest.fixture
def arrow_reader() -> type[ArrowReader]:
    return ArrowReader
