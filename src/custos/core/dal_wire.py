"""What sandboxed code sends the Data Access Layer: a ticket naming a dataset, columns and filters.

The DAL checks the ticket's capability token and grants; filters are pushed down into the read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custos.core.wire_base import WireModel

FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"]
Scalar = str | int | float | bool


class Filter(WireModel):
    column: str
    op: FilterOp
    value: Scalar | list[Scalar] | None = None


class DalTicket(WireModel):
    token: str = Field(max_length=256)
    dataset: str
    columns: list[str] = Field(min_length=1, max_length=1000)
    filters: list[Filter] = Field(default_factory=list, max_length=100)
