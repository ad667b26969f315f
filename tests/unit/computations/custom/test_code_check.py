"""Custom code that could not run is refused before review: a source that does not parse or lacks its
function, and a package a file of which does not parse or whose entrypoint's function is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.computations.custom.code_check import check_package_code, check_source
from custos.computations.custom.code_package import build_code_package, verify_code_package
from custos.core.errors import ContentRefused

MANIFEST = """\
name = "cohort"
version = "0.1.0"
entrypoint = "cohort.main:run"

[outputs.result]
kind = "json"
max_bytes = 65536
"""


@pytest.mark.parametrize(
    "source",
    [
        "def count(dal, datasets, params):\n    return {}\n",
        "def count(dal, datasets, params, extra=1, *, also=2):\n    return {}\n",
        "def count(*args):\n    return {}\n",
        "from collections import Counter as count\n",
        "count = lambda dal, datasets, params: {}\n",
        "class count:\n    def __init__(self, dal, datasets, params): ...\n",
    ],
)
def test_code_that_defines_its_function_passes(source: str) -> None:
    check_source(source, "count")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def count(dal, datasets, params)\n    ...\n", "the code does not parse: expected ':' (line 1"),
        ("def other(dal, datasets, params): ...\n", "count at its top level; it defines: other"),
        ("def outer():\n    def count(dal, datasets, params): ...\n", "defines no function named count"),
        ("def count(dal, datasets): ...\n", "(line 1) cannot be called as count(dal, datasets, params)"),
        ("def count(dal, datasets, params, more): ...\n", "cannot be called as count(dal, datasets, params)"),
        ("def count(dal, datasets, params, *, key):\n    return {}\n", "cannot be called as"),
        ("async def count(dal, datasets, params):\n    return {}\n", "count is async (line 1)"),
        ("x = 1\0\n", "the code does not parse"),
    ],
)  # fmt: skip
def test_code_that_could_not_run_is_refused_with_the_reason(source: str, expected: str) -> None:
    with pytest.raises(ContentRefused) as refused:
        check_source(source, "count")
    assert expected in refused.value.message


def _package(tmp_path: Path, main: str, helper: str = "X = 1\n") -> bytes:
    folder = tmp_path / "package"
    (folder / "cohort").mkdir(parents=True)
    (folder / "custos-model.toml").write_text(MANIFEST)
    (folder / "cohort" / "__init__.py").write_text("")
    (folder / "cohort" / "main.py").write_text(main)
    (folder / "cohort" / "helpers.py").write_text(helper)
    return build_code_package(folder).data


def test_a_package_whose_entrypoint_is_defined_passes(tmp_path: Path) -> None:
    check_package_code(
        verify_code_package(_package(tmp_path, "def run(dal, datasets, params):\n    return {}\n"))
    )


@pytest.mark.parametrize(
    ("main", "helper", "expected"),
    [
        ("def go(dal, datasets, params): ...\n", "X = 1\n",
         "cohort/main.py (the entrypoint's module cohort.main) defines no function named run"),
        ("def run(dal, datasets, params): ...\n", "def broken(:\n", "cohort/helpers.py does not parse"),
        ("def run(dal): ...\n", "X = 1\n", "cannot be called as run(dal, datasets, params)"),
    ],
)  # fmt: skip
def test_a_package_whose_manifest_cannot_run_is_refused(
    tmp_path: Path, main: str, helper: str, expected: str
) -> None:
    package = verify_code_package(_package(tmp_path, main, helper))
    with pytest.raises(ContentRefused) as refused:
        check_package_code(package)
    assert expected in refused.value.message
