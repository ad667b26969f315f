"""Jobs and specs the SDK returns: still their wire models, plus wait/result, a repr and notebook HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from custos.core.errors import Conflict, CustosError
from custos.core.states import JobState, SpecState
from custos.core.wire import JobPublic, SpecPublic
from custos.sdk import Job, Spec

from .conftest import ScriptedServer

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()


def spec_json(state: str) -> dict[str, Any]:
    return {
        "id": "spec_1",
        "name": "bmi <b>",
        "model": "stats@1.0.0",
        "datasets": ["site-a/patients"],
        "columns": ["age", "bmi"],
        "resources": {},
        "state": state,
        "reason": None,
        "owner": "alice",
        "org": "university",
        "created_at": NOW,
    }


def job_json(state: str, done: int = 1, reason: str | None = None) -> dict[str, Any]:
    tasks = [
        {
            "id": f"task_{i}",
            "gateway": f"site-{i}",
            "dataset": "patients",
            "kind": "compute",
            "round": 0,
            "state": "done" if i < done else "running",
            "attempt": 1,
            "error": None,
        }
        for i in range(2)
    ]
    return {
        "id": "job_1",
        "spec_id": "spec_1",
        "model": "stats@1.0.0",
        "state": state,
        "round": 0,
        "reason": reason,
        "submitter": "alice",
        "org": "university",
        "created_at": NOW,
        "finished_at": None,
        "tasks": tasks,
    }


def test_submit_job_returns_a_job_that_is_still_a_job_public(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/jobs", (201, job_json("queued", done=0)))
    with server.client() as client:
        job = client.submit_job("spec_1", {"columns": ["bmi"]})
    assert isinstance(job, Job)
    assert isinstance(job, JobPublic)
    assert job.model_dump() == JobPublic.model_validate(job_json("queued", done=0)).model_dump()
    assert JobPublic.model_validate_json(job.model_dump_json()).id == "job_1"


def test_job_wait_polls_until_done_and_returns_a_fresh_job(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/jobs", (201, job_json("queued", done=0)))
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("running")), (200, job_json("succeeded", 2)))
    server.reply(
        "GET",
        "/api/v1/jobs/job_1/result",
        (200, {"job_id": "job_1", "model": "stats@1.0.0", "result": {"n": 5}}),
    )
    with server.client() as client:
        job = client.submit_job("spec_1", {})
        finished = job.wait(progress=False)
        result = finished.result()
    assert job.state is JobState.QUEUED
    assert isinstance(finished, Job)
    assert finished.state is JobState.SUCCEEDED
    assert result["n"] == 5
    assert [r[:2] for r in server.requests].count(("GET", "/api/v1/jobs/job_1")) == 2


def test_job_wait_with_a_progress_bar_still_raises_the_failure(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("failed", reason="site-a: out of memory")))
    with server.client() as client:
        job = client.job("job_1")
        with pytest.raises(Conflict, match="site-a: out of memory"):
            job.wait(progress=True, timeout=5)


def test_an_unbound_job_says_how_to_get_a_bound_one() -> None:
    job = Job.model_validate(job_json("running"))
    with pytest.raises(CustosError, match=r"client.job\('job_1'\)"):
        job.wait()


def test_job_repr_and_html_show_state_and_tasks(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (200, job_json("running", done=1, reason="a <reason>")))
    with server.client() as client:
        job = client.job("job_1")
    assert repr(job) == "<Job job_1 stats@1.0.0 running round=0 tasks=1/2 done reason='a <reason>'>"
    page = job._repr_html_()
    assert "<b>job job_1</b>" in page
    assert "a &lt;reason&gt;" in page and "<reason>" not in page
    assert page.count("<td>site-") == 2


def test_spec_methods_go_through_the_client(server: ScriptedServer) -> None:
    server.reply("POST", "/api/v1/specs", (201, spec_json("created")))
    server.reply("POST", "/api/v1/specs/spec_1/activate", (200, spec_json("active")))
    server.reply("POST", "/api/v1/jobs", (201, job_json("queued", done=0)))
    with server.client() as client:
        spec = client.create_spec("bmi", "stats@1.0.0", ["site-a/patients"], ["age", "bmi"])
        active = spec.activate()
        job = active.submit({"columns": ["bmi"]})
    assert isinstance(spec, SpecPublic) and isinstance(spec, Spec)
    assert active.state is SpecState.ACTIVE
    assert isinstance(job, Job)
    assert server.requests[-1][2] == {"spec_id": "spec_1", "params": {"columns": ["bmi"]}}


def test_spec_repr_and_html(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/specs", (200, [spec_json("active")]))
    with server.client() as client:
        (spec,) = client.specs()
    assert repr(spec) == "<Spec spec_1 'bmi <b>' stats@1.0.0 active datasets=site-a/patients columns=age,bmi>"
    page = spec._repr_html_()
    assert "bmi &lt;b&gt;" in page
    assert "<td>alice (university)</td>" in page
