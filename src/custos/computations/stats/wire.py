"""The messages of the `stats` model: round inputs (orchestrator -> sites) and site results
(sites -> gateway filter -> orchestrator). Parsing refuses anything not declared here, so a site
result carries aggregates only.

Round 0, `{"phase": "summary"}`. A site answers

    {"phase": "summary",
     "summaries":   [{"column": "age", "cells": [{"group": null, "count": 120, "sum": 5023, "mean": 41.9,
                                                  "m2": 8812.5, "min": 18, "max": 90}, {"group": "F", ...},
                                                 {"group": "(missing)", ...}]}],
     "frequencies": [{"column": "sex", "cells": [{"category": "F", "count": 61}, ...,
                                                 {"category": "(missing)", "count": 2}]}],
     "histograms":  [{"column": "age", "cells": [{"group": null, "counts": [3, 40, 77, 0]}, ...]}]}

`m2` is the sum of squared deviations about the cell's own mean. With `group_by`, rows whose group is
null form the group "(missing)"; a frequency table counts null values as the category "(missing)"; a
histogram row ends with one more count, of the values outside the edges. So every margin adds up to
the cells published beside it. After the gateway's filter a suppressed cell is
`{"group": "F", "suppressed": true, "reason": "fewer than 10 rows"}` (no values) and a histogram cell
carries `counts` with null for suppressed bins plus `suppressed`/`reasons` per bin.

Rounds 1.., `{"phase": "quantiles", "thresholds": 255, "searches": [{"id", "column", "group", "lo",
"hi"}], "peers": {site: mask key}}`. A site answers `{"phase": "quantiles", "searches": [{"id",
"column", "group", "counts"}], "summary": {...}}`; `summary` is the site's round-0 answer again, from
which the gateway's filter makes the same suppression decisions as in round 0 to refuse searches on
suppressed cells, and which it then removes. The gateway then replaces each `counts` by `masked`
(`stats.masking`), so the orchestrator reads only their sum over the sites. In round 0 each gateway
adds its `mask_key` to the summary result.

Fields marked "site -> gateway only" below are what the gateway's filter needs and removes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.computations.messages import parse_message
from custos.computations.stats.quantiles import MAX_THRESHOLDS
from custos.core.errors import InvalidInput

Number = int | float
MAX_LARGEST = 100
MASKED_CHARS = 4 * ((8 * MAX_THRESHOLDS + 2) // 3)

# The group of rows whose group_by value is null, and the category of null values.
MISSING = "(missing)"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SummaryCell(_Message):
    group: str | None
    count: int | None = Field(default=None, ge=0)
    sum: Number | None = None
    mean: float | None = None
    m2: float | None = None
    min: Number | None = None
    max: Number | None = None
    suppressed: bool = False
    reason: str | None = None
    # Site -> gateway only (the filter removes them): the largest absolute values, largest first, and
    # the sum of absolute values, for the dominance rule.
    largest: list[float] | None = Field(default=None, max_length=MAX_LARGEST)
    abs_sum: float | None = None
    # Site -> gateway only: rows of this cell that the researcher's filters left out, and how many
    # rows hold the minimum and the maximum.
    removed: int | None = Field(default=None, ge=0)
    min_ties: int | None = Field(default=None, ge=0)
    max_ties: int | None = Field(default=None, ge=0)
    # Set by the gateway's filter when it withheld min or max.
    extremes_reason: str | None = None


class SummaryTable(_Message):
    column: str
    cells: list[SummaryCell] = Field(max_length=10_000)


class FrequencyCell(_Message):
    category: str
    count: int | None = Field(default=None, ge=0)
    suppressed: bool = False
    reason: str | None = None
    removed: int | None = Field(default=None, ge=0)  # site -> gateway only


class FrequencyTable(_Message):
    column: str
    cells: list[FrequencyCell] = Field(max_length=100_000)


class HistogramCell(_Message):
    """One row of a histogram: a count per bin, then the count of values outside the edges."""

    group: str | None
    counts: list[int | None] = Field(max_length=1001)
    suppressed: list[bool] | None = None
    reasons: list[str | None] | None = None
    removed: list[int] | None = Field(default=None, max_length=1001)  # site -> gateway only

    def is_suppressed(self, index: int) -> bool:
        return self.counts[index] is None or (self.suppressed is not None and self.suppressed[index])

    def reason(self, index: int) -> str | None:
        return self.reasons[index] if self.reasons is not None else None


class HistogramTable(_Message):
    column: str
    cells: list[HistogramCell] = Field(max_length=10_000)


class SiteSummary(_Message):
    phase: Literal["summary"]
    summaries: list[SummaryTable] = Field(default_factory=list)
    frequencies: list[FrequencyTable] = Field(default_factory=list)
    histograms: list[HistogramTable] = Field(default_factory=list)
    # Site -> gateway only: the rows the researcher's filters left (for the policy's min_subset).
    rows: int | None = Field(default=None, ge=0)


class SearchInterval(_Message):
    id: int = Field(ge=0)
    column: str
    group: str | None
    lo: int
    hi: int


class QuantileRound(_Message):
    phase: Literal["quantiles"]
    round: int = Field(ge=1)
    thresholds: int = Field(ge=1, le=MAX_THRESHOLDS)
    searches: list[SearchInterval] = Field(min_length=1, max_length=100_000)
    # Every site's mask key announcement (`custos.privacy.secure_sum`), for the gateways' masks; the
    # site code does not use them.
    peers: dict[str, dict[str, Any]] | None = Field(default=None, max_length=10_000)


class SummaryRound(_Message):
    phase: Literal["summary"]
    # Set by the gateway (never trusted from the orchestrator) when the policy asks for differential
    # privacy: see `stats.dp.DpRound`.
    dp: dict[str, Any] | None = None


class SearchCounts(_Message):
    id: int = Field(ge=0)
    column: str
    group: str | None
    counts: list[int] | None = Field(default=None, max_length=MAX_THRESHOLDS)
    # What leaves a gateway instead of `counts`: the counts plus the site's pairwise masks, modulo
    # 2**64, as base64 of little-endian 64-bit words (`stats.masking`).
    masked: str | None = Field(default=None, max_length=MASKED_CHARS)
    suppressed: bool = False
    reason: str | None = None


class SiteQuantiles(_Message):
    phase: Literal["quantiles"]
    searches: list[SearchCounts] = Field(max_length=100_000)
    summary: SiteSummary | None = None  # site -> gateway only


class DpSummary(_Message):
    """Noisy statistics of one numeric column: of all rows (group null), or of one public group."""

    column: str
    group: str | None = None
    count: int | None = None
    sum: float | None = None
    mean: float | None = None
    variance: float | None = None


class DpCounts(_Message):
    """Noisy counts per category (a frequency table) or per bin (a histogram, of all rows or a group)."""

    column: str
    group: str | None = None
    labels: list[str] | None = Field(default=None, max_length=100_000)
    counts: list[int] = Field(max_length=100_000)


class DpQuantiles(_Message):
    column: str
    group: str | None = None
    probs: list[float] = Field(max_length=1000)
    values: list[float] = Field(max_length=1000)


class DpSpent(_Message):
    mechanism: Literal["laplace", "gaussian"]
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0, lt=1)
    queries: int = Field(ge=0)


class SiteDp(_Message):
    """A site's differentially private release (one round): noisy values and what they cost."""

    phase: Literal["dp"]
    # With group_by: the public groups, in order; each grouped entry names one.
    groups: list[str] | None = Field(default=None, max_length=100_000)
    summaries: list[DpSummary] = Field(default_factory=list)
    frequencies: list[DpCounts] = Field(default_factory=list)
    histograms: list[DpCounts] = Field(default_factory=list)
    quantiles: list[DpQuantiles] = Field(default_factory=list)
    spent: DpSpent
    rows: int | None = Field(default=None, ge=0)


def parse_site_result(value: Mapping[str, Any], what: str) -> SiteSummary | SiteQuantiles | SiteDp:
    phase = value.get("phase")
    if phase == "dp":
        return parse_message(SiteDp, value, what)
    if phase == "summary":
        return parse_message(SiteSummary, value, what)
    if phase == "quantiles":
        return parse_message(SiteQuantiles, value, what)
    raise InvalidInput(f"{what} has phase {phase!r}; expected 'summary', 'quantiles' or 'dp'")


def parse_round_input(value: Mapping[str, Any]) -> SummaryRound | QuantileRound:
    phase = value.get("phase")
    if phase == "summary":
        return parse_message(SummaryRound, value, "round_input")
    if phase == "quantiles":
        return parse_message(QuantileRound, value, "round_input")
    raise InvalidInput(f"round_input.phase is {phase!r}; expected 'summary' or 'quantiles'")
