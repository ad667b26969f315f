"""Custom code packages: the registry's deterministic archive, verified in memory, and run from memory
through the same custom runner as a single function."""

from __future__ import annotations

import base64
import io
import re
import stat
import sys
import traceback
import zipfile
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from custos.computations.custom.code_package import build_code_package, verify_code_package
from custos.computations.custom.disclosure import DEFAULT_CAPS, check_output
from custos.computations.custom.importer import package_function
from custos.computations.custom.site import run_code
from custos.computations.custom.wire import encode_output
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.core.wire import MAX_PACKAGE_BYTES, CodeSource, CustomCodeTask, package_digest
from custos.data.table_reader import TableDalReader
from custos.registry import PackageRefused, Refusal
from custos.registry.archive import entry_info

MANIFEST = """\
name = "older-patients"
version = "0.1.0"
entrypoint = "cohort.main:run"

[parameters.min_age]
type = "integer"
default = 40

[outputs.result]
kind = "json"
max_bytes = 65536
"""
MAIN = """\
from cohort.helpers import count


def run(dal, datasets, params):
    return {"n": count(dal.read(datasets[0], ["age"]), params["min_age"])}
"""
SECOND_OUTPUT = '\n[outputs.rows]\nkind = "table"\nmax_rows = 10\n'
HELPERS = """\
def count(table, min_age):
    return sum(1 for age in table.column("age").to_pylist() if age >= min_age)
"""


def write_package(folder: Path, main: str = MAIN, manifest: str = MANIFEST) -> Path:
    (folder / "cohort").mkdir(parents=True, exist_ok=True)
    (folder / "custos-model.toml").write_text(manifest, encoding="utf-8")
    (folder / "cohort" / "main.py").write_text(main, encoding="utf-8")
    (folder / "cohort" / "helpers.py").write_text(HELPERS, encoding="utf-8")
    return folder


def zip_of(*entries: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries:
            zf.writestr(entry_info(name) if isinstance(name, str) else name, data)
    return buffer.getvalue()


READER = TableDalReader({"patients": pa.table({"age": [30, 45, 50, 70]})})


def test_a_package_builds_to_the_same_bytes_and_its_digest_is_the_archives(tmp_path: Path) -> None:
    first = build_code_package(write_package(tmp_path / "a"))
    again = build_code_package(write_package(tmp_path / "b"))
    assert first.data == again.data and first.digest == again.digest == package_digest(first.data)
    package = verify_code_package(first.data, first.digest)
    assert [f.path for f in package.files] == ["cohort/helpers.py", "cohort/main.py", "custos-model.toml"]
    assert package.entrypoint == "cohort.main:run" and package.output == "json"
    assert package.python_sources()["cohort/main.py"] == MAIN
    changed = build_code_package(write_package(tmp_path / "c", MAIN.replace("min_age", "min_age ")))
    assert changed.digest != first.digest  # one byte more is another package


def test_a_package_runs_its_entrypoint_from_memory_and_leaves_nothing_imported(tmp_path: Path) -> None:
    built = build_code_package(write_package(tmp_path / "p"))
    code = CodeSource(package_b64=base64.b64encode(built.data).decode())
    assert run_code(code, "cohort.main:run", READER, ["patients"], {"min_age": 45}) == {
        "type": "json",
        "value": {"n": 3},
    }
    assert not any(name == "cohort" or name.startswith("cohort.") for name in sys.modules)
    assert not list(tmp_path.glob("**/*.pyc"))  # nothing was written next to the package either


def test_a_failure_in_a_package_shows_the_packages_own_lines(tmp_path: Path) -> None:
    broken = MAIN.replace("return {", "raise ValueError('no rows')\n    return {")
    built = build_code_package(write_package(tmp_path / "p", broken))
    with package_function(built.data, "cohort.main:run") as fn, pytest.raises(ValueError) as raised:
        fn(READER, ["patients"], {"min_age": 1})
    text = "".join(traceback.format_exception(raised.value))
    assert '<package>/cohort/main.py", line 5, in run' in text
    assert "raise ValueError('no rows')" in text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda d: (d / "custos-model.toml").unlink(),
            "has no custos-model.toml; a code package is a folder",
        ),
        (
            lambda d: (d / "custos-model.toml").write_text(MANIFEST.replace("cohort.main", "cohort.missing")),
            "names module cohort.missing, but the package holds neither cohort/missing.py",
        ),
        (
            lambda d: (d / "custos-model.toml").write_text(MANIFEST + SECOND_OUTPUT),
            "declares the outputs result (json), rows (table); a code package declares exactly one",
        ),
        (
            lambda d: (d / "custos-model.toml").write_text(
                MANIFEST.replace("cohort.main:run", "cohort/main")
            ),
            "must be module:function",
        ),
        (
            lambda d: (d / "cohort" / "data.bin").write_bytes(__import__("os").urandom(MAX_PACKAGE_BYTES)),
            f"a code package may have {MAX_PACKAGE_BYTES}",
        ),
        (lambda d: (d / "cohort" / "link.py").symlink_to(d / "cohort" / "main.py"), "symbolic link"),
    ],
    ids=["no manifest", "no such module", "two outputs", "bad entrypoint", "too big", "a link"],
)
def test_a_bad_package_is_refused_when_it_is_built(tmp_path: Path, change: object, words: str) -> None:
    folder = write_package(tmp_path / "p")
    change(folder)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=re.escape(words)):
        build_code_package(folder)


def _link_entry() -> zipfile.ZipInfo:
    info = entry_info("cohort/key.pem")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


MANIFEST_ENTRY = ("custos-model.toml", MANIFEST.encode())
MAIN_ENTRY = ("cohort/main.py", MAIN.encode())


@pytest.mark.parametrize(
    ("archive", "reason", "words"),
    [
        (zip_of(MANIFEST_ENTRY, MAIN_ENTRY, ("../evil.py", b"x")), Refusal.UNSAFE_PATH, "climbs out"),
        (zip_of(MANIFEST_ENTRY, MAIN_ENTRY, ("/tmp/evil.py", b"x")), Refusal.UNSAFE_PATH, "absolute path"),
        (zip_of(MANIFEST_ENTRY, MAIN_ENTRY, (_link_entry(), b"/etc/shadow")), Refusal.LINK, "symbolic link"),
        (zip_of(MANIFEST_ENTRY, MAIN_ENTRY, ("zeros.bin", bytes(3 << 20))), Refusal.ZIP_BOMB, "100 times"),
        (zip_of(MAIN_ENTRY), Refusal.MANIFEST_MISSING, "no custos-model.toml"),
        (b"PK not a zip", Refusal.NOT_A_ZIP, "not a readable zip"),
        (bytes(MAX_PACKAGE_BYTES + 1), Refusal.TOO_LARGE, f"may have {MAX_PACKAGE_BYTES}"),
    ],
    ids=["dotdot", "absolute", "link", "zip bomb", "no manifest", "not a zip", "too large"],
)
def test_a_hostile_archive_is_refused_in_memory(archive: bytes, reason: Refusal, words: str) -> None:
    with pytest.raises(PackageRefused) as refused:
        verify_code_package(archive)
    assert refused.value.reason is reason
    assert refused.value.message.startswith(f"code package refused ({reason.value})")
    assert words in refused.value.message


def test_one_flipped_byte_is_a_digest_mismatch(tmp_path: Path) -> None:
    built = build_code_package(write_package(tmp_path / "p"))
    flipped = bytearray(built.data)
    flipped[len(flipped) // 2] ^= 1
    with pytest.raises(PackageRefused) as refused:
        verify_code_package(bytes(flipped), built.digest)
    assert refused.value.reason is Refusal.DIGEST_MISMATCH


def test_code_is_either_a_source_or_a_package() -> None:
    with pytest.raises(ValueError, match="give either source"):
        CodeSource(source="def f(): pass", package_b64="UEsFBg==")
    with pytest.raises(ValueError, match="give either source"):
        CodeSource()
    with pytest.raises(ValueError, match="package_b64 is not base64"):
        CodeSource(package_b64="not base64!")
    task = {
        "request_id": "code_1",
        "function": "cohort.main:run",
        "package_b64": "UEsFBg==",
        "digest": "0" * 64,
    }
    assert CustomCodeTask.model_validate(task | {"output": "json", "approvals": []}).kind == "package"


def test_the_manifests_caps_tighten_the_gateways_and_its_columns_must_match_the_schema(
    tmp_path: Path,
) -> None:
    manifest = MANIFEST.replace("max_bytes = 65536", "max_bytes = 100") + '\n[columns]\nage = "integer"\n'
    built = build_code_package(write_package(tmp_path, manifest=manifest))
    package = verify_code_package(built.data, built.digest)
    caps = package.output_caps(DEFAULT_CAPS)
    assert caps.json_bytes == 100 and caps.rows == DEFAULT_CAPS.rows
    assert package.output_caps(replace(DEFAULT_CAPS, json_bytes=10)).json_bytes == 10, "never looser"
    with pytest.raises(PolicyDenied, match="over the cap of 100 bytes"):
        check_output(encode_output({"text": "x" * 200}, "json"), "json", caps)

    def schema(kind: str) -> DatasetSchema:
        return DatasetSchema.model_validate({"columns": [{"name": "age", "type": kind, "kind": "numeric"}]})

    package.check_columns(schema("integer"), "site-a/patients")
    with pytest.raises(InvalidInput, match="needs column 'age' as integer; in site-a/patients it is float"):
        package.check_columns(schema("float"), "site-a/patients")
    with pytest.raises(InvalidInput, match="which site-a/patients does not have"):
        package.check_columns(DatasetSchema(columns=[]), "site-a/patients")
