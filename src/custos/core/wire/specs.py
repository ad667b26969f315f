"""Compute specs: what a job may run, on which datasets and columns, with which resources."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.states import SpecState
from custos.core.wire.resources import Resources
from custos.core.wire_base import WireModel


class SpecCreate(WireModel):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(description="name@version, e.g. stats@1.0.0")
    datasets: list[str] = Field(min_length=1, max_length=100, description="gateway/dataset")
    columns: list[str] = Field(min_length=1, max_length=1000)
    resources: Resources = Resources()


class SpecPublic(WireModel):
    id: str
    name: str
    model: str
    datasets: list[str]
    columns: list[str]
    resources: Resources
    state: SpecState
    reason: str | None
    owner: str
    org: str
    created_at: datetime
