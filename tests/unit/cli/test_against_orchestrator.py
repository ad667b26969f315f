"""The CLI against a real orchestrator process on loopback (no gateways): answers and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from custos.core.errors import NotFound
from custos.testing.cluster import Cluster, UserSetup

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
