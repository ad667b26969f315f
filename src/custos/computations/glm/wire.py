"""The messages of the `glm` model: round inputs (orchestrator -> sites), site results (sites -> gateway
filter -> orchestrator) and the orchestrator's state between rounds. Parsing refuses anything not
declared here, so a site result carries aggregates only.

Round 0, `{"phase": "start"}`: each site starts IRLS from its own data (mu = (y + 0.5) / 2 for
binomial, y + 0.1 for poisson and negative binomial, y for gaussian and gamma), so the first pooled
step needs no coefficients.
Rounds k >= 1, `{"phase": "step", "iteration": k, "coefficients": [...]}`. A site answers

    {"phase": "step", "iteration": 3, "n": 1200, "finite": true,
     "r": [upper triangle of R, row by row], "qtz": [c = Q'√W z], "r_expected": null, "deviance": 812.4,
     "pearson_chi2": 1190.2, "boundary": false,
     "outcome": {"sum": 410.0, "mean": null, "m2": null, "ylogy": null, "lgamma": null},
     "checks": {"events": 410, "levels": {"sex": [590, 610]}}}

for its complete rows at those coefficients: R and c are the canonical triangle and rotated response of
the QR decomposition of [√W X | √W z] (z the IRLS working response; see `glm.factor`), so R'R = X'WX
and R'c = X'Wz. For gamma and negative binomial, whose log link is not canonical, W is the observed
information and `r_expected` the triangle of the expected information (for the covariance); null
otherwise. `outcome` (round 0 only) holds the sums the null deviance and the log-likelihood need.
`checks` are for the gateway's disclosure filter, which removes them; the orchestrator refuses a result
that still carries them. `finite` false (with null matrices) says the coefficients overflowed at this
site.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.computations.glm.params import MAX_LEVELS, MAX_TERMS
from custos.computations.messages import parse_message
from custos.core.errors import InvalidInput

_PACKED = MAX_TERMS * (MAX_TERMS + 1) // 2


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class StartRound(_Message):
    phase: Literal["start"]


class StepRound(_Message):
    phase: Literal["step"]
    iteration: int = Field(ge=1)
    coefficients: list[float] = Field(min_length=1, max_length=MAX_TERMS)


class OutcomeSums(_Message):
    """Sums of the outcome over a site's complete rows: `sum` always; gaussian `mean` and `m2` (squared
    deviations about the site's own mean); poisson and negative binomial `ylogy` (sum of y log y) and
    `lgamma` (of y + 1); negative binomial also `shifted_ylogy` and `shifted_lgamma`, the same of
    y + 1/alpha; gamma `log_y` (sum of log y)."""

    sum: float
    mean: float | None = None
    m2: float | None = None
    ylogy: float | None = None
    lgamma: float | None = None
    shifted_ylogy: float | None = None
    shifted_lgamma: float | None = None
    log_y: float | None = None


class SiteChecks(_Message):
    """What the gateway's disclosure filter checks, then removes: binomial events, rows per level."""

    events: int | None = Field(default=None, ge=0)
    levels: dict[str, list[int]] = Field(default_factory=dict, max_length=MAX_TERMS)


class SiteFit(_Message):
    phase: Literal["start", "step"]
    iteration: int = Field(ge=0)
    n: int = Field(ge=0)
    finite: bool
    r: list[float] | None = Field(default=None, max_length=_PACKED)
    qtz: list[float] | None = Field(default=None, max_length=MAX_TERMS)
    r_expected: list[float] | None = Field(default=None, max_length=_PACKED)
    deviance: float | None = None
    pearson_chi2: float | None = None
    boundary: bool = False
    outcome: OutcomeSums | None = None
    checks: SiteChecks | None = None

    def check_shape(self, terms: int, what: str, expected: bool = False) -> None:
        """Raise InvalidInput unless the numbers are there (when finite) and sized for `terms`, with the
        expected information's triangle if and only if `expected`."""
        if not self.finite:
            return
        if expected != (self.r_expected is not None):
            state = "lacks" if expected else "has"
            raise InvalidInput(
                f"{what} {state} r_expected, which this family's model needs only with a log link"
            )
        if self.r_expected is not None and len(self.r_expected) != terms * (terms + 1) // 2:
            raise InvalidInput(f"{what} has an r_expected sized for another number of coefficients")
        if self.r is None or self.qtz is None or self.deviance is None or self.pearson_chi2 is None:
            raise InvalidInput(f"{what} is finite but lacks r, qtz, deviance or pearson_chi2")
        if len(self.qtz) != terms or len(self.r) != terms * (terms + 1) // 2:
            raise InvalidInput(
                f"{what} has {len(self.qtz)} coefficients' sums; the model has {terms} coefficients"
            )
        if self.checks is not None:
            for column, counts in self.checks.levels.items():
                if len(counts) > MAX_LEVELS:
                    raise InvalidInput(f"{what} counts more than {MAX_LEVELS} levels of {column!r}")


class FitState(_Message):
    """The orchestrator's state between rounds. `iteration` is the one whose results it expects next
    (0: the start round), evaluated at `coefficients`; `accepted` are the last coefficients whose
    deviance was finite (`deviance`), which a step that overflows is halved back towards."""

    iteration: int = Field(ge=0)
    coefficients: list[float] | None = None
    accepted: list[float] | None = None
    deviance: float | None = None
    halvings: int = Field(default=0, ge=0)
    rounds: int = Field(default=0, ge=0)
    n: int = Field(default=0, ge=0)
    null_deviance: float | None = None
    saturated_loglik: float | None = None
    log_y: float | None = None


def parse_round_input(value: Mapping[str, Any]) -> StartRound | StepRound:
    phase = value.get("phase")
    if phase == "start":
        return parse_message(StartRound, value, "round_input")
    if phase == "step":
        return parse_message(StepRound, value, "round_input")
    raise InvalidInput(f"round_input.phase is {phase!r}; expected 'start' or 'step'")


def parse_site_fit(value: Mapping[str, Any], terms: int, what: str, expected: bool = False) -> SiteFit:
    fit = parse_message(SiteFit, value, what)
    fit.check_shape(terms, what, expected)
    return fit
