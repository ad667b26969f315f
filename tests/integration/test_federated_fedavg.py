"""FedAvg through real processes on the cluster's synthetic patients: the job succeeds with per-round
metrics, its weights download as a safetensors file equal to the same job run in process, and a job
whose orchestrator is killed (SIGKILL) mid-training ends with the weights of an uninterrupted run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from safetensors.numpy import load_file

from custos.computations.base import Final
from custos.computations.fedavg.model import FedAvgModel
from custos.core.errors import PermissionDenied
from custos.core.states import JobState
from custos.data.table_reader import TableDalReader
from custos.local.cluster import Cluster

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = pytest.mark.one_database

SITES = ["site-a/patients", "site-b/patients", "site-c/patients"]
COLUMNS = ["age", "bmi", "systolic_bp", "smoker"]
MODEL = "fedavg@1.0.0"
GRANT_NEEDED = (
    "the cluster's policy does not grant fedavg: in tests/conftest.py, stats_policy() needs "
    '"fedavg@>=1.0,<2" in its models'
)
PARAMS: dict[str, Any] = {
    "model": "logistic",
    "features": ["age", "bmi", "systolic_bp"],
    "label": "smoker",
    "positive": "yes",
    "rounds": 3,
    "local_epochs": 1,
    "batch_size": 256,
    "learning_rate": 0.2,
    "holdout": 0.2,
    "seed": 11,
}


@pytest.fixture(scope="module")
def spec_id(cluster: Cluster) -> Iterator[str]:
    with cluster.client("alice") as alice:
        try:
            spec = alice.create_spec("fedavg-check", MODEL, SITES, COLUMNS)
        except PermissionDenied as exc:
            if f"does not allow model {MODEL}" in str(exc):
                pytest.skip(GRANT_NEEDED)
            raise
        alice.activate_spec(spec.id)
        yield spec.id


def in_process(params: dict[str, Any], site_tables: list[pa.Table], min_count: int = 10) -> dict[str, Any]:
    """The same job without processes: what the orchestrator and gateways should have computed."""
    model = FedAvgModel()
    step = model.start(params)
    state, round_input = step.state, step.round_input
    while True:
        results = {}
        for key, table in zip(SITES, site_tables, strict=True):
            reader = TableDalReader({"patients": table})
            raw = model.compute_site(reader, "patients", params, round_input)
            results[key] = model.filter_site_result(params, raw, min_count)
        outcome = model.aggregate(params, state, results, min_count)
        if isinstance(outcome, Final):
            return outcome.result
        state, round_input = outcome.state, outcome.round_input


def test_a_fedavg_job_reports_each_round_and_its_weights_download_as_safetensors(
    cluster: Cluster, spec_id: str, site_tables: list[pa.Table], tmp_path: Path
) -> None:
    with cluster.client("alice") as alice:
        job = alice.submit_job(spec_id, PARAMS)
        assert alice.wait_job(job.id, timeout=120).state is JobState.SUCCEEDED
        result = alice.job_result(job.id)
    data = result.data
    assert [row["round"] for row in data["history"]] == [1, 2, 3]
    assert all(row["clients"] == 3 for row in data["history"])
    assert {row["site"] for row in data["site_metrics"]} == set(SITES)
    assert 0.5 < data["final"]["holdout_accuracy"] <= 1.0
    assert "weights" not in {section.title for section in result.sections()}

    saved = result.save_model(tmp_path / "model.safetensors")
    weights = load_file(str(saved))
    assert set(weights) == {"weight", "bias"} and weights["weight"].shape == (1, 3)
    expected = in_process(PARAMS, site_tables)
    assert data["weights"] == expected["weights"]
    np.testing.assert_allclose(data["final"]["holdout_accuracy"], expected["final"]["holdout_accuracy"])


def _wait_for_round(cluster: Cluster, job_id: str, round_no: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with cluster.client("alice") as alice:
        while time.monotonic() < deadline:
            job = alice.job(job_id)
            if job.round >= round_no or job.state is not JobState.RUNNING:
                return
            time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not reach round {round_no}")


def test_a_job_continues_after_an_orchestrator_restart_and_ends_with_the_uninterrupted_weights(
    cluster: Cluster, spec_id: str
) -> None:
    params = {**PARAMS, "rounds": 6, "model": "mlp", "hidden": 8, "server_momentum": 0.5}
    with cluster.client("alice") as alice:
        reference = alice.submit_job(spec_id, params)
        alice.wait_job(reference.id, timeout=120)
        expected = alice.job_result(reference.id).data
        job = alice.submit_job(spec_id, params)
    # Job round 3 is training round 3: training rounds 1 and 2 are done and stored.
    _wait_for_round(cluster, job.id, 3)
    cluster.restart_orchestrator(kill=True)
    with cluster.client("alice") as alice:
        assert alice.wait_job(job.id, timeout=120).state is JobState.SUCCEEDED
        data = alice.job_result(job.id).data
    assert [row["round"] for row in data["history"]] == [1, 2, 3, 4, 5, 6]
    assert data["weights"] == expected["weights"]
    assert data["history"] == expected["history"]
