"""A job's sandboxed runtime answers every round of the job from one real bubblewrap sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from custos.computations.base import Final, NextRound
from custos.computations.registry import get_model
from custos.core.errors import SandboxError
from custos.data.file_source import FileSource
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.dal import DatasetGrant
from custos.gateway.runtimes import JobRuntime, RuntimeKey, RuntimePool
from custos.sandbox.bubblewrap import BubblewrapRunner
from custos.sandbox.limits import SandboxLimits
from custos.sandbox.runner import SandboxRequest, SandboxResult

PARAMS = {
    "columns": ["bmi"],
    "statistics": ["count", "mean"],
    "quantiles": [{"column": "bmi", "probs": [0.5]}],
}


class CountingRunner:
    """The real runner, counting how many sandboxes it starts."""

    def __init__(self) -> None:
        self.runner = BubblewrapRunner()
        self.started = 0

    def run(self, request: SandboxRequest) -> SandboxResult:
        self.started += 1
        return self.runner.run(request)


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, FileSource]:
    folder = tmp_path_factory.mktemp("data")
    table = synthetic_patients(2_000, site=1)
    write_dataset(table, folder / "patients.parquet")
    return table, FileSource("patients", folder / "patients.parquet", "parquet")


def grants(source: FileSource) -> dict[str, DatasetGrant]:
    return {"patients": DatasetGrant(source=source, columns=frozenset({"bmi"}))}


def start(runner: CountingRunner, source: FileSource, limits: SandboxLimits) -> JobRuntime:
    runtime = JobRuntime(runner, limits, max_result_bytes=1 << 20)
    runtime.assign(grants(source), access_log=None)
    return runtime


def request(runtime: JobRuntime, round_input: dict[str, object]) -> dict[str, object]:
    return {
        "model": "stats@1.0.0",
        "dataset": "patients",
        "params": PARAMS,
        "round_input": round_input,
        "dal_socket": runtime.dal_socket,
        "dal_token": runtime.token,
    }


@pytest.fixture
def runner() -> Iterator[CountingRunner]:
    yield CountingRunner()


def test_every_round_of_a_job_runs_in_one_sandbox(
    runner: CountingRunner, patients: tuple[pa.Table, FileSource]
) -> None:
    table, source = patients
    model = get_model("stats", "1.0.0")
    runtime = start(runner, source, SandboxLimits(wall_seconds=60, cpu_seconds=60))
    try:
        step = model.start(PARAMS)
        rounds = 0
        while rounds < 20:
            reply = runtime.compute(request(runtime, step.round_input))
            assert reply["ok"], reply
            result = model.filter_site_result(PARAMS, reply["result"], 10)
            outcome = model.aggregate(PARAMS, step.state, {"site/patients": result}, 10)
            rounds += 1
            if not isinstance(outcome, NextRound):
                break
            step = outcome
        assert isinstance(outcome, Final)
        assert rounds > 2, "a quantile needs several rounds"
        assert runner.started == 1
        (median,) = outcome.result["quantiles"]
        assert median["value"] == table.to_pandas()["bmi"].quantile(0.5)
    finally:
        runtime.close()


def test_an_error_in_a_round_is_reported_without_ending_the_runtime(
    runner: CountingRunner, patients: tuple[pa.Table, FileSource]
) -> None:
    runtime = start(runner, patients[1], SandboxLimits(wall_seconds=60))
    try:
        bad = request(runtime, {"round": "nonsense"})
        reply = runtime.compute(bad)
        assert reply["ok"] is False
        assert reply["type"] and reply["message"]
        assert runtime.compute(request(runtime, get_model("stats", "1.0.0").start(PARAMS).round_input))["ok"]
    finally:
        runtime.close()


def test_a_runtime_that_outlives_its_wall_clock_fails_with_the_reason(
    runner: CountingRunner, patients: tuple[pa.Table, FileSource]
) -> None:
    # Long enough for the first round on a loaded machine; the sandbox's wall clock then ends it idle.
    runtime = start(runner, patients[1], SandboxLimits(wall_seconds=12))
    try:
        runtime.compute(request(runtime, get_model("stats", "1.0.0").start(PARAMS).round_input))
        runtime._thread.join(timeout=60)
        with pytest.raises(SandboxError, match="wall-clock limit of 12 s exceeded"):
            runtime.compute(request(runtime, get_model("stats", "1.0.0").start(PARAMS).round_input))
    finally:
        runtime.close()


def test_a_spare_runtime_has_no_grant_until_a_job_takes_it(runner: CountingRunner) -> None:
    spare = JobRuntime(runner, SandboxLimits(wall_seconds=60), max_result_bytes=1 << 20)
    try:
        assert not (spare._ipc / "dal.sock").exists()
        with pytest.raises(SandboxError, match="no grant"):
            spare.compute({})
    finally:
        spare.close()
    # A spare closed while it still boots is cleaned up when its sandbox ends, in the background.
    spare._thread.join(timeout=60)
    deadline = time.monotonic() + 30
    while spare._folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not spare._folder.exists()


def test_pool_hands_the_spare_to_a_job_reuses_by_key_and_closes_idle_runtimes(
    runner: CountingRunner, patients: tuple[pa.Table, FileSource]
) -> None:
    limits = SandboxLimits(wall_seconds=60)
    pool = RuntimePool(runner, max_result_bytes=1 << 20, spare_limits=limits, idle_s=3600, max_runtimes=1)
    try:
        assert pool.spares == (), "the first spare boots at the first reap, once the gateway is connected"
        pool.reap()
        (spare,) = pool.spares
        key = RuntimeKey("job_1", "patients", "digest", frozenset({"bmi"}))
        first = pool.get(key, limits, grants(patients[1]), None)
        assert first is spare, "the job takes the booted spare"
        assert pool.spares == (), "the next spare waits until the gateway is between tasks"
        pool.reap()
        assert len(pool.spares) == 1 and pool.spares[0] is not first
        assert pool.get(key, limits, grants(patients[1]), None) is first
        reply = first.compute(request(first, get_model("stats", "1.0.0").start(PARAMS).round_input))
        assert reply["ok"], reply
        other = RuntimeKey("job_2", "patients", "digest", frozenset({"bmi"}))
        second = pool.get(other, limits, grants(patients[1]), None)
        assert second is not first
        for closer in pool._closers:
            closer.join(timeout=30)
        assert not first._folder.exists(), "the oldest runtime is closed when the pool is full"
    finally:
        pool.close_all()
    assert not second._folder.exists()
    assert runner.started == 2


@pytest.mark.parametrize("spares", [0, 2])
def test_the_pool_keeps_as_many_spares_as_the_site_says_booted_only_once_reaped(
    runner: CountingRunner, spares: int
) -> None:
    pool = RuntimePool(
        runner, max_result_bytes=1 << 20, spare_limits=SandboxLimits(wall_seconds=60), spares=spares
    )
    try:
        assert runner.started == 0, "no spare boots before the gateway is connected"
        pool.reap()
        assert len(pool.spares) == spares
        pool.reap()
        assert runner.started == spares, "live spares are kept, not booted again"
    finally:
        pool.close_all()
