"""The body of every refusal the API answers, whatever its status: one sentence in `detail`."""

from __future__ import annotations

from pydantic import Field

from custos.core.wire_base import WireModel


class ErrorPublic(WireModel):
    """A refused request: `{"detail": "..."}`. The status says what kind of refusal it is (the tree in
    `custos.core.errors`); the sentence says what was wrong and what is accepted."""

    detail: str = Field(description="what was wrong, and what would be accepted")
