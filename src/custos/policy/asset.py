"""Asset policy, version 1: per dataset, who may run which models on which columns.

    dataset: patients
    grants:
      - orgs: [university]
        users: [alice]
        models: ["stats@>=1.0,<2"]
        columns: [age, sex, bmi]
    min_count: 10
    release: none            # none | one | two reviewers before the researcher sees a result
    custom_code: never       # never | review: whether reviewed custom code may run here
    custom_outputs: flag     # flag | enforce | allow_row_level: the automatic check of code outputs
    model_release: false     # whether a trained model's weights (fedavg's final model) may leave
    privacy: {...}           # disclosure rules, differential privacy, budget: see custos.privacy.controls
    glm: {min_rows_per_term: 10}   # rows a site needs per coefficient of a glm: see custos.privacy.glm_rules

Default deny: no policy, or no grant that matches, means no access.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custos.core.errors import InvalidInput
from custos.core.yamltext import parse_yaml_mapping
from custos.privacy.controls import PrivacyControls
from custos.privacy.glm_rules import GlmRules
from custos.privacy.table_check import CustomOutputs

MAX_POLICY_BYTES = 256 * 1024


def split_model_pattern(pattern: str) -> tuple[str, SpecifierSet]:
    """`stats@>=1.0,<2` -> ("stats", >=1.0,<2); `stats` alone means any version; `stats@1.0` means ==1.0."""
    name, sep, spec = pattern.partition("@")
    spec = spec.strip()
    if sep and spec and spec[0].isdigit():
        spec = f"=={spec}"
    try:
        return name.strip(), SpecifierSet(spec)
    except InvalidSpecifier as exc:
        raise InvalidInput(
            f"model pattern {pattern!r} has an invalid version range; write e.g. stats@>=1.0,<2"
        ) from exc


class Grant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    orgs: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    models: list[str] = Field(min_length=1)
    columns: list[str] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _models_parse(cls, value: list[str]) -> list[str]:
        for pattern in value:
            split_model_pattern(pattern)
        return value

    def matches_who(self, name: str, org: str) -> bool:
        return name.casefold() in {u.casefold() for u in self.users} or org.casefold() in {
            o.casefold() for o in self.orgs
        }

    def matches_model(self, model: str, version: str) -> bool:
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        for pattern in self.models:
            name, spec = split_model_pattern(pattern)
            if name == model and parsed in spec:
                return True
        return False


ReleaseReview = Literal["none", "one", "two"]


class AssetPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    grants: list[Grant] = Field(default_factory=list)
    min_count: int = Field(default=10, ge=1, le=1_000_000)
    # Disclosure control, differential privacy and budget caps (custos.privacy.controls).
    privacy: PrivacyControls = Field(default_factory=PrivacyControls)
    # Results wait for this many reviewers of the dataset's org before the researcher sees them.
    release: ReleaseReview = "none"
    # Custom code: `never` refuses every request; `review` accepts requests that a custodian reviews
    # (and a grant naming model `custom` gives the columns the code may read).
    custom_code: Literal["never", "review"] = "never"
    # The gateway's check of the tables that custom code and published packages return, under the
    # privacy section's disclosure rules (custos.privacy.table_check): `flag` lists the cells that
    # break a rule in the review record, `enforce` suppresses them; both refuse a row-level table,
    # which `allow_row_level` accepts (flagged).
    custom_outputs: CustomOutputs = "flag"
    # A trained model can remember its training rows: its weights reach the researcher only when the
    # policy of every dataset it was trained on says `model_release: true`. Metrics always do.
    model_release: bool = False
    # A glm site refuses a model with fewer than `min_rows_per_term` of its rows per coefficient.
    glm: GlmRules = Field(default_factory=GlmRules)


@lru_cache(maxsize=256)
def load_policy(text: str, source: str = "policy") -> AssetPolicy:
    """Parse policy YAML safely. Raises InvalidInput naming the problem and where it is.

    The orchestrator reads a dataset's stored policy at a job's submission and again at its end: the
    policy parsed from the same text is kept (it is frozen), and a refusal is never kept."""
    data = parse_yaml_mapping(
        text, source, max_bytes=MAX_POLICY_BYTES, expected="keys dataset, grants, min_count"
    )
    try:
        return AssetPolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "policy"
        raise InvalidInput(f"{source}: {field}: {first['msg']}") from exc
