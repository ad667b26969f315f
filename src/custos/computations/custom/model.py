"""Reviewed custom code as the `custom` model: a researcher's function (or code package) that a
custodian approved, run at each site in the sandboxed runtime, once per task, with `datasets` the one
dataset of the task (its name at the site) and a DAL that serves the columns the custodian's policy
grants to model `custom` (`custos.computations.custom.site`). On mock data (`Client.run_on_mock`) the
very same source runs through `custos.data.table_reader.TableDalReader`, which serves the mock tables
with the DAL's projection, filters and refusals, so code that works on mock works unchanged.

Outputs are encoded as JSON, or as a file whose bytes travel as a blob
(`custos.computations.custom.wire`); the gateway, not the sandboxed code, checks them against the
declared type and the caps and redacts the message of a failure (`custos.computations.custom.disclosure`).

This module is imported by the in-sandbox runtime: it imports pandas and DuckDB only when used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from custos.computations.base import DalReader, Disclosure, Final, Json, NextRound, Step
from custos.computations.custom.site import run_code
from custos.core.errors import PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings
from custos.privacy.plan import DpPlan

CODE_KEY = "code"  # the key of a custom task's round_input that holds its CustomCodeTask


class CustomModel:
    """Reviewed custom code as a one-round model: each site runs the function, the orchestrator keeps
    every site's output side by side (`{"sites": {gateway/dataset: output}}`)."""

    name = "custom"
    version = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        """Any JSON object: the parameters are the function's, and the custodian reviewed them."""

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        """Not known before the code runs: the DAL grants what the policy gives model `custom`."""
        return []

    def start(self, params: Mapping[str, Any]) -> NextRound:
        return NextRound(round_input={}, state={})

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        return Final({"sites": {ref: dict(result) for ref, result in sorted(site_results.items())}})

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        from custos.core.wire import CustomCodeTask  # here: the sandbox's start-up needs no API model

        code = CustomCodeTask.model_validate(round_input.get(CODE_KEY))
        return run_code(code, code.function, dal, [dataset], params, code.output)

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Unchanged: the gateway checks a custom output against its declared type and caps instead."""
        return result

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        raise PolicyDenied("custom code cannot run under a differential privacy policy")
