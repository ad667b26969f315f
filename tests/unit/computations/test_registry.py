"""The catalogue of built-in models."""

from __future__ import annotations

import subprocess
import sys

import pytest

from custos.computations.registry import BUILTINS, RUNNERS, BuiltinModel, get_model, is_builtin, list_models
from custos.core.errors import NotFound


def test_stats_is_found_by_name_and_version() -> None:
    model = get_model("stats", "1.0.0")
    assert (model.name, model.version) == ("stats", "1.0.0")
    assert [(m.name, m.version) for m in list_models()] == [
        ("stats", "1.0.0"),
        ("glm", "1.0.0"),
        ("fedavg", "1.0.0"),
    ]


@pytest.mark.parametrize(("name", "version"), [("x", "1.0"), ("stats", "2.0.0"), ("stats", "1.0")])
def test_an_unknown_model_is_not_found_and_the_message_lists_what_is_available(
    name: str, version: str
) -> None:
    with pytest.raises(NotFound) as caught:
        get_model(name, version)
    assert (
        str(caught.value)
        == f"unknown model {name}@{version}; available: stats@1.0.0, glm@1.0.0, fedavg@1.0.0"
    )


@pytest.mark.parametrize("entry", [*BUILTINS, *RUNNERS], ids=lambda e: e.ref)
def test_each_entry_names_the_model_its_class_does(entry: BuiltinModel) -> None:
    model = get_model(entry.name, entry.version)
    assert (model.name, model.version) == (entry.name, entry.version)
    assert is_builtin(entry.ref)
    assert not is_builtin(f"{entry.name}@9.9.9")


def test_the_catalogue_imports_no_model() -> None:
    code = (
        "import sys, custos.computations.registry as r\n"
        "assert [e.ref for e in r.BUILTINS]\n"
        "print(sorted(m for m in sys.modules if m.endswith('.model') and m.startswith('custos.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_load_all_imports_every_model() -> None:
    code = (
        "import sys, custos.computations.registry as r\n"
        "r.load_all()\n"
        "print(all(e.module in sys.modules for e in (*r.BUILTINS, *r.RUNNERS)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "True"
