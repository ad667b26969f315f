"""The contract every federated model meets.

A model runs in two places. At the orchestrator, `start` and `aggregate` drive rounds: each round the
orchestrator hands every gateway the same `round_input`, collects one result per site, and `aggregate`
either asks for another round or returns the final result. In the sandbox at each gateway,
`compute_site` reads rows only through a `DalReader` and returns sufficient statistics. Before a site
result leaves the gateway, the gateway (not the sandboxed code) applies `filter_site_result` with the
privacy controls of the dataset's policy (`custos.privacy.controls`); the orchestrator passes the
strictest disclosure rules of the job's datasets to `aggregate`. A model that meets `MaskedSums` has
some figures masked by the gateway after that filter. Under differential privacy the gateway
asks the model for its `plan_dp` (the queries, their cost, and the settings the sandbox needs) before
it reserves the budget and runs the round.

Everything passed between the two sides is JSON: no pickles, no code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import Field

from custos.core.dal_wire import Filter
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DisclosureRules, DominanceRule, DpSettings, PrivacyControls
from custos.privacy.glm_rules import GlmRules
from custos.privacy.plan import DpPlan
from custos.privacy.secure_sum import SiteKey

if TYPE_CHECKING:
    import pyarrow as pa

    from custos.policy.asset import AssetPolicy

Json = dict[str, Any]

# What a gateway or orchestrator passes for disclosure control: the whole privacy section, its rules,
# or (the older form, still accepted) a bare minimum cell count, which means that rule alone.
Disclosure = PrivacyControls | DisclosureRules | int


def as_controls(disclosure: Disclosure) -> PrivacyControls:
    if isinstance(disclosure, PrivacyControls):
        return disclosure
    if isinstance(disclosure, DisclosureRules):
        return PrivacyControls(disclosure=disclosure)
    return PrivacyControls(disclosure=DisclosureRules(min_count=disclosure, dominance=None))


def as_rules(disclosure: Disclosure) -> DisclosureRules:
    return as_controls(disclosure).disclosure


def effective_rules(privacy: PrivacyControls, min_count: int | None) -> DisclosureRules:
    """The rules in force for a policy that may set both the older top-level `min_count` and
    `privacy.disclosure.min_count`: the larger of the two that were written (either alone when only
    one was; the default 10 when neither)."""
    rules = privacy.disclosure
    if min_count is None:
        return rules
    if "min_count" in rules.model_fields_set:
        min_count = max(min_count, rules.min_count)
    return rules.model_copy(update={"min_count": min_count})


class PolicyControls(PrivacyControls):
    """What a gateway hands a model's `filter_site_result`: the policy's privacy section and the rules
    the policy sets for one model in particular (`glm`)."""

    glm: GlmRules = Field(default_factory=GlmRules)


def policy_privacy(policy: AssetPolicy) -> PolicyControls:
    """An asset policy's privacy section with the disclosure rules in force (its older top-level
    `min_count` reconciled with `privacy.disclosure.min_count` by `effective_rules`), and its model
    rules."""
    written = policy.min_count if "min_count" in policy.model_fields_set else None
    privacy = policy.privacy.model_copy(update={"disclosure": effective_rules(policy.privacy, written)})
    sections = {name: getattr(privacy, name) for name in PrivacyControls.model_fields}
    return PolicyControls(**sections, glm=policy.glm)


def strictest_rules(all_rules: Sequence[DisclosureRules]) -> DisclosureRules:
    """One set of rules at least as strict as each of `all_rules` (for pooling several datasets)."""
    if not all_rules:
        return DisclosureRules()
    dominance = [r.dominance for r in all_rules if r.dominance is not None]
    rounding = [r for r in all_rules if r.rounding != "none"]
    midpoint = any(r.rounding == "midpoint6" for r in rounding)
    extremes = [r.extremes_min_count for r in all_rules if r.extremes_min_count is not None]
    levels = [r.max_levels for r in all_rules if r.max_levels is not None]
    subsets = [r.min_subset for r in all_rules if r.min_subset is not None]
    values: dict[str, Any] = {
        "min_count": max(r.min_count for r in all_rules),
        "dominance": DominanceRule(n=max(d.n for d in dominance), k=min(d.k for d in dominance))
        if dominance
        else None,
        "extremes_min_count": max(extremes) if extremes else None,
        "totals_from_cells": any(r.totals_from_cells for r in all_rules),
        "max_levels": min(levels) if levels else None,
        "min_subset": max(subsets) if subsets else None,
    }
    if midpoint:
        values["rounding"] = "midpoint6"
    elif rounding:
        values |= {"rounding": "nearest", "round_to": max(r.round_to for r in rounding)}
    return DisclosureRules(**values)


class DalReader(Protocol):
    """Rows for sandboxed code. Implementations: the DAL Flight client, and a mock-backed reader."""

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        """Return the granted `columns` of `dataset`, with `filters` applied at the source."""
        ...


@dataclass(frozen=True)
class NextRound:
    """Ask every site for another round. `state` is persisted by the orchestrator between rounds."""

    round_input: Json
    state: Json


@dataclass(frozen=True)
class Final:
    result: Json


Step = NextRound | Final


@runtime_checkable
class PartialRounds(Protocol):
    """A model whose rounds may go on without some sites (federated learning): a site that fails or
    times out (after its lease's retries) is left out of that round, as long as `quorum(params)` sites
    still answered. Other models need every site in every round (exact statistics, exact GLMs)."""

    def quorum(self, params: Mapping[str, Any]) -> int:
        """The fewest sites whose results a round can be aggregated from."""
        ...


@dataclass(frozen=True)
class JobDataset:
    """One of a job's datasets as the checks before a run see it: public metadata and policy only."""

    schema: DatasetSchema
    privacy: PrivacyControls


@runtime_checkable
class JobChecks(Protocol):
    """A model that checks a job over all its datasets before anything runs or is charged, so that a
    job that cannot succeed costs no privacy budget."""

    def check_job(self, params: Mapping[str, Any], datasets: Mapping[str, JobDataset]) -> None:
        """Raise InvalidInput or PolicyDenied, naming the field and the datasets (keyed by
        `gateway/dataset`), for a job that would fail over `datasets` whatever their rows hold. The
        orchestrator runs it at submit over every dataset of the job; a gateway over its own dataset
        before it reserves any budget. MUST NOT touch data."""
        ...


def check_job(model: object, params: Mapping[str, Any], datasets: Mapping[str, JobDataset]) -> None:
    """The model's checks of a job over `datasets`, when it has any (`JobChecks`)."""
    if isinstance(model, JobChecks):
        model.check_job(params, datasets)


@runtime_checkable
class MaskedSums(Protocol):
    """A model some of whose site figures the orchestrator may read only summed over the sites
    (`custos.privacy.secure_sum`): the gateway, which alone holds the site's key, seals each result
    after the model's disclosure filter."""

    def seal_site_result(
        self, params: Mapping[str, Any], round_input: Json, result: Json, key: SiteKey | None
    ) -> Json:
        """`result` with this site's mask key announced, or with its figures masked, as the round
        needs. MUST mask every figure the orchestrator may read only as a sum, and raise when it
        cannot (`key` is None, or the round input's peers do not check out)."""
        ...


class FederatedModel(Protocol):
    name: str
    version: str

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        """Raise InvalidInput naming the field if `params` are not valid for `schema` and the spec's
        `columns`. MUST NOT touch data."""
        ...

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        """Every column the computation will read, for policy checks and DAL grants."""
        ...

    def start(self, params: Mapping[str, Any]) -> NextRound:
        """The first round."""
        ...

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        """Combine one round's site results (keyed by `gateway/dataset`). MUST be deterministic.
        `rules` are the strictest disclosure rules among the datasets' policies: pooled cells below
        their min count, and totals that would reveal them, are suppressed."""
        ...

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        """One site's part of a round, run in the sandbox."""
        ...

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Disclosure control applied by the gateway to what leaves the site. Under a policy with
        differential privacy it MUST refuse a result that is not the DP release `plan_dp` asked for."""
        ...

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        """The DP queries a job with `params` makes at a site under `dp`. Raise PolicyDenied, naming
        why, when the model cannot run these params under differential privacy. MUST NOT touch data."""
        ...
