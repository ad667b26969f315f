"""What a researcher sees of a dataset: its public metadata, and a mock table to prototype on.

The real rows never leave the gateway; `mock` has the same schema and plausible values but no real row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from custos.core.inert import inert
from custos.core.schema import DatasetSchema
from custos.core.wire import DatasetInfo
from custos.sdk.display import table_html, text_html
from custos.sdk.result import format_cell

if TYPE_CHECKING:
    # pandas takes half a second to import; only mocks and result tables need it.
    import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """A published dataset. `mock` is fetched from the orchestrator on first use."""

    info: DatasetInfo
    load_mock: Callable[[], pd.DataFrame] = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.info.gateway}/{self.info.name}"

    @property
    def schema(self) -> DatasetSchema:
        return self.info.dataset_schema

    @property
    def row_count(self) -> int:
        return self.info.row_count

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def licence(self) -> str:
        """The licence or terms of use the custodian published with the data."""
        return self.schema.licence

    @property
    def owner_org(self) -> str:
        """The org of the gateway that holds the data, from its certificate."""
        return self.info.owner_org

    @property
    def policy_yaml(self) -> str | None:
        return self.info.policy_yaml

    @cached_property
    def mock(self) -> pd.DataFrame:
        return self.load_mock()

    def schema_frame(self) -> pd.DataFrame:
        """One row per column: name, type, kind, nullable, bounds, categories, description and unit."""
        import pandas as pd

        return pd.DataFrame([c.model_dump() for c in self.schema.columns])

    def __repr__(self) -> str:
        owner = f" owner={self.owner_org}" if self.owner_org else ""
        return inert(f"<Dataset {self.ref}{owner} rows≈{self.row_count} columns={self.schema.names}>")

    def _repr_html_(self) -> str:
        head = f"<p><b>{text_html(self.ref)}</b> — about {self.row_count:,} rows"
        if self.owner_org:
            head += f", held by {text_html(self.owner_org)}"
        if self.description:
            head += f"<br>{text_html(self.description)}"
        if self.licence:
            head += f"<br>licence: {text_html(self.licence)}"
        columns = [c.model_dump() for c in self.schema.columns]
        names = list(columns[0]) if columns else []
        rows = ([format_cell(c[name]) for name in names] for c in columns)
        return head + "</p>" + table_html(names, rows)
