"""A DalReader over in-memory Arrow tables, for tests and for running computations on mock data.

It reads with the same SQL builder as the gateway's file sources, so projection and filters mean the
same here as at the DAL, and it refuses what the DAL refuses: a dataset or a column that is not granted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pyarrow as pa

from custos.core.dal_wire import Filter
from custos.core.errors import PermissionDenied
from custos.data.query import build_select, check_grant, connect


class TableDalReader:
    """Reads `tables` by dataset name. `granted` limits the columns per dataset (default: all of them)."""

    def __init__(
        self, tables: Mapping[str, pa.Table], *, granted: Mapping[str, Collection[str]] | None = None
    ) -> None:
        self._tables = dict(tables)
        self._granted = {
            name: frozenset(granted[name] if granted is not None and name in granted else table.column_names)
            for name, table in self._tables.items()
        }

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        table = self._tables.get(dataset)
        if table is None:
            names = ", ".join(sorted(self._tables)) or "none"
            raise PermissionDenied(f"dataset {dataset} is not granted to this task; granted: {names}")
        # Code written against the DAL may pass filters as plain mappings, as it may over the wire.
        filters = [f if isinstance(f, Filter) else Filter.model_validate(f) for f in filters]
        check_grant(dataset, self._granted[dataset], columns, filters)
        sql, params = build_select(table.schema, list(columns), filters, relation="src")
        con = connect()
        try:
            con.register("src", table)
            result: pa.Table = con.sql(sql, params=params).to_arrow_table()
        finally:
            con.close()
        return result
