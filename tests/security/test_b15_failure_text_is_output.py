"""B15: failure text is output. Approved custom code that reads `age` and raises an exception whose
message spells the ages as words, through a real gateway and the job's long-lived runtime: the
researcher's status (SDK and CLI) shows the category, the class and the line of their own code only;
the message is in the gateway's log and reaches the researcher only after a custodian releases it. A
forged reply (a class named at run time, a line the code does not have) shows nothing of it either.
On mock data everything is shown. A DAL error, as the sandboxed code sees it and as it reaches the
researcher, names no path of the gateway.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from tests.security.conftest import CAPPED_DATASET, CAPPED_GATEWAY

from custos.core.errors import Conflict
from custos.data.synthetic import synthetic_patients

pytestmark = pytest.mark.integration

ADMIN = "admin@hospital-a"
DIGIT_WORDS = re.compile(r"\b(zero|one|two|three|four|five|six|seven|eight|nine)\b")
KEPT = "(the message is in the gateway's log; a custodian may release it)"


def spell_ages(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    ages = dal.read(datasets[0], ["age"]).column("age").to_pylist()[:20]
    spelled = " next ".join(" ".join(words[int(d)] for d in str(age)) for age in ages)
    raise ValueError("checkpoint " + spelled)


def forges_its_reply(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import __main__  # the runtime, which the code shares its process with

    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    age = dal.read(datasets[0], ["age"]).column("age").to_pylist()[0]
    spelled = "_".join(words[int(d)] for d in str(age))

    def forged(exc: Exception) -> dict[str, Any]:
        return {
            "type": f"Age_{spelled}",
            "message": spelled,
            "log": spelled,
            "where": {"file": f"<custom:{spelled}>", "line": 3},
        }

    __main__._error = forged
    raise type(f"Age_{spelled}", (ValueError,), {})(spelled)


def reads_with_a_bad_filter(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    from custos.core.dal_wire import Filter

    return dal.read(datasets[0], ["age"], [Filter(column="age", op=">", value="old")])


def dal_errors_seen_inside(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import json

    import pyarrow.flight as flight

    bad_filter = {"column": "age", "op": ">", "value": "old"}
    tickets = [
        b"not a ticket",
        json.dumps(
            {"token": dal._token, "dataset": datasets[0], "columns": ["age"], "filters": [bad_filter]}
        ),
        json.dumps({"token": dal._token, "dataset": datasets[0], "columns": ["bmi"]}),
    ]
    seen = []
    for ticket in tickets:
        raw = ticket if isinstance(ticket, bytes) else ticket.encode()
        try:
            dal._client.do_get(flight.Ticket(raw)).read_all()
        except Exception as exc:  # what the DAL answers, as raw as the sandbox gets it
            seen.append(f"{type(exc).__name__}: {exc} {getattr(exc, 'extra_info', b'')!r}")
    return {"seen": seen}


def line_of(fn: Callable[..., Any], needle: str) -> tuple[int, str]:
    """The number and text of the line of `fn`'s source (as submitted) that holds `needle`."""
    lines = inspect.getsource(fn).splitlines()
    number = next(i for i, line in enumerate(lines, 1) if needle in line)
    return number, lines[number - 1].strip()


def custos(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    return subprocess.run(
        [sys.executable, "-m", "custos.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spelled_first_ages() -> str:
    ages = synthetic_patients(2_000, site=0, seed=11).column("age").to_pylist()[:20]
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return " next ".join(" ".join(words[int(d)] for d in str(age)) for age in ages)


def test_b15_spelled_digits_leave_only_when_a_custodian_releases_the_log(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(spell_ages)
    number, text = line_of(spell_ages, "raise ValueError")
    expected = f"code error: ValueError at <custom:spell_ages> line {number}: {text} {KEPT}"

    with capped_cluster.client("alice") as alice:
        with pytest.raises(Conflict) as failed:
            alice.wait_job(job_id, timeout=180)
        job = alice.job(job_id)
        assert alice.job_logs(job_id) == []
    (error,) = [t.error for t in job.tasks if t.error]
    assert error == expected
    assert job.reason == f"{CAPPED_GATEWAY} failed: {expected}"
    seen_by_sdk = str(failed.value) + json.dumps(job.model_dump(mode="json"))
    assert not DIGIT_WORDS.search(seen_by_sdk), seen_by_sdk
    alice_kit = str(capped_cluster.kit_dir("alice"))
    status = custos("job", "status", job_id, "--kit", alice_kit)
    assert status.returncode == 0, status.stderr
    assert "code error: ValueError at <custom:spell_ages>" in status.stdout
    assert not DIGIT_WORDS.search(status.stdout), status.stdout

    # The message is in the gateway's log, for its custodian.
    state = str(capped_cluster.work_dir / "state" / CAPPED_GATEWAY)
    shown = custos("gateway", "log", "show", "--state", state, "--job", job_id)
    assert shown.returncode == 0, shown.stderr
    assert f"ValueError: checkpoint {spelled_first_ages()}" in shown.stdout

    # Released by a custodian, it reaches the researcher.
    admin_kit = str(capped_cluster.kit_dir(ADMIN))
    released = custos("gateway", "log", "release", "--kit", admin_kit, "--state", state, "--job", job_id)
    assert released.returncode == 0, released.stderr
    with capped_cluster.client("alice") as alice:
        (log,) = alice.job_logs(job_id)
    assert f"ValueError: checkpoint {spelled_first_ages()}" in log.log
    assert "/work" not in log.log and str(capped_cluster.work_dir) not in log.log


def test_b15_a_forged_reply_shows_no_class_or_line_the_code_does_not_have(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(forges_its_reply)

    with capped_cluster.client("alice") as alice:
        with pytest.raises(Conflict):
            alice.wait_job(job_id, timeout=180)
        job = alice.job(job_id)
    (error,) = [t.error for t in job.tasks if t.error]
    assert error == f"code error: Exception {KEPT}"
    assert not DIGIT_WORDS.search(json.dumps(job.model_dump(mode="json")))


def test_b15_on_mock_data_everything_is_shown(capped_cluster: Any) -> None:
    with (
        capped_cluster.client("alice") as alice,
        pytest.raises(ValueError, match=r"^checkpoint (\w+ ?)+$") as raised,
    ):
        alice.run_on_mock(spell_ages, [CAPPED_DATASET])
    assert DIGIT_WORDS.search(str(raised.value))


def test_b15_a_dal_error_names_no_gateway_path_inside_the_sandbox_or_at_the_researcher(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    gateway_paths = re.compile(
        r"/work|/home|/usr|site-packages|\.py\b|Traceback|" + re.escape(str(capped_cluster.work_dir))
    )
    failing = run_approved(reads_with_a_bad_filter, "table")
    probing = run_approved(dal_errors_seen_inside)
    number, text = line_of(reads_with_a_bad_filter, "return dal.read")

    with capped_cluster.client("alice") as alice, capped_cluster.client(ADMIN) as admin:
        with pytest.raises(Conflict):
            alice.wait_job(failing, timeout=180)
        (error,) = [t.error for t in alice.job(failing).tasks if t.error]
        assert (
            error
            == f"data error: InvalidInput at <custom:reads_with_a_bad_filter> line {number}: {text} {KEPT}"
        )

        assert alice.wait_job(probing, timeout=180).state == "awaiting_release"
        held = next(r for r in admin.releases() if r.job_id == probing)
        admin.approve_release(held.id, "the DAL's error texts")
        seen = alice.code_result(probing)[CAPPED_DATASET]["seen"]
    assert len(seen) == 3
    assert "not a valid DAL ticket" in seen[0]
    assert "value 'old' is not a number" in seen[1]
    assert "column(s) bmi of dataset patients_code are not granted" in seen[2]
    for answer in seen:
        assert not gateway_paths.search(answer), answer

    # The released log of the failed read names no gateway path either.
    state = str(capped_cluster.work_dir / "state" / CAPPED_GATEWAY)
    admin_kit = str(capped_cluster.kit_dir(ADMIN))
    released = custos("gateway", "log", "release", "--kit", admin_kit, "--state", state, "--job", failing)
    assert released.returncode == 0, released.stderr
    with capped_cluster.client("alice") as alice:
        (log,) = alice.job_logs(failing)
    assert "InvalidInput: filter on column 'age': value 'old' is not a number" in log.log
    assert str(capped_cluster.work_dir) not in log.log and "site-packages" not in log.log
