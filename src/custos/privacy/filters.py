"""Task filters, as NVFLARE has them: task data filters change what the gateway hands the sandbox (a
round's input), task result filters change what leaves the site (a site result), before the model's
own disclosure rules run. The orchestrator has its own `privacy.yaml` too (`orchestrator_chain`): its
data filters change a round's input before it goes to the gateways, its result filters each site's
result before aggregation.

Filters are registered classes, chosen by name (`FILTERS`); a configuration can name one and give it
arguments, never supply code. They come from two places, and run in this order:

1. **site filters**: the custodian's `privacy.yaml`, next to the gateway's DATASETS.yaml, maps
   scopes to filter lists. A job names its scope in its params (`"scope": "private"`); a job that
   names none gets the file's `default_scope` (or no site filters when there is none). A scope the
   file does not define is refused, never silently defaulted. When the dataset's policy requires DP
   training, `clip_and_noise` runs first whatever the scope says.
2. **job filters**: the job's params may list more (`task_data_filters`, `task_result_filters`), from
   the same registry.

    # privacy.yaml
    default_scope: public
    scopes:
      public:
        task_result_filters:
          - {name: exclude_keys, args: {keys: [train_seconds]}}
      private:
        task_result_filters:
          - {name: clip_and_noise}
          - {name: round_counts, args: {to: 10}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy.controls import PrivacyControls
from custos.privacy.plan import DpPlan

if TYPE_CHECKING:
    import numpy as np

Json = dict[str, Any]
Direction = Literal["data", "result"]
PRIVACY_FILE = "privacy.yaml"
# Keys a filter may never remove: without them nothing downstream can tell what a message is.
PROTECTED_KEYS = frozenset({"phase", "round", "filtered", "dp"})


def _fresh_rng() -> np.random.Generator:
    # NumPy is imported when a task's filters run, not when the orchestrator or a gateway starts.
    import numpy as np

    return np.random.default_rng()


@dataclass
class FilterContext:
    """What a filter may know about its task. `round_input` is what the sandbox was handed; `plan`
    is the gateway's DP training plan when the policy requires one; `applied` records which filters
    ran, so a filter listed twice (say by the scope and by the job) applies once."""

    model: str
    params: Mapping[str, Any]
    round_input: Json
    controls: PrivacyControls
    scope: str | None
    plan: DpPlan | None = None
    rng: np.random.Generator = field(default_factory=_fresh_rng)
    applied: set[str] = field(default_factory=set)


class TaskFilter(Protocol):
    """A registered filter. `__init__` checks its arguments (raising InvalidInput); `apply` returns
    the filtered message or raises PolicyDenied. MUST NOT touch data other than the message."""

    name: ClassVar[str]
    directions: ClassVar[frozenset[Direction]]

    def apply(self, message: Json, ctx: FilterContext) -> Json: ...


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _ExcludeArgs(_Args):
    keys: list[str] = Field(min_length=1, max_length=100)


class ExcludeKeys:
    """Remove top-level keys (e.g. metrics a custodian does not release). Never removes
    `phase`, `round`, `filtered` or `dp`."""

    name: ClassVar[str] = "exclude_keys"
    directions: ClassVar[frozenset[Direction]] = frozenset({"data", "result"})

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.keys = _ExcludeArgs.model_validate(dict(args)).keys
        protected = sorted(PROTECTED_KEYS & set(self.keys))
        if protected:
            raise InvalidInput(f"exclude_keys may not remove {', '.join(protected)}")

    def apply(self, message: Json, ctx: FilterContext) -> Json:
        return {k: v for k, v in message.items() if k not in self.keys}


class _RoundArgs(_Args):
    to: int = Field(default=5, ge=2, le=1_000_000)
    keys: list[str] = Field(default_factory=lambda: ["n_train", "n_holdout"], min_length=1, max_length=100)


class RoundCounts:
    """Round integer counts down to a multiple of `to` (down, so a rounded count never passes a
    minimum that the exact one fails)."""

    name: ClassVar[str] = "round_counts"
    directions: ClassVar[frozenset[Direction]] = frozenset({"result"})

    def __init__(self, args: Mapping[str, Any]) -> None:
        parsed = _RoundArgs.model_validate(dict(args))
        self.to, self.keys = parsed.to, parsed.keys

    def apply(self, message: Json, ctx: FilterContext) -> Json:
        rounded = dict(message)
        for key in self.keys:
            value = rounded.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                rounded[key] = (value // self.to) * self.to
        return rounded


class ClipAndNoise:
    """DP for training: clip the site's update (its weights less the round's global weights) to the
    policy's `privacy.training.clip_norm` and add Gaussian noise, by the model's own update filter,
    which its DP training plan carries (`custos.privacy.plan.UpdateFilter`; fedavg's is
    `custos.computations.fedavg.filters`). Takes no arguments: the dataset's policy sets C and the
    noise multiplier. Refuses a result that already claims to be clipped (only the gateway may say
    so), and any scope using it where the policy has no `privacy.training`."""

    name: ClassVar[str] = "clip_and_noise"
    directions: ClassVar[frozenset[Direction]] = frozenset({"result"})

    def __init__(self, args: Mapping[str, Any]) -> None:
        if args:
            raise InvalidInput(
                "clip_and_noise takes no args: the dataset's policy (privacy.training) sets the clip norm "
                "and the noise multiplier"
            )

    def apply(self, message: Json, ctx: FilterContext) -> Json:
        if self.name in ctx.applied:
            return message
        training, plan = ctx.controls.training, ctx.plan
        if training is None or plan is None:
            raise PolicyDenied(
                f"scope {ctx.scope!r} requires DP training (clip_and_noise), but this dataset's policy "
                "has no privacy.training section; the result may not leave"
            )
        if plan.update_filter is None:
            raise PolicyDenied(f"clip_and_noise applies to model updates (fedavg), not to {ctx.model}")
        if "dp" in message:
            raise PolicyDenied(
                "the sandboxed code's result claims to be clipped and noised; only the gateway says so"
            )
        ctx.applied.add(self.name)
        return plan.update_filter.clip_and_noise(message, ctx.round_input, training, plan.cost, ctx.rng)


FILTERS: dict[str, type[ExcludeKeys] | type[RoundCounts] | type[ClipAndNoise]] = {
    cls.name: cls for cls in (ExcludeKeys, RoundCounts, ClipAndNoise)
}


class FilterSpec(_Args):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ScopeFilters(_Args):
    task_data_filters: list[FilterSpec] = Field(default_factory=list, max_length=50)
    task_result_filters: list[FilterSpec] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _registered(self) -> ScopeFilters:
        try:
            build(self.task_data_filters, "data")
            build(self.task_result_filters, "result")
        except InvalidInput as exc:  # as a ValueError, pydantic names the scope it came from
            raise ValueError(exc.message) from None
        return self


class SitePrivacy(_Args):
    """A site's `privacy.yaml`: scopes and their filters, and the scope of a job that names none."""

    scopes: dict[str, ScopeFilters] = Field(default_factory=dict)
    default_scope: str | None = None

    @model_validator(mode="after")
    def _default_is_a_scope(self) -> SitePrivacy:
        if self.default_scope is not None and self.default_scope not in self.scopes:
            raise ValueError(f"default_scope {self.default_scope!r} is not one of the scopes")
        return self


def build(specs: Sequence[FilterSpec], direction: Direction) -> list[TaskFilter]:
    """Instantiate registered filters; an unknown name, wrong arguments or direction is refused."""
    filters: list[TaskFilter] = []
    for i, spec in enumerate(specs):
        cls = FILTERS.get(spec.name)
        if cls is None:
            raise InvalidInput(
                f"task_{direction}_filters[{i}]: unknown filter {spec.name!r}; "
                f"registered: {', '.join(sorted(FILTERS))}"
            )
        if direction not in cls.directions:
            raise InvalidInput(f"task_{direction}_filters[{i}]: {spec.name} is not a task {direction} filter")
        try:
            filters.append(cls(spec.args))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"task_{direction}_filters[{i}] ({spec.name}): args.{where}: {first['msg']}"
            ) from None
    return filters


def load_site_privacy(path: Path) -> SitePrivacy:
    """Read a site's privacy.yaml (no file: no scopes). Raises InvalidInput naming the field."""
    if not path.is_file():
        return SitePrivacy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return SitePrivacy.model_validate(data)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path.name}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{path.name}: {where}: {message}") from None


@dataclass(frozen=True)
class FilterChain:
    scope: str | None
    data: list[TaskFilter]
    result: list[TaskFilter]

    def filter_data(self, message: Json, ctx: FilterContext) -> Json:
        for flt in self.data:
            message = flt.apply(message, ctx)
        return message

    def filter_result(self, message: Json, ctx: FilterContext) -> Json:
        for flt in self.result:
            message = flt.apply(message, ctx)
        return message


def _job_specs(params: Mapping[str, Any], key: str) -> list[FilterSpec]:
    value = params.get(key, [])
    if not isinstance(value, list):
        raise InvalidInput(f"{key}: a list of filters, got {value!r}")
    try:
        return [FilterSpec.model_validate(v) for v in value]
    except ValidationError as exc:
        raise InvalidInput(f"{key}: {exc.errors()[0]['msg']}") from None


def _scope(config: SitePrivacy, params: Mapping[str, Any], where: str) -> tuple[str | None, ScopeFilters]:
    """The job's scope (its `scope` param, else the config's default) and its filters there."""
    named = params.get("scope")
    if named is not None and not isinstance(named, str):
        raise InvalidInput(f"scope: a scope name, got {named!r}")
    scope = named if named is not None else config.default_scope
    if scope is not None and scope not in config.scopes:
        known = ", ".join(sorted(config.scopes)) or "none"
        raise PolicyDenied(f"scope {scope!r} is not defined at {where} (its scopes: {known})")
    return scope, config.scopes[scope] if scope is not None else ScopeFilters()


def orchestrator_chain(config: SitePrivacy, params: Mapping[str, Any]) -> FilterChain:
    """The orchestrator's filters of a job with `params`: its own privacy.yaml's filters of the job's
    scope — data filters on each round's input before it goes out, result filters on each site's
    result before aggregation. The job's own filters run at the gateways only. A config without
    scopes filters nothing; a scope it does not define is refused."""
    if not config.scopes:
        return FilterChain(None, [], [])
    scope, declared = _scope(config, params, "the orchestrator")
    return FilterChain(
        scope, build(declared.task_data_filters, "data"), build(declared.task_result_filters, "result")
    )


def check_orchestrator_config(config: SitePrivacy) -> None:
    """Refuse filters that only a gateway can run (clip_and_noise needs the site's DP plan)."""
    for name, scope in config.scopes.items():
        if any(spec.name == ClipAndNoise.name for spec in scope.task_result_filters):
            raise InvalidInput(
                f"scopes.{name}: clip_and_noise runs at gateways only, not at the orchestrator"
            )


def chain_for(site: SitePrivacy, params: Mapping[str, Any], *, require_dp: bool = False) -> FilterChain:
    """The filters of a job with `params` at this site: site filters of its scope (with
    clip_and_noise first when `require_dp`), then the job's own. Refuses an unknown scope."""
    scope, declared = _scope(site, params, "this site")
    required = [ClipAndNoise({})] if require_dp else []
    site_data = build(declared.task_data_filters, "data")
    site_result = build(declared.task_result_filters, "result")
    job_data = build(_job_specs(params, "task_data_filters"), "data")
    job_result = build(_job_specs(params, "task_result_filters"), "result")
    return FilterChain(scope, site_data + job_data, required + site_result + job_result)
