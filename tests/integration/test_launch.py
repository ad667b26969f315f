"""`custos.launch()`: a developer's deployment, in a script and reloaded from its folder.

A script launches two gateways, runs a stats job through the handle's client and lands; the same
script run again brings the same deployment back (same dataset ids, the first run's job and result
kept, new processes since the old ones were landed). A launch on a folder whose deployment is still up
takes its processes over by PID, and starts again only those that are gone."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from custos.core.errors import CustosError, InvalidInput
from custos.data.synthetic import synthetic_patients
from custos.local.launch import launch
from custos.local.process import runs_as

ROWS = 200

SCRIPT = textwrap.dedent(
    """
    import json, sys

    import custos

    folder, step = sys.argv[1], sys.argv[2]
    dev = custos.launch(n_gateways=2, folder=folder, rows=ROWS)
    alice = dev.client("alice")
    out = {"reloaded": dev.reloaded, "url": dev.url, "pids": dev.pids()}
    out["dataset_ids"] = sorted(d.id for d in alice.datasets())
    if step == "first":
        spec = alice.create_spec("dev-stats", "stats@1.0.0", dev.datasets, ["age", "bmi"])
        alice.activate_spec(spec.id, timeout=120)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count", "mean"]})
        alice.wait_job(job.id, timeout=120)
    out["jobs"] = {j.id: str(j.state) for j in alice.jobs().jobs}
    out["results"] = {job_id: alice.job_result(job_id).data for job_id in out["jobs"]}
    dev.land()
    print(json.dumps(out, default=str))
    """
).replace("ROWS", str(ROWS))


def _run_script(script: Path, folder: Path, step: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(script), str(folder), step],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stderr}\n{_logs(folder)}"
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return out


def _logs(folder: Path) -> str:
    logs = sorted((folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else []
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)


def _recorded(folder: Path) -> dict[str, tuple[int, list[str]]]:
    raw = json.loads((folder / "processes.json").read_text(encoding="utf-8"))
    return {name: (entry["pid"], entry["argv"]) for name, entry in raw.items()}


def test_a_script_launches_runs_a_job_lands_and_a_second_launch_reloads_it(tmp_path: Path) -> None:
    script = tmp_path / "study.py"
    script.write_text(SCRIPT, encoding="utf-8")
    folder = tmp_path / "dev"

    first = _run_script(script, folder, "first")
    assert first["reloaded"] is False
    assert len(first["dataset_ids"]) == 2
    [(job_id, state)] = first["jobs"].items()
    assert state.endswith("succeeded"), state
    [age] = [r for r in first["results"][job_id]["summaries"] if r["column"] == "age" and r["group"] is None]
    ages = pa.concat_arrays(
        [synthetic_patients(ROWS, site=i, seed=2024)["age"].combine_chunks() for i in (0, 1)]
    )
    assert age["count"] == len(ages) - ages.null_count
    assert math.isclose(age["mean"], pc.mean(ages).as_py(), rel_tol=1e-9)
    # Landed: no process of the first run is left, and none is recorded.
    assert not (folder / "processes.json").exists()
    assert not any(os.path.exists(f"/proc/{pid}") and _is_ours(pid, folder) for pid in first["pids"].values())

    second = _run_script(script, folder, "second")
    assert second["reloaded"] is True
    assert second["url"] == first["url"]
    assert second["dataset_ids"] == first["dataset_ids"]
    assert second["jobs"] == first["jobs"]
    assert second["results"] == first["results"]
    assert set(second["pids"]) == {"orchestrator", "site-1", "site-2"}
    assert set(second["pids"].values()).isdisjoint(first["pids"].values())


def _is_ours(pid: int, folder: Path) -> bool:
    try:
        return str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_a_launch_takes_over_running_processes_and_restarts_those_gone(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    first = launch(2, folder=folder, rows=ROWS)
    handles = [first]
    try:
        pids = first.pids()
        assert set(pids) == {"orchestrator", "site-1", "site-2"}
        ids = sorted(d.id for d in first.client().datasets())

        # Launched again without landing (a notebook cell run twice): the same processes.
        second = launch(2, folder=folder, rows=ROWS)
        handles.append(second)
        assert second.reloaded
        assert second.pids() == pids
        assert sorted(d.id for d in second.client().datasets()) == ids

        # A gateway dies; the next launch starts it again and keeps the others.
        first.cluster.process("site-2").kill(10)
        third = launch(2, folder=folder, rows=ROWS)
        handles.append(third)
        now = third.pids()
        assert now["orchestrator"] == pids["orchestrator"]
        assert now["site-1"] == pids["site-1"]
        assert now["site-2"] != pids["site-2"]
        assert sorted(d.id for d in third.client().datasets()) == ids

        recorded = _recorded(folder)
        third.land()
        assert not any(runs_as(pid, argv) for pid, argv in recorded.values())
        assert not (folder / "processes.json").exists()
    finally:
        for handle in handles:
            handle.land()


def test_a_reload_with_another_number_of_gateways_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    dev = launch(1, folder=folder, rows=100)
    dev.land()
    with pytest.raises(InvalidInput, match="holds a deployment of 1 gateway"):
        launch(2, folder=folder, rows=100)


def test_a_first_launch_that_fails_leaves_the_folder_empty(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    with pytest.raises(CustosError, match="did not answer"):
        launch(1, folder=folder, rows=100, startup_timeout=0)
    assert list(folder.iterdir()) == []
    # And the folder takes a launch as a new one.
    launch(1, folder=folder, rows=100).land()
    assert (folder / "deployment.yaml").is_file()


def test_a_folder_that_is_not_a_deployment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"not empty and holds no deployment\.yaml"):
        launch(1, folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_custos_dev_stays_up_until_sigint_and_stops_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    stdout, stderr = tmp_path / "dev.out", tmp_path / "dev.err"
    argv = [
        sys.executable,
        "-m",
        "custos.cli",
        "dev",
        "--folder",
        str(folder),
        "--gateways",
        "1",
        "--rows",
        "100",
    ]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        _wait_for(stdout, "Ctrl-C stops the deployment.", process, 120)
        recorded = _recorded(folder)
        assert set(recorded) == {"orchestrator", "site-1"}
        assert all(runs_as(pid, argv) for pid, argv in recorded.values())
        text = stdout.read_text(encoding="utf-8")
        assert "Custos started: an orchestrator and 1 gateway(s)" in text
        assert "portal        https://127.0.0.1:" in text
        assert "alice" in text and "admin-1" in text
        assert "export CUSTOS_KIT=" in text

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    errors = stderr.read_text(encoding="utf-8")
    assert code == 0, errors
    assert "Traceback" not in errors
    assert "stopped; `custos dev" in errors
    assert not any(runs_as(pid, argv) for pid, argv in recorded.values())


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(encoding="utf-8", errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"`custos dev` did not print {text!r}: {path.read_text(errors='replace')}")
