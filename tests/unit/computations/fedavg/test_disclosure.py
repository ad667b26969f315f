"""`fedavg`'s disclosure control at the gateway: row counts rounded as the policy rounds counts,
accuracies derived from rounded counts, standardisation moments under the dominance rule and
coarsened under rounding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.fedavg.model import FedAvgModel
from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.site import read_site
from custos.core.errors import PolicyDenied
from custos.data.table_reader import TableDalReader
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import round_count

MODEL = FedAvgModel()
PARAMS: dict[str, Any] = {"features": ["age", "income"], "label": "y", "rounds": 1, "holdout": 0.3, "seed": 1}
NEAREST5 = DisclosureRules(min_count=10, rounding="nearest", round_to=5)


def table(rows: int, income: np.ndarray | None = None) -> pa.Table:
    rng = np.random.default_rng(4)
    return pa.table(
        {
            "age": rng.integers(18, 90, rows),
            "income": income if income is not None else rng.normal(30_000, 5_000, rows),
            "y": rng.integers(0, 2, rows),
        }
    )


def site_result(data: pa.Table, round_input: dict[str, Any]) -> dict[str, Any]:
    return MODEL.compute_site(TableDalReader({"d": data}), "d", PARAMS, round_input)


def moments(data: pa.Table) -> dict[str, Any]:
    return site_result(data, MODEL.start(PARAMS).round_input)


def train_input() -> dict[str, Any]:
    step = MODEL.start(PARAMS | {"standardize": False})
    return step.round_input


def fits(share: float, published: int) -> list[int]:
    """The attack: the row counts near the published one of which `share` is an exact share."""
    return [n for n in range(published - 2, published + 3) if abs(share * n - round(share * n)) < 1e-9]


def test_counts_leave_rounded_and_an_accuracy_is_a_share_of_rounded_counts() -> None:
    data = table(233)
    params = PARAMS | {"standardize": False}
    raw = MODEL.compute_site(TableDalReader({"d": data}), "d", params, train_input())
    assert raw["n_train"] % 5 and raw["n_holdout"] % 5  # counts the rounding changes
    released = MODEL.filter_site_result(params, raw, NEAREST5)
    assert released["n_train"] == round_count(raw["n_train"], NEAREST5)
    assert released["n_holdout"] == round_count(raw["n_holdout"], NEAREST5)
    for key, n in (("train_accuracy", "n_train"), ("holdout_accuracy", "n_holdout")):
        hits = round_count(round(raw[key] * raw[n]), NEAREST5)
        assert hits is not None
        assert released[key] == pytest.approx(hits / released[n], abs=1e-15)
        # The raw share gives the unrounded count back; the released one does not.
        assert fits(raw[key], released[n]) == [raw[n]]
        assert fits(released[key], released[n]) != [raw[n]]
    assert released["train_loss"] == raw["train_loss"]


def test_without_rounding_counts_and_accuracies_leave_as_they_are() -> None:
    params = PARAMS | {"standardize": False}
    raw = MODEL.compute_site(TableDalReader({"d": table(233)}), "d", params, train_input())
    released = MODEL.filter_site_result(params, raw, DisclosureRules(min_count=10))
    assert {k: released[k] for k in raw} == raw


def test_a_site_whose_training_rows_round_to_zero_sends_no_update() -> None:
    params = PARAMS | {"standardize": False, "holdout": 0.0}
    raw = MODEL.compute_site(TableDalReader({"d": table(2)}), "d", params, train_input())
    released = MODEL.filter_site_result(
        params, raw, DisclosureRules(min_count=1, rounding="nearest", round_to=5)
    )
    assert raw["n_train"] == 2 and raw["weights"] is not None
    assert released["n_train"] == 0 and released["weights"] is None and released["train_accuracy"] is None


def test_moments_under_rounding_are_coarse_and_still_standardise() -> None:
    data = table(233)
    raw = moments(data)
    released = MODEL.filter_site_result(PARAMS, raw, NEAREST5)
    assert "largest" not in released and "abs_sum" not in released
    assert released["n_train"] == round_count(raw["n_train"], NEAREST5) != raw["n_train"]
    exact = read_site(TableDalReader({"d": data}), "d", parse_params(PARAMS)).x_train
    for j in range(2):
        std = math.sqrt(released["m2"][j] / released["n_train"])
        assert std == pytest.approx(exact[:, j].std(), rel=0.05)
        assert float(f"{std:.1e}") == pytest.approx(std)  # two significant figures
        assert abs(released["mean"][j] - exact[:, j].mean()) <= std / 20 + 1e-9
    # The exact mean of an integer feature is a sum over the unrounded count; the released one is not.
    assert (raw["mean"][0] * raw["n_train"]) % 1 == pytest.approx(0, abs=1e-9)
    candidates = range(released["n_train"] - 2, released["n_train"] + 3)
    assert [
        n for n in candidates if abs(released["mean"][0] * n - round(released["mean"][0] * n)) < 1e-6
    ] != [raw["n_train"]]


def test_moments_without_rounding_are_exact() -> None:
    raw = moments(table(233))
    released = MODEL.filter_site_result(PARAMS, raw, DisclosureRules(min_count=10))
    assert released["mean"] == raw["mean"] and released["m2"] == raw["m2"]
    assert released["n_train"] == raw["n_train"]


def test_a_feature_dominated_by_two_rows_refuses_the_moments_round() -> None:
    income = np.zeros(200)
    income[:2] = 1e6  # two people hold nearly all of it
    raw = moments(table(200, income))
    with pytest.raises(PolicyDenied, match=r"feature 'income' at this site: dominance: the 2 largest"):
        MODEL.filter_site_result(PARAMS, raw, DisclosureRules(min_count=10))
    # Without the dominance rule (off in the policy), they leave.
    assert MODEL.filter_site_result(PARAMS, raw, DisclosureRules(min_count=10, dominance=None))["filtered"]
