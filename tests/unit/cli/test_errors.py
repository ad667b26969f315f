"""Every bad input the CLI can see without a server ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from custos.pki.project import load_project
from custos.pki.provision import provision

from .conftest import CliRunner


def test_missing_kit_folder(custos: CliRunner, tmp_path: Path) -> None:
    line = custos("dataset", "list", "--kit", str(tmp_path / "no-such-kit")).assert_one_line_error()
    assert "no-such-kit" in line
    assert "does not exist" in line


def test_kit_from_environment_variable(custos: CliRunner, tmp_path: Path) -> None:
    line = custos("spec", "list", env={"CUSTOS_KIT": str(tmp_path / "env-kit")}).assert_one_line_error()
    assert "env-kit" in line


def test_folder_that_is_not_a_kit(custos: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = custos("job", "status", "job_1", "--kit", str(tmp_path / "empty")).assert_one_line_error()
    assert "empty" in line


def test_installed_script_reports_errors_the_same_way(custos: CliRunner, tmp_path: Path) -> None:
    line = custos("dataset", "list", "--kit", str(tmp_path / "nope"), script=True).assert_one_line_error()
    assert "nope" in line


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{bad", "--params is not valid JSON"),
        ('{"columns": ["age"]', "--params is not valid JSON"),
        ("[1, 2]", "--params must be a JSON object"),
        ('"columns"', "--params must be a JSON object"),
    ],
)
def test_malformed_params(custos: CliRunner, tmp_path: Path, params: str, expected: str) -> None:
    line = custos(
        "job", "submit", "spec_1", "--kit", str(tmp_path), "--params", params
    ).assert_one_line_error()
    assert expected in line


def test_missing_params_file(custos: CliRunner, tmp_path: Path) -> None:
    line = custos(
        "job", "submit", "spec_1", "--kit", str(tmp_path), "--params-file", "params.json"
    ).assert_one_line_error()
    assert "--params-file params.json does not exist" in line


def test_params_file_with_bad_json(custos: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text("columns: [age]\n")
    line = custos(
        "job", "submit", "spec_1", "--kit", str(tmp_path), "--params-file", "params.json"
    ).assert_one_line_error()
    assert "params.json is not valid JSON" in line


def test_params_and_params_file_together(custos: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text(json.dumps({"columns": ["age"]}))
    line = custos(
        "job", "submit", "s", "--kit", str(tmp_path), "--params", "{}", "--params-file", "params.json"
    ).assert_one_line_error()
    assert "either --params or --params-file" in line


@pytest.mark.parametrize(
    ("model", "dataset", "expected"),
    [
        ("stats", "site-a/patients", "model 'stats' must be written name@version"),
        ("stats@latest", "site-a/patients", "name@version"),
        ("Stats!@1.0", "site-a/patients", "is not a valid name"),
        ("stats@1.0.0", "site-a", "dataset 'site-a' must be written gateway/dataset"),
        ("stats@1.0.0", "site-a/patients,site-b", "dataset 'site-b' must be written gateway/dataset"),
    ],
)
def test_bad_refs_in_spec_create(
    custos: CliRunner, tmp_path: Path, model: str, dataset: str, expected: str
) -> None:
    line = custos(
        "spec", "create", "--kit", str(tmp_path), "--name", "s", "--model", model,
        "--dataset", dataset, "--column", "age",
    ).assert_one_line_error()  # fmt: skip
    assert expected in line


def test_bad_resources_json(custos: CliRunner, tmp_path: Path) -> None:
    line = custos(
        "spec", "create", "--kit", str(tmp_path), "--name", "s", "--model", "stats@1.0.0",
        "--dataset", "site-a/patients", "--column", "age", "--resources", '{"memory_mb": 1}',
    ).assert_one_line_error()  # fmt: skip
    assert "memory_mb" in line


@pytest.mark.parametrize("command", ["show", "mock"])
def test_dataset_ref_without_slash(custos: CliRunner, tmp_path: Path, command: str) -> None:
    line = custos("dataset", command, "patients", "--kit", str(tmp_path)).assert_one_line_error()
    assert "gateway/dataset" in line


def test_missing_required_option_is_a_usage_error(custos: CliRunner) -> None:
    line = custos("spec", "create", "--name", "s").assert_one_line_error(code=2)
    assert "--kit" in line
    assert "custos spec create --help" in line


def test_unknown_command_is_a_usage_error(custos: CliRunner) -> None:
    line = custos("specs").assert_one_line_error(code=2)
    assert "specs" in line


def test_gateway_start_with_missing_datasets_file(custos: CliRunner, tmp_path: Path) -> None:
    line = custos(
        "gateway", "start", "--kit", str(tmp_path), "--data", "DATASETS.yaml"
    ).assert_one_line_error()
    assert "DATASETS.yaml does not exist" in line


def test_orchestrator_start_with_missing_kit(custos: CliRunner, tmp_path: Path) -> None:
    line = custos("orchestrator", "start", "--kit", str(tmp_path / "nope")).assert_one_line_error()
    assert "nope" in line


def test_orchestrator_start_with_a_trusted_proxy_that_is_not_an_address(
    custos: CliRunner, tmp_path: Path
) -> None:
    line = custos(
        "orchestrator", "start", "--kit", str(tmp_path), "--trusted-proxy", "proxy.example.org"
    ).assert_one_line_error()
    assert "--trusted-proxy proxy.example.org: not an IP address or network" in line


def test_provision_with_missing_project_file(custos: CliRunner, tmp_path: Path) -> None:
    line = custos("provision", "project.yaml", "-o", str(tmp_path / "kits")).assert_one_line_error()
    assert "project.yaml" in line


def test_demo_refuses_a_folder_it_did_not_make(custos: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("precious")
    line = custos("demo", "--workdir", "notes").assert_one_line_error()
    assert "was not made by `custos demo`" in line
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "precious"


def test_unreachable_orchestrator(custos: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project = {
        "name": "unit",
        "orchestrator": {"host": "127.0.0.1", "port": port},
        "participants": [{"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"}],
    }
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(project))
    provision(load_project(tmp_path / "project.yaml"), tmp_path / "kits")
    # Nothing listens on the port: the socket above is closed.
    line = custos("dataset", "list", "--kit", str(tmp_path / "kits" / "alice")).assert_one_line_error()
    assert f"orchestrator at https://127.0.0.1:{port} is unreachable" in line


def test_help_exits_zero(custos: CliRunner) -> None:
    run = custos("--help")
    assert run.code == 0
    for group in ("provision", "orchestrator", "gateway", "dataset", "spec", "job", "demo"):
        assert group in run.stdout


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--output", "file", "--file-type", "exe"], "--file-type exe is not allowed; use one of csv, json"),
        (["--output", "file"], "--output file needs --file-type, one of csv, json, parquet, pdf, png"),
        (
            ["--output", "table", "--file-type", "png"],
            "--file-type goes with --output file, not --output table",
        ),
    ],
    ids=["unknown type", "no type", "type without file"],
)
def test_a_bad_file_output_is_refused_before_anything_is_read(
    custos: CliRunner, tmp_path: Path, options: list[str], expected: str
) -> None:
    (tmp_path / "plot.py").write_text("def plot(dal, datasets, params):\n    return b''\n")
    line = custos(
        "code", "submit", "plot.py", "--function", "plot", "--dataset", "site-a/patients",
        "--kit", str(tmp_path / "no-kit"), *options,
    ).assert_one_line_error()  # fmt: skip
    assert expected in line


def test_version_is_printed(custos: CliRunner) -> None:
    done = custos("--version")
    assert done.code == 0, done.stderr
    assert done.stdout.strip().startswith("custos ")
    assert done.stdout.strip().split()[1][0].isdigit()


def test_shell_completion_completes_command_groups(custos: CliRunner) -> None:
    done = custos(
        env={"_CUSTOS_COMPLETE": "complete_bash", "COMP_WORDS": "custos orch", "COMP_CWORD": "1"},
        script=True,
    )
    assert done.code == 0, done.stderr
    assert done.stdout.split() == ["orchestrator"]


def test_an_unknown_log_format_is_one_line(custos: CliRunner, tmp_path: Path) -> None:
    line = custos(
        "orchestrator", "start", "--kit", str(tmp_path), "--log-format", "xml"
    ).assert_one_line_error(code=2)
    assert "xml" in line


@pytest.mark.parametrize(
    ("config", "flags", "expected"),
    [
        ("warm_spares: -1\n", [], "gateway.yaml: warm_spares: Input should be greater than or equal to 0"),
        ("", ["--cap", "memory_mb"], "--cap memory_mb: write NAME=VALUE"),
        ("", ["--cap", "memory_gb=4"], "gateway.yaml (or its flag): sandbox.memory_gb: Extra inputs"),
    ],
)
def test_a_bad_gateway_configuration_is_one_line(
    custos: CliRunner, tmp_path: Path, config: str, flags: list[str], expected: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "DATASETS.yaml").write_text("datasets: []\n", encoding="utf-8")
    if config:
        (site / "gateway.yaml").write_text(config, encoding="utf-8")
    line = custos(
        "gateway", "start", "--kit", str(tmp_path / "kit"), "--data", str(site / "DATASETS.yaml"), *flags
    ).assert_one_line_error()
    assert expected in line
