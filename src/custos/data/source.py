"""The DataSource seam: where a gateway's rows come from. One file per kind of source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa

from custos.core.dal_wire import Filter


class DataSource(Protocol):
    """Rows of one registered dataset, read at the gateway.

    Implementations MUST:
    - read only the named `columns`, in the order given, and refuse (InvalidInput) a column the data does
      not hold or a column named twice;
    - apply `filters` at the source (pushdown), with the semantics of `custos.data.query` (comparisons
      never match nulls; values must suit the column's type, else InvalidInput);
    - build SQL only from identifiers checked against the data's own schema, and pass filter values as
      parameters (docs/threats.md, A6);
    - stream record batches rather than materialise the whole result;
    - be safe to call from several threads at once (the DAL serves each request on its own thread).
    """

    name: str

    def arrow_schema(self) -> pa.Schema:
        """Every column of the dataset with the Arrow type `read` returns it as."""
        ...

    def read(self, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.RecordBatchReader:
        """Stream the named columns of the rows that match every filter."""
        ...
