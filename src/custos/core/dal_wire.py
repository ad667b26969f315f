"""What sandboxed code sends the Data Access Layer: a ticket naming a dataset, columns and filters;
and what a refusal carries back: its kind and the DAL's sentence, never a traceback.

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


class DalRefusal(WireModel):
    """The detail of a DAL error: `denied` (token, dataset or column not granted), `invalid` (a
    malformed ticket, a filter value the column cannot hold) or `failed` (the read failed at the
    gateway, which logs why)."""

    kind: Literal["denied", "invalid", "failed"]
    message: str = Field(max_length=4000)
