"""The rounds of `glm` at the orchestrator: what each round asks for, what it accepts, and what it does
when a site overflows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.base import NextRound
from custos.computations.glm.model import MAX_HALVINGS, GlmModel
from custos.core.errors import InvalidInput
from custos.data.table_reader import TableDalReader

MODEL = GlmModel()
PARAMS = {"family": "poisson", "outcome": "k", "predictors": ["x"]}
Json = dict[str, Any]


def table(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=200)
    return pa.table({"x": x, "k": rng.poisson(np.exp(0.5 + 0.2 * x))})


SITES = {"a/data": table(1), "b/data": table(2)}


def answers(round_input: Json) -> dict[str, Json]:
    results = {}
    for key, data in SITES.items():
        raw = MODEL.compute_site(TableDalReader({"data": data}), "data", PARAMS, round_input)
        results[key] = MODEL.filter_site_result(PARAMS, raw, 10)
    return results


def _at(results: dict[str, Json], iteration: int) -> dict[str, Json]:
    return {key: {**result, "iteration": iteration} for key, result in results.items()}


def first_step() -> NextRound:
    start = MODEL.start(PARAMS)
    step = MODEL.aggregate(PARAMS, start.state, answers(start.round_input), 10)
    assert isinstance(step, NextRound)
    return step


def test_round_zero_needs_no_coefficients_and_round_one_sends_the_first_newton_step() -> None:
    step = first_step()
    assert step.round_input["phase"] == "step"
    assert step.round_input["iteration"] == 1
    assert len(step.round_input["coefficients"]) == 2
    assert step.state["coefficients"] == step.round_input["coefficients"]
    assert step.state["accepted"] is None
    assert step.state["n"] == 400
    assert step.state["null_deviance"] > 0


def test_a_step_that_overflows_at_a_site_is_halved_back_towards_the_last_good_coefficients() -> None:
    step = first_step()
    state = {**step.state, "coefficients": [2.0, 1000.0]}
    results = answers({**step.round_input, "coefficients": [2.0, 1000.0]})
    assert results["a/data"]["finite"] is False
    assert results["a/data"]["r"] is None
    halved = MODEL.aggregate(PARAMS, state, results, 10)
    assert isinstance(halved, NextRound)
    # No coefficients were good yet: halfway to zero.
    assert halved.round_input == {"phase": "step", "iteration": 1, "coefficients": [1.0, 500.0]}
    assert halved.state["halvings"] == 1
    assert halved.state["rounds"] == state["rounds"] + 1
    later = MODEL.aggregate(PARAMS, {**state, "iteration": 3, "accepted": [0.5, 0.2]}, _at(results, 3), 10)
    assert isinstance(later, NextRound)
    assert later.round_input["coefficients"] == [1.25, 500.1]

    exhausted = {**state, "halvings": MAX_HALVINGS}
    with pytest.raises(InvalidInput, match="the fit diverged: at iteration 1 the deviance is not finite"):
        MODEL.aggregate(PARAMS, exhausted, results, 10)


def test_results_for_another_round_and_unfiltered_results_are_refused() -> None:
    step = first_step()
    start_results = answers({"phase": "start"})
    with pytest.raises(InvalidInput, match="answers start iteration 0; round 1 asked for step iteration 1"):
        MODEL.aggregate(PARAMS, step.state, start_results, 10)
    raw = MODEL.compute_site(TableDalReader({"data": SITES["a/data"]}), "data", PARAMS, step.round_input)
    with pytest.raises(InvalidInput, match="the result of a/data was not filtered by its gateway"):
        MODEL.aggregate(PARAMS, step.state, {"a/data": raw}, 10)
    with pytest.raises(InvalidInput, match="there are no site results"):
        MODEL.aggregate(PARAMS, step.state, {}, 10)


def test_round_inputs_are_checked_at_the_site() -> None:
    reader = TableDalReader({"data": SITES["a/data"]})
    with pytest.raises(InvalidInput, match=r"round_input\.phase is 'summary'; expected 'start' or 'step'"):
        MODEL.compute_site(reader, "data", PARAMS, {"phase": "summary"})
    with pytest.raises(InvalidInput, match="3 values for a model of 2 terms"):
        MODEL.compute_site(
            reader, "data", PARAMS, {"phase": "step", "iteration": 1, "coefficients": [0, 0, 0]}
        )


def test_the_expected_information_comes_with_a_log_link_family_and_only_with_it() -> None:
    reader = TableDalReader({"data": SITES["a/data"]})
    gamma = {"family": "gamma", "outcome": "x2", "predictors": ["x"]}
    positive = pa.table({"x": SITES["a/data"]["x"], "x2": np.exp(np.asarray(SITES["a/data"]["x"]))})
    raw = MODEL.compute_site(TableDalReader({"data": positive}), "data", gamma, {"phase": "start"})
    assert len(raw["r_expected"]) == 3
    MODEL.filter_site_result(gamma, raw, 10)
    with pytest.raises(InvalidInput, match="lacks r_expected"):
        MODEL.filter_site_result(gamma, {**raw, "r_expected": None}, 10)
    poisson = MODEL.compute_site(reader, "data", PARAMS, {"phase": "start"})
    assert poisson["r_expected"] is None
    with pytest.raises(InvalidInput, match="has r_expected"):
        MODEL.filter_site_result(PARAMS, {**poisson, "r_expected": raw["r_expected"]}, 10)
    with pytest.raises(InvalidInput, match="r_expected sized for another number of coefficients"):
        MODEL.filter_site_result(gamma, {**raw, "r_expected": [1.0]}, 10)
