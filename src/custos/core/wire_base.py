"""The base of every wire model, apart from the models themselves: code inside the sandbox needs
the base (for the DAL's filters) without building every model of the API at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
