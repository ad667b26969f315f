"""Compute specs: what a job may run, on which datasets and columns, with which resources."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.refs import DatasetRefText, ModelRefText
from custos.core.states import SpecState
from custos.core.wire.resources import Resources
from custos.core.wire_base import WireModel


class SpecCreate(WireModel):
    name: str = Field(min_length=1, max_length=200)
    model: ModelRefText
    datasets: list[DatasetRefText] = Field(
        min_length=1, max_length=100, description="at most one dataset of each gateway"
    )
    columns: list[str] = Field(min_length=1, max_length=1000, json_schema_extra={"uniqueItems": True})
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
