"""The public description of a dataset: column names, logical types, bounds and categories, and the
custodian's catalogue text (column descriptions and units, the licence or terms of use).

The catalogue fields are optional and default to empty, so a schema from a gateway that predates them
still validates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.core.errors import InvalidInput

ColumnType = Literal["integer", "float", "boolean", "string", "date", "timestamp"]
ColumnKind = Literal["numeric", "categorical", "other"]
# The category of every value too rare to publish (custos.data.profile): the last of a column's
# categories when it has such values, and what the gateway serves computations in their place.
OTHER_CATEGORY = "(other)"


class ColumnSchema(BaseModel):
    """One column. `min`/`max` are public bounds (rounded outward), never a raw data value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: ColumnType
    kind: ColumnKind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    description: str = ""
    unit: str = ""


class DatasetSchema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[ColumnSchema]
    licence: str = Field(default="", description="the licence or terms of use of the data")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise InvalidInput(f"unknown column {name!r}; the dataset has: {', '.join(self.names)}")
