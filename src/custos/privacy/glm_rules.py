"""The `glm` section of an asset policy: disclosure rules particular to generalised linear models.

    glm:
      min_rows_per_term: 10      # a site refuses a model with more than 1 coefficient per 10 of its rows

With few rows per coefficient a fitted model comes close to reproducing its rows (with as many
coefficients as rows, exactly). The gateway of each site applies the rule to its own rows; see
docs/glm.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

DEFAULT_ROWS_PER_TERM = 10


class GlmRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rows_per_term: int = Field(default=DEFAULT_ROWS_PER_TERM, le=1_000_000)

    @field_validator("min_rows_per_term", mode="before")
    @classmethod
    def _whole_rows_from_one(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PydanticCustomError(
                "rows_per_term",
                "got {value}; give a whole number of rows per coefficient, 1 or more "
                f"(the default is {DEFAULT_ROWS_PER_TERM})",
                {"value": repr(value)},
            )
        return value
