"""What a failure on real data tells the researcher: the category, the class and the line of the code
they submitted, checked against the code the gateway holds; never the message, whatever the sandbox's
reply claims."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from custos.computations.custom.code_package import build_code_package
from custos.computations.failures import (
    KEPT,
    Category,
    category_of,
    describe_builtin_failure,
    describe_code_failure,
    describe_output_refusal,
    describe_sandbox_failure,
    package_sources,
    submitted_sources,
)
from custos.core.errors import LimitExceeded, SandboxError
from custos.core.wire import CodeSource

SOURCE = (
    "class CohortTooSmall(Exception):\n"
    "    pass\n"
    "\n"
    "def leak(dal, datasets, params):\n"
    "    ages = dal.read(datasets[0], ['age'])\n"
    "    raise ValueError(spell(ages))\n"
)
SOURCES = submitted_sources(CodeSource(source=SOURCE), "leak")


def reply(kind: str, line: Any = 6, file: Any = "<custom:leak>", **extra: Any) -> dict[str, Any]:
    return {
        "ok": False,
        "type": kind,
        "message": "four nine next seven zero",
        "where": {"file": file, "line": line},
    }


def test_a_code_failure_shows_its_class_and_line_and_never_its_message() -> None:
    report = describe_code_failure(reply("ValueError"), SOURCES)
    assert (
        report.text()
        == f"code error: ValueError at <custom:leak> line 6: raise ValueError(spell(ages)) {KEPT}"
    )
    assert "four" not in report.text()


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("PermissionDenied", Category.POLICY),
        ("PolicyDenied", Category.POLICY),
        ("InvalidInput", Category.DATA),
        ("ArrowInvalid", Category.DATA),
        ("LimitExceeded", Category.LIMIT),
        ("MemoryError", Category.LIMIT),
        ("ZeroDivisionError", Category.CODE),
        ("CohortTooSmall", Category.CODE),
    ],
)
def test_the_category_follows_the_class(kind: str, category: Category) -> None:
    assert category_of(kind) is category
    assert describe_code_failure(reply(kind), SOURCES).text().startswith(f"{category.value}: {kind} at ")


@pytest.mark.parametrize("kind", ["Age_four_nine", "", None, 42, "Cohort TooSmall"])
def test_a_class_the_code_does_not_define_becomes_exception(kind: Any) -> None:
    assert describe_code_failure(reply(kind), SOURCES).kind == "Exception"


@pytest.mark.parametrize(
    ("file", "line"),
    [
        ("<custom:four_nine>", 6),
        ("<custom:leak>", 7),
        ("<custom:leak>", 0),
        ("<custom:leak>", "6"),
        (None, 6),
    ],
)
def test_a_line_the_code_does_not_have_is_not_shown(file: Any, line: Any) -> None:
    report = describe_code_failure(reply("ValueError", line=line, file=file), SOURCES)
    assert report.where is None
    assert report.text() == f"code error: ValueError {KEPT}"


def test_the_line_text_is_the_gateways_copy_of_the_code() -> None:
    forged = reply("ValueError") | {"log": 'File "<custom:leak>", line 6\n    four nine'}
    assert describe_code_failure(forged, SOURCES).where is not None
    assert "four" not in describe_code_failure(forged, SOURCES).text()


def test_a_package_line_is_named_by_its_path(tmp_path: Any) -> None:
    (tmp_path / "cohort").mkdir()
    manifest = 'name = "c"\nversion = "1.0.0"\nentrypoint = "cohort.main:run"\n\n'
    manifest += '[outputs.n]\nkind = "json"\nmax_bytes = 1000\n'
    (tmp_path / "custos-model.toml").write_text(manifest)
    (tmp_path / "cohort" / "main.py").write_text("def run(dal, datasets, params):\n    return 1 / 0\n")
    archive = build_code_package(tmp_path).data
    sources = package_sources(archive)
    assert set(sources) == {"<package>/cohort/main.py"}
    report = describe_code_failure(reply("ZeroDivisionError", 2, "<package>/cohort/main.py"), sources)
    assert (
        report.text()
        == f"code error: ZeroDivisionError at <package>/cohort/main.py line 2: return 1 / 0 {KEPT}"
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert "cohort/main.py" in zipped.namelist()


def test_a_limit_is_named_and_any_other_end_of_the_sandbox_is_a_code_error() -> None:
    limit = describe_sandbox_failure(LimitExceeded("CPU time limit of 10 s exceeded"))
    assert limit.text() == "limit hit: LimitExceeded: CPU time limit of 10 s exceeded"
    ended = describe_sandbox_failure(SandboxError("exited with code 49: four nine"))
    assert ended.text() == f"code error: SandboxError {KEPT}"


def test_an_output_refusal_keeps_its_reason_in_the_log() -> None:
    assert describe_output_refusal().text() == f"policy refusal: PolicyDenied: the output is refused {KEPT}"


def test_a_builtin_models_own_error_leaves_whole_and_another_as_its_class() -> None:
    own = {
        "type": "InvalidInput",
        "message": "outcome: column 'y' holds text values here; it must be numeric",
    }
    assert describe_builtin_failure(own) == (f"InvalidInput: {own['message']}", False)
    third_party = {"type": "ArrowInvalid", "message": "Could not convert 'a-000017' with type str"}
    assert describe_builtin_failure(third_party) == (f"data error: ArrowInvalid {KEPT}", True)
