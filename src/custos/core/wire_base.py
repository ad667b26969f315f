"""The base of every wire model, apart from the models themselves: code inside the sandbox needs
the base (for the DAL's filters) without building every model of the API at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Base64 as `base64.b64decode(validate=True)` takes it: the alphabet, padded to whole quads.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
