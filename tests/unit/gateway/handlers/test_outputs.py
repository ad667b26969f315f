"""The gateway's check of code outputs (`custos.gateway.handlers.outputs`) against a real dataset: a
column is an identifier only when the data says its values single out rows; flags are the
gateway's, whatever the sandbox sent; JSON and files are flagged unchecked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custos.core.errors import PolicyDenied
from custos.data.synthetic import synthetic_patients
from custos.gateway.handlers.outputs import check_code_output, identifying_columns
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy
from custos.testing.sites import parquet_site

TABLE = synthetic_patients(300, site=0, seed=2)
GRANTED = ["patient_id", "age", "region", "diagnosis"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteDataset:
    return parquet_site(tmp_path_factory.mktemp("outputs"), "patients", TABLE)["patients"]


def policy(**extra: Any) -> AssetPolicy:
    return AssetPolicy.model_validate({"dataset": "patients", "custom_code": "review", **extra})


def table(columns: list[str], rows: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "table", "columns": columns, "rows": rows, **extra}


def test_ids_are_identifiers_and_group_labels_are_not(site: SiteDataset) -> None:
    ids = TABLE.column("patient_id").to_pylist()[:12]
    ages = sorted(set(TABLE.column("age").to_pylist()))[:12]
    candidates = {"who": ids, "region": ["north", "south"], "age": ages, "term": ["Intercept", "bmi"]}
    assert identifying_columns(site.source, GRANTED, candidates) == {"who": "patient_id"}
    # A few real ids mixed into made-up values are not most of the column.
    assert identifying_columns(site.source, GRANTED, {"x": [*ids[:2], "p", "q", "r", "s", "t"]}) == {}


def test_an_identifier_column_is_refused_unless_the_policy_allows_row_level(site: SiteDataset) -> None:
    rows = [[pid, 40] for pid in TABLE.column("patient_id").to_pylist()[:5]]
    with pytest.raises(PolicyDenied, match=r"row-level \(column 'id' identifies rows.*allow_row_level"):
        check_code_output(table(["id", "age"], rows), policy(), site.source, GRANTED, [300])
    allowed = check_code_output(
        table(["id", "age"], rows), policy(custom_outputs="allow_row_level"), site.source, GRANTED, [300]
    )
    assert allowed["rows"] == rows and allowed["flags"][0]["rule"] == "row_level"


def test_a_table_as_long_as_its_read_is_refused(site: SiteDataset) -> None:
    rows = [[float(i)] for i in range(30)]
    # The largest single read counts, so reading the same rows column by column does not hide them.
    with pytest.raises(PolicyDenied, match=r"it has 30 rows for a read of 30 rows"):
        check_code_output(table(["bmi"], rows), policy(), site.source, GRANTED, [30, 30, 30])
    assert check_code_output(table(["bmi"], rows), policy(), site.source, GRANTED, [300])["rows"] == rows


def test_the_sandbox_cannot_set_its_own_flags(site: SiteDataset) -> None:
    forged = table(["region", "n"], [["north", 3], ["south", 40], ["east", 30]], flags=[])
    checked = check_code_output(forged, policy(), site.source, GRANTED, [300])
    assert [(f["row"], f["rule"]) for f in checked["flags"] if f["column"] == "n"] == [
        (0, "min_count"),
        (2, "secondary"),
    ]
    assert set(checked["flags"][0]) == {"row", "column", "rule", "value_class", "action", "reason"}


def test_json_and_file_outputs_are_flagged_unchecked(site: SiteDataset, tmp_path: Path) -> None:
    as_json = check_code_output(
        {"type": "json", "value": {"n": 3}, "flags": "x"}, policy(), site.source, [], []
    )
    assert as_json["value"] == {"n": 3}
    assert [(f["rule"], f["value_class"]) for f in as_json["flags"]] == [("unchecked", "json")]
    as_file = check_code_output(
        {"type": "file", "file_type": "png", "data": b"x"}, policy(), site.source, [], []
    )
    assert [(f["rule"], f["value_class"]) for f in as_file["flags"]] == [("unchecked", "file")]
