"""The CLI against a real orchestrator process on loopback (no gateways): answers and refusals."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from custos.core.errors import NotFound
from custos.core.wire import code_digest
from custos.local.cluster import Cluster, UserSetup
from custos.pki.kit import load_kit
from custos.registry.archive import entry_info
from custos.sdk.session import root_ssl_context

from .conftest import CliRunner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(
        tmp_path_factory.mktemp("cluster"), gateways=[], users=[UserSetup("alice", "university")]
    ) as running:
        yield running


def test_whoami_shows_the_identity_from_the_certificate(custos: CliRunner, cluster: Cluster) -> None:
    run = custos("whoami", "--json", env={"CUSTOS_KIT": str(cluster.kit_dir("alice"))})
    assert run.code == 0, run.stderr
    me = json.loads(run.stdout)
    assert (me["name"], me["org"], me["role"]) == ("alice", "university", "lead_researcher")


def test_empty_lists_say_so(custos: CliRunner, cluster: Cluster) -> None:
    kit = str(cluster.kit_dir("alice"))
    datasets = custos("dataset", "list", "--kit", kit)
    assert datasets.code == 0, datasets.stderr
    assert "no dataset is published yet" in datasets.stdout
    assert json.loads(custos("spec", "list", "--kit", kit, "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["dataset", "show", "site-z/patients"], "site-z/patients"),
        (["job", "status", "job_0000"], "job_0000"),
        (["job", "submit", "spec_0000", "--params", "{}"], "spec_0000"),
    ],
)
def test_refusals_are_one_line(custos: CliRunner, cluster: Cluster, args: list[str], expected: str) -> None:
    line = custos(*args, "--kit", str(cluster.kit_dir("alice"))).assert_one_line_error()
    assert expected in line


def test_client_survives_an_orchestrator_restart(cluster: Cluster) -> None:
    client = cluster.client("alice")
    assert client.me().name == "alice"
    before = cluster.pids()["orchestrator"]
    cluster.restart_orchestrator()
    assert cluster.pids()["orchestrator"] != before
    assert client.me().name == "alice"
    with pytest.raises(NotFound):
        client.spec("spec_0000")


# --- custom code packages: bad input is one line, and a 4xx with a JSON detail from the API -------

PACKAGE_MANIFEST = 'name = "p"\nversion = "1.0.0"\nentrypoint = "p.main:run"\n\n[outputs.n]\nkind = "json"\n'
PACKAGE_MANIFEST += "max_bytes = 100\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"p/main.py": "def run(dal, datasets, params): ..."}, "has no custos-model.toml"),
        (
            {"custos-model.toml": PACKAGE_MANIFEST},
            "names module p.main, but the package holds neither p/main.py",
        ),
        (
            {"custos-model.toml": PACKAGE_MANIFEST.replace("p.main:run", "p.main"), "p/main.py": ""},
            "must be module:function",
        ),
        (
            {"custos-model.toml": PACKAGE_MANIFEST, "p/main.py": "", "p/blob.bin": "x"},
            "a code package may have 1048576",
        ),
        (
            {"custos-model.toml": PACKAGE_MANIFEST, "p/main.py": "def go(dal, datasets, params): ..."},
            "p/main.py (the entrypoint's module p.main) defines no function named run at its top level",
        ),
        (
            {"custos-model.toml": PACKAGE_MANIFEST, "p/main.py": "def run(dal, datasets, params)\n"},
            "p/main.py does not parse: expected ':' (line 1",
        ),
    ],
    ids=["no manifest", "no entry module", "bad entrypoint", "too big", "no entry function", "no parse"],
)
def test_a_bad_package_is_refused_in_one_line_and_nothing_is_submitted(
    custos: CliRunner, cluster: Cluster, tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    folder = tmp_path / "package"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        # The big blob is random bytes, so that it does not compress under the cap.
        data = os.urandom(1_100_000) if name.endswith(".bin") else content.encode()
        (folder / name).write_bytes(data)
    kit = str(cluster.kit_dir("alice"))
    line = custos(
        "code", "submit", str(folder), "--dataset", "site-a/patients", "--kit", kit
    ).assert_one_line_error()
    assert expected in line
    assert json.loads(custos("code", "list", "--kit", kit, "--json").stdout) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def count(dal, datasets, params):\n    return {'n': 1\n",
            "the code does not parse: '{' was never closed (line 2, column 12)",
        ),
        ("def total(dal, datasets, params):\n    return {}\n", "no function named count at its top level"),
    ],
    ids=["no parse", "no function"],
)
def test_code_that_could_not_run_is_refused_at_submit_in_one_line_and_a_json_detail(
    custos: CliRunner, cluster: Cluster, tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "count.py").write_text(source, encoding="utf-8")
    kit = str(cluster.kit_dir("alice"))
    line = custos(
        "code", "submit", "count.py", "--function", "count", "--dataset", "site-a/patients",
        "--output", "json", "--kit", kit,
    ).assert_one_line_error()  # fmt: skip
    assert expected in line
    body = {"source": source, "function": "count", "datasets": ["site-a/patients"], "output": "json"}
    with cluster.client("alice") as alice:
        token = alice.create_token("code-check").token
    with httpx.Client(base_url=cluster.url, verify=root_ssl_context(load_kit(Path(kit)).root_path)) as http:
        answer = http.post("/api/v1/code", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422, answer.text  # the content decides: ContentRefused
    assert expected in answer.json()["detail"]
    assert json.loads(custos("code", "list", "--kit", kit, "--json").stdout) == []


def test_the_api_refuses_a_hostile_package_with_a_json_detail(cluster: Cluster) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(entry_info("custos-model.toml"), PACKAGE_MANIFEST)
        zf.writestr(entry_info("../p/main.py"), "def run(dal, datasets, params): ...")
    body = {"package_b64": base64.b64encode(buffer.getvalue()).decode(), "datasets": ["site-a/patients"]}
    with cluster.client("alice") as alice:
        token = alice.create_token("package-test").token
    kit = load_kit(cluster.kit_dir("alice"))
    with httpx.Client(base_url=cluster.url, verify=root_ssl_context(kit.root_path)) as http:
        answer = http.post("/api/v1/code", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422, answer.text
    assert "code package refused (unsafe_path)" in answer.json()["detail"]
    assert "climbs out of the package" in answer.json()["detail"]


def test_an_output_type_that_is_not_allowed_is_one_line_and_a_json_detail_from_the_api(
    custos: CliRunner, cluster: Cluster, tmp_path: Path
) -> None:
    source = "def plot(dal, datasets, params):\n    return b'MZ'\n"
    (tmp_path / "plot.py").write_text(source, encoding="utf-8")
    kit = str(cluster.kit_dir("alice"))
    line = custos(
        "code", "submit", "plot.py", "--function", "plot", "--dataset", "site-a/patients",
        "--output", "file:exe", "--kit", kit,
    ).assert_one_line_error()  # fmt: skip
    assert "output 'file:exe' is not one of table, json, file:csv, file:json, file:parquet" in line
    body = {"source": source, "function": "plot", "datasets": ["site-a/patients"], "output": "file:exe"}
    with cluster.client("alice") as alice:
        token = alice.create_token("output-test").token
    with httpx.Client(base_url=cluster.url, verify=root_ssl_context(load_kit(Path(kit)).root_path)) as http:
        answer = http.post("/api/v1/code", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400, answer.text
    assert "output" in answer.json()["detail"] and "file:png" in answer.json()["detail"]
    assert json.loads(custos("code", "list", "--kit", kit, "--json").stdout) == []


# --- a mock run attached to a code request: refused with a JSON detail when it cannot be the code's ----

MOCK_SOURCE = "def count(dal, datasets, params):\n    return {'n': 1}\n"


def _mock_run_body(digest: str, texts: list[str]) -> dict[str, object]:
    outputs = [{"dataset": "site-a/patients", "ok": True, "kind": "json", "text": t} for t in texts]
    return {
        "source": MOCK_SOURCE, "function": "count", "datasets": ["site-a/patients"], "output": "json",
        "mock_run": {"digest": digest, "outputs": outputs},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _mock_run_body(code_digest(MOCK_SOURCE), ["x" * 20_000, "y" * 20_000]),
            "mock_run is 40",  # then: "… characters of JSON, over the bound of 32768"
        ),
        (_mock_run_body("0" * 64, ["{}"]), "mock_run is of code with digest 0000"),
    ],
    ids=["over the bound", "of other code"],
)
def test_a_mock_run_that_cannot_be_attached_is_a_422_with_a_json_detail(
    cluster: Cluster, body: dict[str, object], expected: str
) -> None:
    with cluster.client("alice") as alice:
        token = alice.create_token("mock-run").token
    kit = load_kit(cluster.kit_dir("alice"))
    with httpx.Client(base_url=cluster.url, verify=root_ssl_context(kit.root_path)) as http:
        answer = http.post("/api/v1/code", json=body, headers={"Authorization": f"Bearer {token}"})
        listed = http.get("/api/v1/code", headers={"Authorization": f"Bearer {token}"}).json()
    assert answer.status_code == 422, answer.text
    assert expected in answer.json()["detail"]
    assert "32768" in answer.json()["detail"] or "run it again" in answer.json()["detail"]
    assert listed == []


def test_submit_with_a_mock_run_of_an_unknown_dataset_is_one_line(
    custos: CliRunner, cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "count.py").write_text(MOCK_SOURCE, encoding="utf-8")
    kit = str(cluster.kit_dir("alice"))
    line = custos(
        "code", "submit", "count.py", "--function", "count", "--dataset", "site-a/patients",
        "--output", "json", "--mock-run", "--kit", kit,
    ).assert_one_line_error()  # fmt: skip
    assert "site-a/patients" in line
    assert json.loads(custos("code", "list", "--kit", kit, "--json").stdout) == []
