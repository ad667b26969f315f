"""A custom code failure on real data, through real processes: the researcher sees only its category,
class and line of their code until a custodian of the gateway's org releases the full log, which the
gateway kept; then the researcher reads the full traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from custos.core.errors import Conflict, NotFound, PermissionDenied
from custos.local.cluster import Cluster

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = [pytest.mark.integration, pytest.mark.one_database]

DATASET = "site-a/patients_code"
ADMIN_A = "admin@hospital-a"
KEPT = "(the message is in the gateway's log; a custodian may release it)"


def fails_on_a_row(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    first = dal.read(datasets[0], ["patient_id", "bmi"]).to_pandas().iloc[0]
    raise ValueError(f"bad row {first['patient_id']!r} with bmi {first['bmi']}")


def custos(*args: str) -> subprocess.CompletedProcess[str]:
    """The `custos` command line, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    return subprocess.run(
        [sys.executable, "-m", "custos.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_full_log_of_a_failure_reaches_the_researcher_only_when_a_custodian_releases_it(
    cluster: Cluster,
) -> None:
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        request = alice.submit(fails_on_a_row, [DATASET], output="json")
        admin.approve_code(request.id, "reads two columns")
        job_id = alice.run_code(request.id).id
        line = "raise ValueError(f\"bad row {first['patient_id']!r} with bmi {first['bmi']}\")"
        shown = f"code error: ValueError at <custom:fails_on_a_row> line 3: {line} {KEPT}"
        with pytest.raises(Conflict, match=re.escape(shown)):
            alice.wait_job(job_id, timeout=120)
        assert alice.job_logs(job_id) == []
    alice_kit, admin_kit = str(cluster.kit_dir("alice")), str(cluster.kit_dir(ADMIN_A))
    state = str(cluster.work_dir / "state" / "site-a")

    before = custos("job", "log", job_id, "--kit", alice_kit)
    assert before.returncode == 1 and "Traceback" not in before.stderr
    assert before.stderr.strip() == (
        f"error: no log has been released for job {job_id}: its reason holds only the error's class and "
        "line; a custodian of the gateway's org may release the full log (`custos gateway log release`)"
    )

    shown = custos("gateway", "log", "show", "--state", state, "--job", job_id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"bad row 'a-\d+' with bmi \d", shown.stdout)  # the custodian reads what happened

    released = custos("gateway", "log", "release", "--kit", admin_kit, "--state", state, "--job", job_id)
    assert released.returncode == 0, released.stderr
    assert f"of job {job_id} at site-a/patients_code: ValueError" in released.stdout

    with cluster.client("alice") as alice:
        (log,) = alice.job_logs(job_id)
    assert (log.gateway, log.dataset, log.released_by) == ("site-a", "patients_code", ADMIN_A)
    assert log.log.startswith("Traceback (most recent call last):")
    assert "in fails_on_a_row" in log.log
    assert re.search(r"ValueError: bad row 'a-\d+' with bmi \d+\.?\d*\n?$", log.log)

    same = {"gateway": log.gateway, "task_id": log.task_id, "attempt": log.attempt, "log": log.log}
    with cluster.client(ADMIN_A) as admin:
        assert admin.release_log(job_id, **same) == log  # releasing it again changes nothing
    with cluster.client("admin@hospital-b") as other, pytest.raises(PermissionDenied):
        other.release_log(job_id, **same)
    with cluster.client("mallory") as mallory, pytest.raises(NotFound):
        mallory.job_logs(job_id)

    after = custos("job", "log", job_id, "--kit", alice_kit)
    assert after.returncode == 0, after.stderr
    assert log.log.rstrip("\n") in after.stdout
