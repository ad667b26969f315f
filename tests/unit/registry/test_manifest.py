"""custos-model.toml: what it accepts, and refusals that name the field and what is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput
from custos.registry import FileOutput, TableOutput, load_manifest, parse_manifest

BASE = """\
name = "m"
version = "1.0"
entrypoint = "pkg.mod:Model"
[outputs.result]
kind = "json"
max_bytes = 1000
"""


def test_a_full_manifest_parses_into_typed_fields(package_dir: Path) -> None:
    manifest = load_manifest(package_dir)
    assert manifest.ref == "cohort-summary@1.0.0"
    assert manifest.entrypoint == "cohort_summary.main:run"
    assert manifest.columns == {"age": "integer", "region": "string"}
    assert manifest.parameters["columns"].required
    assert isinstance(manifest.outputs["summary"], TableOutput)
    assert manifest.outputs["summary"].max_rows == 1000
    figure = manifest.outputs["figure"]
    assert isinstance(figure, FileOutput) and figure.file_types == ["png", "svg"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('licence = "MIT"\n', "licence: Extra inputs are not permitted"),
        ('[parameters.k]\ntype = "integer"\nminimum = "low"\n', "parameters.k.minimum"),
        ('[parameters.k]\ntype = "string"\nminimum = 1\n', "minimum and maximum apply to integer and number"),
        ('[parameters.k]\ntype = "array"\n', "an array parameter needs items"),
        ('[parameters.k]\ntype = "integer"\ndefault = "x"\n', "default must be an integer"),
        ('[parameters.k]\ntype = "tensor"\n', "parameters.k.type"),
        ('[columns]\nage = "decimal"\n', "columns.age"),
        ('[outputs.rows]\nkind = "table"\nmax_rows = 0\n', "outputs.rows.max_rows"),
        ('[outputs.blob]\nkind = "file"\nmax_bytes = 10\nfile_types = [".PNG"]\n', "lower-case extension"),
        ('[outputs.x]\nkind = "pickle"\n', "outputs.x"),
    ],
)
def test_a_bad_field_is_refused_naming_it(extra: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_manifest(BASE + extra)
    assert expected in refused.value.message
    assert refused.value.message.startswith("custos-model.toml: ")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "Bad Name", "is not a valid name"),
        ("version", "latest", "version: version .latest. must be 1 to 3 numbers"),
        ("entrypoint", "pkg/mod.py", "entrypoint: .pkg/mod.py. must be module:function"),
        ("entrypoint", "os:system; rm", "module:function or module:Class"),
    ],
)
def test_names_version_and_entrypoint_are_checked(field: str, value: str, expected: str) -> None:
    text = BASE.replace(f"{field} = ", f"{field} = {value!r}\n_old_{field} = ", 1)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("_old_"))
    with pytest.raises(InvalidInput, match=expected):
        parse_manifest(text)


def test_outputs_are_required() -> None:
    text = BASE.split("[outputs.result]")[0]
    with pytest.raises(InvalidInput, match="outputs"):
        parse_manifest(text)


def test_not_toml_and_too_large_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid TOML"):
        parse_manifest("name = ")
    with pytest.raises(InvalidInput, match="larger than"):
        parse_manifest(BASE + "#" * 70_000)


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has no custos-model\.toml"):
        load_manifest(tmp_path)


def test_parameters_are_checked_and_defaults_filled(package_dir: Path) -> None:
    manifest = load_manifest(package_dir)
    assert manifest.check_params({"columns": ["age"]}) == {"columns": ["age"], "min_age": 18}
    with pytest.raises(InvalidInput, match="needs the parameter 'columns'"):
        manifest.check_params({})
    with pytest.raises(InvalidInput, match="no parameter 'limit'; accepted: columns, min_age"):
        manifest.check_params({"columns": [], "limit": 3})
    with pytest.raises(InvalidInput, match="min_age is 200; the maximum is 120"):
        manifest.check_params({"columns": [], "min_age": 200})
    with pytest.raises(InvalidInput, match=r"columns\[1\] must be a string"):
        manifest.check_params({"columns": ["age", 3]})
    with pytest.raises(InvalidInput, match="min_age must be an integer"):
        manifest.check_params({"columns": [], "min_age": True})
