"""A small model package folder, as a publisher would write it."""

from __future__ import annotations

from pathlib import Path

import pytest

MANIFEST = """\
name = "cohort-summary"
version = "1.0.0"
entrypoint = "cohort_summary.main:run"
description = "Counts and means per region"

[parameters.min_age]
type = "integer"
minimum = 0
maximum = 120
default = 18

[parameters.columns]
type = "array"
items = "string"
required = true

[columns]
age = "integer"
region = "string"

[outputs.summary]
kind = "table"
max_rows = 1000

[outputs.figure]
kind = "file"
max_bytes = 2000000
file_types = ["png", "svg"]
"""


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cohort-summary"
    (folder / "cohort_summary").mkdir(parents=True)
    (folder / "custos-model.toml").write_text(MANIFEST, encoding="utf-8")
    (folder / "cohort_summary" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "cohort_summary" / "main.py").write_text(
        "def run(dal, params):\n    return {}\n", encoding="utf-8"
    )
    return folder
