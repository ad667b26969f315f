"""The one line the CLI prints for failures that come from libraries rather than from Custos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from custos.cli.failures import describe
from custos.cli.options import read_params, split_values
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.wire import Resources


def test_custos_errors_keep_their_sentence() -> None:
    assert describe(PolicyDenied("the policy for patients does not grant postcode")) == (
        "the policy for patients does not grant postcode"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        (tmp_path / "nope.yaml").read_text()
    assert describe(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file or folder"


def test_yaml_error_names_line_and_column() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load("a: [1, 2\nb: 3\n")
    message = describe(caught.value)
    assert message.startswith("malformed YAML at line")
    assert "\n" not in message


def test_validation_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Resources.model_validate({"memory_mb": 1})
    assert describe(caught.value).startswith("memory_mb: ")


def test_unexpected_errors_stay_on_one_line() -> None:
    message = describe(RuntimeError("first\nsecond"))
    assert message == "unexpected RuntimeError: first second (set CUSTOS_DEBUG=1 to see the traceback)"


def test_split_values_accepts_repeats_and_commas() -> None:
    assert split_values(["age", "sex, bmi", ",", " region "]) == ["age", "sex", "bmi", "region"]


def test_read_params_from_option_file_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"columns": ["age"]}))
    assert read_params('{"columns": ["bmi"]}', None) == {"columns": ["bmi"]}
    assert read_params(None, tmp_path / "p.json") == {"columns": ["age"]}
    assert read_params(None, None) == {}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        read_params("{", None)


def test_demo_folder_is_wiped_only_if_a_demo_made_it(tmp_path: Path) -> None:
    from custos.demo.walkthrough import MARKER, prepare_workdir

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text("")
    (earlier / "stale.txt").write_text("from an earlier run")
    prepare_workdir(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == [MARKER]

    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(InvalidInput, match="was not made by `custos demo`"):
        prepare_workdir(other)
    assert (other / "thesis.txt").read_text() == "precious"

    prepare_workdir(tmp_path / "new" / "demo")
    assert (tmp_path / "new" / "demo" / MARKER).is_file()
