from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.blobs import blob_digest, externalize
from custos.core.errors import InvalidInput
from custos.core.wire import JobResult
from custos.sdk import Result, result_sections
from custos.sdk.result import explode, format_cell

STATS_RESULT = {
    "summaries": [
        {"column": "age", "group": None, "count": 300000, "mean": 52.1234567},
        {"column": "bmi", "group": "F", "count": 5, "suppressed": True, "reason": "count below 10"},
    ],
    "histograms": [{"column": "age", "edges": [18, 30, 45], "counts": [10, 20]}],
    "quantiles": [],
    "meta": {"sites": 3, "min_count": 10},
    "rounds": 1,
}


def test_each_list_becomes_a_table_with_the_union_of_keys() -> None:
    sections = {s.title: s for s in result_sections(STATS_RESULT)}
    summaries = sections["summaries"]
    assert summaries.columns == ["column", "group", "count", "mean", "suppressed", "reason"]
    assert summaries.rows[1] == ["bmi", "F", 5, None, True, "count below 10"]
    assert sections["quantiles"].rows == []
    assert sections["meta"].rows == [["sites", 3], ["min_count", 10]]
    assert sections["result"].rows == [["rounds", 1]]


def test_parallel_lists_become_one_row_each() -> None:
    (histograms,) = [s for s in result_sections(STATS_RESULT) if s.title == "histograms"]
    assert histograms.columns == ["column", "bin", "counts"]
    assert histograms.rows == [["age", "18 to 30", 10], ["age", "30 to 45", 20]]


def test_lists_that_do_not_line_up_stay_nested_and_print_compactly() -> None:
    (section,) = result_sections({"odd": [{"column": "age", "edges": [1, 2], "counts": [3, 4, 5]}]})
    assert section.rows == [["age", [1, 2], [3, 4, 5]]]
    assert format_cell(section.rows[0][1]) == "[1,2]"
    assert explode({"a": [1, 2], "b": [3]}) == [{"a": [1, 2], "b": [3]}]
    assert explode({"a": [1, 2], "b": ["x", "y"], "c": 0}) == [
        {"a": 1, "b": "x", "c": 0},
        {"a": 2, "b": "y", "c": 0},
    ]


def test_nested_mappings_get_dotted_titles() -> None:
    titles = [s.title for s in result_sections({"by_site": {"site-a": [{"n": 1}], "site-b": {"n": 2}}})]
    assert titles == ["by_site.site-a", "by_site.site-b"]


def test_format_cell() -> None:
    assert format_cell(None) == ""
    assert format_cell(True) == "yes"
    assert format_cell(52.1234567) == "52.1235"
    assert format_cell(float("nan")) == ""
    assert format_cell(300000) == "300000"


def test_result_repr_names_its_tables() -> None:
    result = Result(
        JobResult(job_id="job_1", model="stats@1.0.0", result=STATS_RESULT),
    )
    assert "summaries (2)" in repr(result)
    html = result._repr_html_()
    assert "<h4>summaries</h4>" in html
    assert "count below 10" in html


def test_a_custom_file_is_listed_by_type_size_and_digest_and_saved_exactly(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"pixels"
    encoded = {
        "site-a/cohort": {"type": "file", "file_type": "png", "data": png},
        "site-b/cohort": {"type": "json", "value": {"n": 3}},
    }
    wire, blobs = externalize({"sites": encoded})
    result = Result(JobResult(job_id="job_1", model="custom@1.0.0", result=wire), blobs)
    file = next(s for s in result.sections() if s.title == "file of site-a/cohort")
    assert file.rows == [["type", "png"], ["bytes", len(png)], ["sha256", blob_digest(png)]]
    assert not any("$blob" in str(s.rows) for s in result.sections())  # no reference shown as a cell
    assert "sites.site-b/cohort.value" in [s.title for s in result.sections()]
    assert result.save_file(tmp_path / "plot.png").read_bytes() == png
    assert result.save_file(tmp_path / "a.png", "site-a/cohort").read_bytes() == png
    with pytest.raises(InvalidInput, match="holds no file of site-b/cohort; it holds site-a/cohort"):
        result.save_file(tmp_path / "b.png", "site-b/cohort")
    stats = Result(JobResult(job_id="job_2", model="stats@1.0.0", result=STATS_RESULT))
    with pytest.raises(InvalidInput, match=r"job_2 \(stats@1.0.0\) holds no file"):
        stats.save_file(tmp_path / "none.png")
