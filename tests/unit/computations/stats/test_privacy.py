"""The policy's privacy controls through the `stats` model: disclosure rules at the site filter and
after pooling, DataSHIELD's knobs, and differentially private releases (noise scale, clamping)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.base import Final, effective_rules, strictest_rules
from custos.computations.stats.model import StatsModel
from custos.core.digest import canonical_json
from custos.core.errors import PolicyDenied
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.privacy.controls import DisclosureRules, PrivacyControls

Json = dict[str, Any]
MODEL = StatsModel()
SCHEMA = DatasetSchema(
    columns=[
        ColumnSchema(name="age", type="float", kind="numeric", min=0, max=100),
        ColumnSchema(name="sex", type="string", kind="categorical", categories=["F", "M"]),
        ColumnSchema(name="income", type="float", kind="numeric", min=0, max=1000),
    ]
)


class Reader:
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def read(self, dataset: str, columns: Any, filters: Any = ()) -> pa.Table:
        table = self.table
        for flt in filters:
            assert flt.op == ">="
            table = table.filter(pa.compute.greater_equal(table.column(flt.column), flt.value))
        return table.select(list(columns))


def _json(value: Json) -> Json:
    loaded: Json = json.loads(canonical_json(value))
    return loaded


def run(params: Json, sites: Mapping[str, pa.Table], controls: PrivacyControls) -> Json:
    """start -> (gateway's DP plan) -> compute_site -> gateway filter -> aggregate, until Final."""
    step = MODEL.start(params)
    state, round_input = step.state, step.round_input
    for _ in range(20):
        results = {}
        for key, table in sites.items():
            given = dict(round_input)
            if controls.dp is not None:
                given["dp"] = MODEL.plan_dp(params, SCHEMA, controls.dp).settings
            raw = _json(MODEL.compute_site(Reader(table), "t", params, given))
            results[key] = _json(MODEL.filter_site_result(params, raw, controls))
        outcome = MODEL.aggregate(params, state, results, controls.disclosure)
        if isinstance(outcome, Final):
            return _json(outcome.result)
        state, round_input = outcome.state, outcome.round_input
    raise AssertionError("no final result")


def table(ages: list[float], sexes: list[str], incomes: list[float] | None = None) -> pa.Table:
    incomes = incomes if incomes is not None else [10.0] * len(ages)
    return pa.table({"age": ages, "sex": sexes, "income": incomes})


def controls(**rules: Any) -> PrivacyControls:
    return PrivacyControls(disclosure=DisclosureRules(**rules))


def test_a_dominated_sum_is_suppressed_with_its_reason_and_a_second_group_hides_it() -> None:
    # Group F: one income of 10 000 among 29 of 1 -> the top two give > 85 % of the sum.
    incomes = [10_000.0] + [1.0] * 29 + [50.0 + i for i in range(30)]
    site = table([40.0] * 60, ["F"] * 30 + ["M"] * 30, incomes)
    params = {"columns": ["income"], "statistics": ["count", "sum"], "group_by": "sex"}
    result = run(params, {"a/t": site}, controls(min_count=5))
    by_group = {e["group"]: e for e in result["summaries"]}
    assert by_group["F"]["suppressed"] is True
    assert by_group["F"]["reason"].startswith("suppressed at a/t: dominance: the 2 largest")
    assert "sum" not in by_group["F"] and "10000" not in json.dumps(result)
    # The total minus M would give F back: secondary suppression hides one more cell.
    assert by_group[None].get("suppressed") or by_group["M"].get("suppressed")
    # Without the rule the same cells are published.
    plain = run(params, {"a/t": site}, controls(min_count=5, dominance=None))
    assert all(not e.get("suppressed") for e in plain["summaries"])


def test_filters_leaving_too_few_rows_are_refused_without_the_count() -> None:
    site = table([float(a) for a in range(100)], ["F", "M"] * 50)
    params = {"columns": ["age"], "filters": [{"column": "age", "op": ">=", "value": 95}]}
    with pytest.raises(PolicyDenied) as refused:
        run(params, {"a/t": site}, controls(min_count=1, min_subset=20))
    assert "fewer than 20 rows" in refused.value.message
    assert " 5 " not in refused.value.message
    wide = {**params, "filters": [{"column": "age", "op": ">=", "value": 50}]}
    assert run(wide, {"a/t": site}, controls(min_count=1, min_subset=20))["summaries"][0]["count"] == 50


def test_a_categorical_with_too_many_levels_is_refused_for_tables_and_grouping() -> None:
    site = table([1.0] * 40, [f"L{i % 8}" for i in range(40)])
    with pytest.raises(PolicyDenied, match="more than 5 levels"):
        run({"columns": ["sex"]}, {"a/t": site}, controls(min_count=1, max_levels=5))
    with pytest.raises(PolicyDenied, match="more than 5 levels"):
        run({"columns": ["age"], "group_by": "sex"}, {"a/t": site}, controls(min_count=1, max_levels=5))
    assert run({"columns": ["sex"]}, {"a/t": site}, controls(min_count=1, max_levels=8))["frequencies"]


def test_min_max_and_quantiles_of_small_groups_are_withheld() -> None:
    # F: 15 rows; M: 20 rows of 30 (its minimum) and 25 of 31 to 55 (one row holds its maximum)
    ages = [float(a) for a in range(15)] + [30.0] * 20 + [float(a) for a in range(31, 56)]
    site = table(ages, ["F"] * 15 + ["M"] * 45)
    params = {
        "columns": ["age"],
        "statistics": ["count", "min", "max"],
        "group_by": "sex",
        "quantiles": [{"column": "age", "probs": [0.0, 0.5, 1.0]}],
    }
    result = run(params, {"a/t": site}, controls(min_count=5, extremes_min_count=20, dominance=None))
    by_group = {e["group"]: e for e in result["summaries"]}
    assert by_group["F"]["count"] == 15 and by_group["F"]["min"] is None and by_group["F"]["max"] is None
    assert "at least 20 rows" in by_group["F"]["extremes_reason"]
    # an extreme that 20 rows hold is published; one that a single row holds is not
    assert by_group["M"]["min"] == 30.0 and by_group["M"]["max"] is None
    assert by_group["M"]["extremes_reason"] == "max: fewer than 20 rows hold it"
    assert by_group[None]["min"] is None and by_group[None]["max"] is None
    quantiles = {(q["group"], q["prob"]): q for q in result["quantiles"]}
    assert quantiles[("F", 0.5)]["suppressed"] is True and quantiles[("M", 0.5)]["value"] == 33.0
    # the quantiles at 0 and 1 are the min and the max
    assert all(quantiles[(g, p)]["suppressed"] for g in (None, "M") for p in (0.0, 1.0))


def test_published_counts_are_rounded_after_pooling_and_means_follow_them() -> None:
    sites = {"a/t": table([1.0] * 13, ["F"] * 13), "b/t": table([3.0] * 11, ["M"] * 11)}
    params = {"columns": ["age", "sex"], "statistics": ["count", "sum", "mean", "std"]}
    result = run(params, sites, controls(min_count=1, rounding="midpoint6", dominance=None))
    summary = result["summaries"][0]
    assert summary["count"] == 21  # 24 rows: midpoint 6 gives ceil(24 / 6) * 6 - 3
    assert summary["sum"] == 46.0
    assert summary["mean"] == 46.0 / 21  # sum / mean is the published count, not the exact 24
    assert summary["std"] is None
    assert {f["category"]: f["count"] for f in result["frequencies"]} == {"F": 15, "M": 9}
    assert result["rounding"] == "midpoint6"
    assert "variance and std are withheld" in result["notes"][0]


def test_the_older_min_count_and_the_privacy_section_take_the_larger_written() -> None:
    written = PrivacyControls(disclosure=DisclosureRules(min_count=8))
    assert effective_rules(written, 12).min_count == 12
    assert effective_rules(written, 5).min_count == 8
    assert effective_rules(PrivacyControls(), 5).min_count == 5
    assert effective_rules(written, None).min_count == 8
    strict = strictest_rules([DisclosureRules(min_count=5, rounding="nearest"), DisclosureRules(min_count=9)])
    assert (strict.min_count, strict.rounding, strict.round_to) == (9, "nearest", 5)


DP = {
    "disclosure": {"min_count": 10},
    "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
    "budget": {"epsilon_per_researcher": 100.0, "epsilon_per_org": 100.0},
}


def test_a_dp_job_costs_its_queries_and_refuses_what_has_no_dp_release() -> None:
    dp = PrivacyControls.model_validate(DP)
    assert dp.dp is not None
    plan = MODEL.plan_dp({"columns": ["age", "sex"], "statistics": ["count", "mean"]}, SCHEMA, dp.dp)
    assert plan.queries == 3  # count and mean of age, frequencies of sex
    assert plan.cost.epsilon == 1.0 and plan.settings["epsilon"] == pytest.approx(1 / 3)
    assert plan.settings["bounds"] == {"age": [0.0, 100.0]}
    grouped = {"columns": ["age"], "statistics": ["count", "mean"], "group_by": "sex"}
    plan = MODEL.plan_dp(grouped, SCHEMA, dp.dp)
    assert (plan.queries, plan.settings["groups"]) == (2, ["F", "M"])  # disjoint groups: no more queries
    unlisted = DatasetSchema(
        columns=[SCHEMA.columns[0], ColumnSchema(name="sex", type="string", kind="categorical")]
    )
    with pytest.raises(PolicyDenied, match="no public categories"):
        MODEL.plan_dp(grouped, unlisted, dp.dp)
    with pytest.raises(PolicyDenied, match="min and max"):
        MODEL.plan_dp({"columns": ["age"], "statistics": ["min"]}, SCHEMA, dp.dp)
    site = table([40.0] * 50, ["F"] * 50)
    exact = _json(MODEL.compute_site(Reader(site), "t", {"columns": ["age"]}, {"phase": "summary"}))
    with pytest.raises(PolicyDenied, match="not one"):
        MODEL.filter_site_result({"columns": ["age"]}, exact, dp)


def test_dp_counts_have_the_calibrated_laplace_scale_and_values_are_clamped() -> None:
    dp = PrivacyControls.model_validate(DP)
    rng = np.random.default_rng(7)
    ages = np.concatenate([rng.uniform(20, 60, 995), np.full(5, 1e6)])  # outliers far above the bounds
    site = table(ages.tolist(), ["F"] * 1000)
    params = {"columns": ["age"], "statistics": ["count", "mean"]}
    counts, means = [], []
    for _ in range(300):
        result = run(params, {"a/t": site}, dp)
        counts.append(result["summaries"][0]["count"])
        means.append(result["summaries"][0]["mean"])
    assert result["dp"]["spent"]["a/t"]["epsilon"] <= 1.0 + 1e-9
    # Two queries at eps 0.5 each: the count's discrete Laplace noise has scale b = 2, std = 2 sqrt(2).
    std = float(np.std(np.asarray(counts) - 1000))
    assert 2.0 < std < 3.8, std
    assert abs(float(np.mean(counts)) - 1000) < 0.6
    # Clamped to [0, 100], five outliers move the mean by at most 5 * (100 - 40) / 1000.
    assert 39.5 < float(np.median(means)) < 40.5


def test_dp_variance_histogram_and_frequencies_are_released_from_clamped_aggregates() -> None:
    dp = PrivacyControls.model_validate(DP)
    rng = np.random.default_rng(8)
    ages = np.concatenate([rng.uniform(20, 60, 990), np.full(10, -1e6)])  # clamped to 0
    sexes = ["F"] * 600 + ["M"] * 380 + ["X"] * 20  # X is not a public category: not counted
    site = table(ages.tolist(), sexes)
    params = {
        "columns": ["age", "sex"],
        "statistics": ["variance"],
        "histograms": [{"column": "age", "edges": [0.0, 30.0, 100.0]}],
    }
    variances, females, low_bins = [], [], []
    for _ in range(200):
        result = run(params, {"a/t": site}, dp)
        variances.append(result["summaries"][0]["variance"])
        females.append(next(f["count"] for f in result["frequencies"] if f["category"] == "F"))
        low_bins.append(result["histograms"][0]["counts"][0])
    # count, mean, variance of age, the sex table and the histogram: 5 queries at eps 0.2 each
    assert result["dp"]["queries"] == 5 and result["dp"]["spent"]["a/t"]["epsilon"] <= 1.0 + 1e-9
    assert [f["category"] for f in result["frequencies"]] == ["F", "M"]
    assert all(0 <= v <= 50**2 for v in variances)
    clamped = np.clip(ages, 0, 100)
    assert abs(float(np.median(variances)) - float(np.var(clamped, ddof=1))) < 0.1 * np.var(clamped)
    # each table count: discrete Laplace of scale 1 / 0.2 = 5 (std ~7.1)
    assert 5.0 < float(np.std(np.asarray(females) - 600)) < 9.5
    true_low = int(np.sum((ages >= 0) & (ages < 30)))  # bins count values within the edges only
    assert abs(float(np.mean(low_bins)) - true_low) < 2.0
    assert 5.0 < float(np.std(np.asarray(low_bins) - true_low)) < 9.5


def test_a_warm_runtime_imports_opendp_before_its_first_round(tmp_path: Path) -> None:
    """The gateway's spare runtime is started with --warm, so it imports OpenDP in the background once
    connected and a DP job's first round finds it imported; a runtime without it does not import it."""
    probe = (
        "import sys, threading\n"
        "from custos.computations import runtime\n"
        "done = threading.Thread(target=runtime.main, args=(sys.argv[1:],), daemon=True)\n"
        "done.start(); done.join(60)\n"
        "for t in threading.enumerate():\n"  # the warm import runs in the background once connected
        "    t is threading.current_thread() or t.join(60)\n"
        "print('custos.privacy.dp' in sys.modules, 'opendp' in sys.modules)\n"
    )
    seen = []
    for flags in (["--warm"], []):
        path = tmp_path / f"rounds{len(flags)}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(1)
            proc = subprocess.Popen(
                [sys.executable, "-c", probe, "--serve", str(path), *flags], stdout=subprocess.PIPE, text=True
            )
            conn, _ = listener.accept()
            conn.close()  # no rounds: the runtime ends
            out, _ = proc.communicate(timeout=60)
        seen.append(out.split())
    assert seen == [["True", "True"], ["False", "False"]]
