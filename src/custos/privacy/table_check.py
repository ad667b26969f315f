"""The automatic check of a table that code which is not the custodian's returns (custom code, a
published package), before the table reaches its reviewers: the same rules as every released table,
on the one engine (`custos.privacy.sdc`), with the policy's settings.

A finished table says nothing of how it was made, so the check reads its columns:

- a **count** column holds integers >= 0 (or integral floats, nulls aside) and its name says count:
  `n`, `count`, `counts`, `size`, `freq`, `frequency`, `num`, `number`, `rows`, `total`, or a name
  that starts with `n_`, `count_`, `num_` or ends with `_n`, `_count`, `_counts`, `_size`, `_freq`;
- a **magnitude** column holds numbers otherwise (a mean, a sum, an age);
- anything else (text, booleans, mixed) is a label, and is not checked.

Count columns get the policy's minimum count and secondary suppression (each count column is a line
whose total a reader may know; with several count columns each row is a line too; a null count is
treated as already suppressed, so it gets its second cell) and its rounding. The magnitudes of a row
whose count is suppressed describe the same small group and are suppressed with it. What cannot be
checked from a finished table is flagged `unchecked` for the reviewer: magnitudes in a table without
a count column (the rows behind them are unknown), dominance (the contributions are unknown), and a
row whose count is null.

`custom_outputs` in the policy (`CustomOutputs`) decides what happens: `flag` (the default) lists the
cells that break a rule in the review record and leaves them; `enforce` suppresses them (null) and
rounds the counts; `allow_row_level` flags like `flag` and accepts a row-level table. A row-level
table (`row_level_reason`: one row per row read, or a column that identifies rows) is refused under
`flag` and `enforce`. Flags name a cell, a rule and a class of value; never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from custos.core.wire import FlagAction, FlagRule, FlagValueClass, OutputFlag
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import Cell, Line, Table, protect_table, round_count, small_cell_reason

CustomOutputs = Literal["flag", "enforce", "allow_row_level"]
ValueClass = Literal["count", "magnitude", "label"]

# A table is row-level when it has at least this share of the rows of the largest single read.
ROW_LEVEL_SHARE = 0.5
# The most flags one output lists; the rest are counted in one last flag.
MAX_FLAGS = 200
_COUNT_NAME = re.compile(
    r"^(n|count|counts|size|freq|frequency|num|number|rows|total)$"
    r"|^(n|count|num)_.|._(n|count|counts|size|freq)$"
)
NULL_COUNT_REASON = "its row's count is null, so the rows behind it are unknown"
SECONDARY_MAGNITUDE_REASON = "describes the group of a count suppressed to protect another"
NO_COUNT_REASON = (
    "no count column says how many rows each value describes: the minimum count cannot be checked"
)


def dominance_unchecked_reason(n: int, k: float) -> str:
    return f"dominance ({n}, {k:g}%) cannot be checked on a finished table: its contributions are unknown"


@dataclass(frozen=True)
class CheckedTable:
    """The table as it may leave (`rows`: cells suppressed to None and counts rounded under
    `enforce`; as returned otherwise) and what the check found."""

    rows: list[list[Any]]
    flags: list[OutputFlag]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count_value(value: Any) -> bool:
    return _is_number(value) and value >= 0 and float(value).is_integer()


def value_class(name: str, values: Sequence[Any]) -> ValueClass:
    """How the check reads a column: its name and values (see the module's docstring)."""
    present = [v for v in values if v is not None]
    if not present or not all(_is_number(v) for v in present):
        return "label"
    if all(_is_count_value(v) for v in present) and _COUNT_NAME.search(name.casefold()):
        return "count"
    return "magnitude"


def identifier_candidates(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Columns that could identify rows: text or integer values, none null, all different. Whether
    they do is the data's to say (the gateway looks their values up in the dataset)."""
    found: dict[str, list[Any]] = {}
    for j, name in enumerate(columns):
        values = [row[j] for row in rows]
        if not values or any(v is None or isinstance(v, bool) for v in values):
            continue
        if not (all(isinstance(v, str) for v in values) or all(isinstance(v, int) for v in values)):
            continue
        if len(set(values)) == len(values):
            found[name] = values
    return found


def row_level_reason(rows: int, largest_read: int, identifiers: Mapping[str, str]) -> str | None:
    """Why a table of `rows` rows is row-level, or None: at least ROW_LEVEL_SHARE of the rows of the
    largest single read (one row per person), or a column whose values each single out one row of a
    dataset column (`identifiers`: output column -> the dataset column it identifies)."""
    if largest_read and rows and rows >= ROW_LEVEL_SHARE * largest_read:
        return f"it has {rows} rows for a read of {largest_read} rows: one row per row read"
    for column, source in sorted(identifiers.items()):
        return f"column {column!r} identifies rows: its values each single out one row of {source!r}"
    return None


def _rounding_text(rules: DisclosureRules) -> str:
    return f"nearest {rules.round_to}" if rules.rounding == "nearest" else rules.rounding


class _Findings:
    """The flags of one check, in order: the table, its columns, then its cells."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.flags: list[OutputFlag] = []

    def add(
        self,
        rule: FlagRule,
        value_class: FlagValueClass,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        action: FlagAction | None = None,
    ) -> None:
        done: FlagAction = action or ("suppressed" if self.enforce else "flagged")
        self.flags.append(
            OutputFlag(row=row, column=column, rule=rule, value_class=value_class, action=done, reason=reason)
        )

    def bounded(self) -> list[OutputFlag]:
        if len(self.flags) <= MAX_FLAGS:
            return self.flags
        kept = self.flags[: MAX_FLAGS - 1]
        more = len(self.flags) - len(kept)
        return [
            *kept,
            OutputFlag(
                rule="truncated",
                value_class="table",
                action="flagged",
                reason=f"{more} more flags are not listed",
            ),
        ]


def check_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    rules: DisclosureRules,
    mode: CustomOutputs = "flag",
    *,
    row_level: str | None = None,
) -> CheckedTable:
    """Check a table (`columns`, `rows` of one value per column) under the policy's `rules` and its
    `custom_outputs` `mode`. `row_level` is the reason the table is row-level, when the caller found
    one and the mode accepts it (it is flagged)."""
    enforce = mode == "enforce"
    findings = _Findings(enforce)
    out = [list(row) for row in rows]
    if row_level is not None:
        findings.add("row_level", "table", f"row-level output accepted by the policy: {row_level}")
    classes = [value_class(name, [row[j] for row in rows]) for j, name in enumerate(columns)]
    counts = [j for j, kind in enumerate(classes) if kind == "count"]
    magnitudes = [j for j, kind in enumerate(classes) if kind == "magnitude"]
    if magnitudes and not counts:
        for j in magnitudes:
            findings.add("unchecked", "magnitude", NO_COUNT_REASON, column=columns[j], action="unchecked")
    if magnitudes and counts and rules.dominance is not None:
        unknown = dominance_unchecked_reason(rules.dominance.n, rules.dominance.k)
        for j in magnitudes:
            findings.add("dominance", "magnitude", unknown, column=columns[j], action="unchecked")
    cells = {(i, j): _count_cell(out[i][j]) for i in range(len(out)) for j in counts}
    lines = [Line([cells[(i, j)] for i in range(len(out))]) for j in counts]
    if len(counts) > 1:
        lines += [Line([cells[(i, j)] for j in counts]) for i in range(len(out))]
    protect_table(Table(lines), rules.min_count)
    small = small_cell_reason(rules.min_count)
    for j in counts:
        if rules.rounding != "none":
            _round_column(findings, out, j, columns[j], rules, [cells[(i, j)] for i in range(len(out))])
    for i in range(len(out)):
        row_reasons = []
        for j in counts:
            cell = cells[(i, j)]
            if cell.count is None:
                row_reasons.append(NULL_COUNT_REASON)
                continue
            if cell.suppressed:
                assert cell.reason is not None
                rule: FlagRule = "min_count" if cell.reason == small else "secondary"
                findings.add(rule, "count", cell.reason, row=i, column=columns[j])
                row_reasons.append(cell.reason)
                if enforce:
                    out[i][j] = None
        for j in magnitudes if counts else []:
            _flag_magnitude(findings, out, (i, j), columns[j], row_reasons, small)
    return CheckedTable(out, findings.bounded())


def _count_cell(value: Any) -> Cell:
    if value is None:
        return Cell(None, suppressed=True, reason=NULL_COUNT_REASON)
    return Cell(int(value))


def _round_column(
    findings: _Findings, out: list[list[Any]], j: int, name: str, rules: DisclosureRules, cells: list[Cell]
) -> None:
    """Round a count column as the policy rounds counts (`enforce`), or flag it when it is not rounded."""
    how = _rounding_text(rules)
    if findings.enforce:
        for i, cell in enumerate(cells):
            if not cell.suppressed:
                out[i][j] = round_count(cell.count, rules)
        rounded = f"counts rounded as the policy rounds counts ({how}); numbers beside them are not adjusted"
        findings.add("rounding", "count", rounded, column=name, action="rounded")
    elif any(c.count is not None and round_count(c.count, rules) != c.count for c in cells):
        findings.add(
            "rounding", "count", f"counts are not rounded; the policy rounds counts ({how})", column=name
        )


def _flag_magnitude(
    findings: _Findings,
    out: list[list[Any]],
    where: tuple[int, int],
    name: str,
    row_reasons: list[str],
    small: str,
) -> None:
    """A magnitude in a row whose count is suppressed describes the same group: flag or suppress it
    too. One whose row's count is null cannot be checked."""
    i, j = where
    if out[i][j] is None or not row_reasons:
        return
    checked = [r for r in row_reasons if r != NULL_COUNT_REASON]
    if not checked:
        findings.add("unchecked", "magnitude", NULL_COUNT_REASON, row=i, column=name, action="unchecked")
        return
    if small in checked:
        findings.add("min_count", "magnitude", f"describes a group of {small}", row=i, column=name)
    else:
        findings.add("secondary", "magnitude", SECONDARY_MAGNITUDE_REASON, row=i, column=name)
    if findings.enforce:
        out[i][j] = None
