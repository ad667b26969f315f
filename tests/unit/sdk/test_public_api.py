"""The public surface of `custos` and `custos.sdk` is exactly what `__all__` says, and it is all there."""

import subprocess
import sys
from pathlib import Path

import pytest

import custos
import custos.sdk

SDK_SUBMODULES = {
    "client",
    "code",
    "dataset",
    "display",
    "job",
    "jobs",
    "keybroker",
    "progress",
    "responses",
    "releases",
    "result",
    "session",
    "spec",
    "tables",
    "waiting",
}


def test_all_names_the_public_surface_exactly() -> None:
    assert sorted(custos.sdk.__all__) == [
        "Client",
        "Dataset",
        "Job",
        "Result",
        "Section",
        "Spec",
        "WaitTimeout",
        "result_sections",
    ]


def test_every_name_in_all_exists_and_belongs_to_the_sdk() -> None:
    for name in custos.sdk.__all__:
        value = getattr(custos.sdk, name)
        assert value.__module__.startswith("custos.sdk."), name


def test_no_public_name_is_left_out_of_all() -> None:
    public = {n for n in vars(custos.sdk) if not n.startswith("_")}
    assert public - SDK_SUBMODULES == set(custos.sdk.__all__)


def test_the_sdk_has_no_unlisted_public_module() -> None:
    found = {p.stem for p in Path(custos.sdk.__file__).parent.glob("*.py")}
    assert found - {"__init__"} == SDK_SUBMODULES


def test_custos_all_is_the_client_the_version_and_launch() -> None:
    assert sorted(custos.__all__) == ["Client", "__version__", "launch"]
    assert custos.Client is custos.sdk.Client
    assert isinstance(custos.__version__, str)


def test_an_unknown_custos_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Clinet"):
        custos.Clinet  # noqa: B018


def test_import_custos_stays_light() -> None:
    # The sandbox imports custos; the SDK (httpx, pandas) is loaded only when custos.Client is used.
    code = (
        "import sys, custos; print(sorted(m for m in ('custos.sdk', 'httpx', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
