"""The automatic check of what code that is not the custodian's (custom code, a published package)
returns, after its type and caps passed and before it leaves for review: a row-level table is refused
(unless the policy says `custom_outputs: allow_row_level`), and a table's cells are checked under the
policy's disclosure rules (`custos.privacy.table_check`), flagged or, under `custom_outputs: enforce`,
suppressed. A JSON or file output cannot be read as a table, and is flagged unchecked. The flags ride
in the output (`"flags"`), where its reviewers read them; nothing the sandbox sent under that key is
kept.

Whether a column identifies rows is the data's to say: the gateway looks the column's values up in
each granted column of the dataset of the same kind (text or integer), and a column most of whose
values each single out one row there is an identifier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from custos.computations.base import policy_privacy
from custos.computations.custom.files import FILE_KIND
from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.wire import OutputFlag
from custos.data.query import MAX_IN_VALUES
from custos.data.source import DataSource
from custos.policy import AssetPolicy
from custos.privacy.table_check import check_table, identifier_candidates, row_level_reason

Json = dict[str, Any]
_UNCHECKED = "a {kind} output is not checked automatically: its reviewers read it whole"


def check_code_output(
    encoded: Mapping[str, Any],
    policy: AssetPolicy,
    source: DataSource,
    columns: Sequence[str],
    reads: Sequence[int],
) -> Json:
    """`encoded` (already of its declared type and within its caps) as it may leave, with its flags.
    `columns` are the dataset's columns granted to the code; `reads` the rows of each read the DAL
    served it. Raises PolicyDenied for a row-level table the policy does not accept."""
    output = {key: value for key, value in encoded.items() if key != "flags"}
    kind = output.get("type")
    if kind != "table":
        value_class = "file" if kind == FILE_KIND else "json"
        flag = OutputFlag(
            rule="unchecked",
            value_class=value_class,
            action="unchecked",
            reason=_UNCHECKED.format(kind=value_class),
        )
        return output | {"flags": [_flag_json(flag)]}
    names, rows = list(output["columns"]), output["rows"]
    identifiers = identifying_columns(source, columns, identifier_candidates(names, rows))
    reason = row_level_reason(len(rows), max(reads, default=0), identifiers)
    if reason is not None and policy.custom_outputs != "allow_row_level":
        raise PolicyDenied(
            f"the output is refused: it is row-level ({reason}); this dataset's policy accepts row-level "
            "outputs only with custom_outputs: allow_row_level"
        )
    checked = check_table(
        names, rows, policy_privacy(policy).disclosure, policy.custom_outputs, row_level=reason
    )
    return output | {"rows": checked.rows, "flags": [_flag_json(f) for f in checked.flags]}


def _flag_json(flag: OutputFlag) -> Json:
    return flag.model_dump(mode="json", exclude={"dataset"})


def identifying_columns(
    source: DataSource, granted: Sequence[str], candidates: Mapping[str, list[Any]]
) -> dict[str, str]:
    """Output column -> the granted dataset column in which at least half of its values (and at least
    one) each match exactly one row."""
    if not candidates:
        return {}
    schema = source.arrow_schema()
    found: dict[str, str] = {}
    for name, values in candidates.items():
        text = isinstance(values[0], str)
        for column in granted:
            if column not in schema.names or len(values) > MAX_IN_VALUES:
                continue
            kind = schema.field(column).type
            if not (
                pa.types.is_string(kind) or pa.types.is_large_string(kind)
                if text
                else pa.types.is_integer(kind)
            ):
                continue
            if _singled_out(source, column, values) * 2 >= len(values):
                found[name] = column
                break
    return found


def _singled_out(source: DataSource, column: str, values: list[Any]) -> int:
    """How many of `values` occur in exactly one row of `column`."""
    try:
        reader = source.read([column], [Filter(column=column, op="in", value=values)])
    except InvalidInput:
        return 0
    seen: Counter[Any] = Counter()
    for batch in reader:
        seen.update(batch.column(0).to_pylist())
    return sum(1 for value in values if seen[value] == 1)
