"""A job's result as the portal draws it: the charts' geometry follows the numbers, every chart has
its table, and a CSV cell a spreadsheet would run as a formula is written as text."""

from __future__ import annotations

import math

from custos.orchestrator.portal.charts import BarChart, IntervalChart, LineChart
from custos.orchestrator.portal.results import Table, result_view, table_csv


def test_a_histogram_is_drawn_to_scale_and_a_suppressed_bar_is_labelled() -> None:
    view = result_view(
        {"histograms": [{"column": "age", "group": None, "edges": [0, 10, 20, 30], "counts": [5, 10, None]}]}
    )
    ((chart, table),) = view.charts
    assert isinstance(chart, BarChart)
    assert [b.height for b in chart.bars][2] == 0
    assert math.isclose(chart.bars[1].height, 2 * chart.bars[0].height)
    assert chart.bars[2].label.endswith("suppressed")
    assert table.rows[2] == {"from": 20, "to": 30, "count": "suppressed"}


def test_glm_coefficients_are_points_within_their_intervals() -> None:
    coefficients = [
        {"name": "intercept", "estimate": -1.0, "ci_lower": -1.5, "ci_upper": -0.5},
        {"name": "age", "estimate": 0.2, "ci_lower": 0.1, "ci_upper": 0.3},
    ]
    view = result_view({"coefficients": coefficients, "n": 100})
    ((chart, table),) = view.charts
    assert isinstance(chart, IntervalChart)
    for row in chart.rows:
        assert row.lower <= row.estimate <= row.upper
    assert chart.zero is not None and chart.rows[0].upper < chart.zero < chart.rows[1].lower
    assert [t.name for t in view.tables] == ["coefficients"] and ("n", "100") in view.facts
    assert table.rows[1]["name"] == "age"


def test_fedavg_history_gives_a_loss_and_an_accuracy_chart_per_round() -> None:
    history = [
        {
            "round": r,
            "train_loss": 1 / r,
            "holdout_loss": 1.1 / r,
            "train_accuracy": 0.5 + r / 100,
            "holdout_accuracy": None,
        }
        for r in (1, 2, 3)
    ]
    view = result_view({"history": history})
    titles = [c.title for c, _ in view.charts]
    assert titles == ["Loss per round", "Accuracy per round"]
    loss, accuracy = (c for c, _ in view.charts)
    assert isinstance(loss, LineChart) and len(loss.lines[0].points.split()) == 3
    assert isinstance(accuracy, LineChart) and accuracy.lines[1].points == ""  # no holdout accuracy


def test_csv_writes_a_formula_as_text() -> None:
    text = table_csv(Table("t", ["a", "b"], [{"a": '=HYPERLINK("x")', "b": -3}]))
    assert text.splitlines() == ["a,b", '"\'=HYPERLINK(""x"")",-3']
