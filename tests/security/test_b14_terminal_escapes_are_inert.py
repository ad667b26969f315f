"""B14 (deception in what a reviewer reads): text that came from someone else reaches a person's
terminal inert, through a real orchestrator and real gateways, and the real `custos` command line.

A researcher submits custom code whose source hides a line behind `ESC[2K ESC[1G` (erase the line,
back to column one, print a harmless line over it) and turns text around with bidi overrides; its
output table hides a row behind `ESC[8m` (conceal) and a C1 CSI; a second function fails with an
exception whose message holds ESC and a bidi override. A custodian reads the source (`custos code
show`), the held output (`custos release show`), the full log (`custos gateway log show`) and the audit
trail (`custos audit show`); the researcher reads the job (`custos job status`). None of them gets a
raw control, format or bidi character; each sees it as a visible escape (`\\x1b`, `\\u202e`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from custos.core.errors import Conflict
from custos.core.wire import JobResult
from custos.local.cluster import Cluster
from custos.sdk import Result

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = pytest.mark.one_database

DATASET = "site-a/patients_code"
ADMIN_A = "admin@hospital-a"

# What a terminal or a text renderer acts on instead of showing: C0 (but newline and tab), DEL, C1,
# and the invisible format characters that reorder or hide text.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")

# Read the rows; a comment then erases the line and prints a harmless one over it, and a bidi
# override turns the rest of a comment around.
SOURCE = (
    "def overwrite(dal, datasets, params):\n"
    '    ages = dal.read(datasets[0], ["age"]).to_pandas()  # \x1b[2K\x1b[1G    ages = None\n'
    "    # reviewed: \u202e\u2066 nothing leaves \u2069\n"
    '    return {"\x1b[8mnotes": [\n'
    '        {"note": "shown", "n": int(ages["age"].count() > 0)},\n'
    '        {"note": "\x1b[8mconcealed row", "n": 2},\n'
    '        {"note": "\x9b8mC1 conceal", "n": 3},\n'
    '        {"note": "\u202eesrever", "n": 4},\n'
    "    ]}\n"
)
# The raw characters are in the string literal, so both the message and the line that raised hold them.
FAILING = (
    'def fail_loudly(dal, datasets, params):\n    raise ValueError("quiet \x1b[K\x1b[H ok \u202e detail")\n'
)
REVIEW_REASON = "looks fine \x1b[8mbut hidden"


@dataclass(frozen=True)
class Attack:
    """What the attack left behind: a held output, a failed job, the state folder of site-a."""

    cluster: Cluster
    request_id: str
    held_job: str
    release_id: str
    failed_job: str


def custos(*args: str) -> subprocess.CompletedProcess[str]:
    """The `custos` command line, as a person runs it, wide enough that no escape is folded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")} | {"COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-m", "custos.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def assert_inert(done: subprocess.CompletedProcess[str], *visible: str) -> None:
    """Nothing raw on stdout or stderr, and each of `visible` is there as printed."""
    for stream in (done.stdout, done.stderr):
        found = sorted({f"U+{ord(c):04X}" for c in RAW.findall(stream)})
        assert not found, f"raw {', '.join(found)} reached the terminal:\n{stream}"
    for text in visible:
        assert text in done.stdout, f"{text!r} is not shown:\n{done.stdout}"


@pytest.fixture(scope="module")
def attack(cluster: Cluster) -> Iterator[Attack]:
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        request = alice.submit(SOURCE, [DATASET], function="overwrite", output="json")
        admin.approve_code(request.id, REVIEW_REASON)
        held_job = alice.run_code(request.id).id
        assert alice.wait_job(held_job, timeout=120).state == "awaiting_release"
        release_id = next(r.id for r in admin.releases() if r.job_id == held_job)

        failing = alice.submit(FAILING, [DATASET], function="fail_loudly", output="json")
        admin.approve_code(failing.id)
        failed_job = alice.run_code(failing.id).id
        with pytest.raises(Conflict):
            alice.wait_job(failed_job, timeout=120)
    yield Attack(cluster, request.id, held_job, release_id, failed_job)


def kit(attack: Attack, name: str) -> str:
    return str(attack.cluster.kit_dir(name))


def test_b14_code_show_makes_an_overwritten_line_and_bidi_overrides_visible(attack: Attack) -> None:
    shown = custos("code", "show", attack.request_id, "--kit", kit(attack, ADMIN_A))
    assert_inert(
        shown,
        '["age"]).to_pandas()  # \\x1b[2K\\x1b[1G    ages = None',
        "# reviewed: \\u202e\\u2066 nothing leaves \\u2069",
        "looks fine \\x1b[8mbut hidden",
    )
    assert "the source holds 9 hidden characters" in shown.stdout


def test_b14_release_show_shows_a_concealed_row(attack: Attack) -> None:
    shown = custos("release", "show", attack.release_id, "--kit", kit(attack, ADMIN_A))
    assert_inert(shown, "\\x1b[8mconcealed row", "\\x9b8mC1 conceal", "\\u202eesrever")


def test_b14_an_exceptions_text_is_inert_in_the_job_the_log_and_the_audit_trail(attack: Attack) -> None:
    status = custos("job", "status", attack.failed_job, "--kit", kit(attack, "alice"))
    assert_inert(status, "\\x1b[K\\x1b[H ok \\u202e detail")

    state = attack.cluster.work_dir / "state"
    log = custos("gateway", "log", "show", "--state", str(state / "site-a"), "--job", attack.failed_job)
    assert_inert(log, "ValueError: quiet \\x1b[K\\x1b[H ok \\u202e detail")

    for trail in (state / "orchestrator" / "audit.log", state / "site-a" / "audit.log"):
        audit = custos("audit", "show", "--trail", str(trail), "--job", attack.failed_job)
        assert_inert(audit, "\\x1b[K\\x1b[H ok \\u202e detail")


def test_b14_the_sdks_views_of_a_held_output_and_a_failed_job_are_inert(attack: Attack) -> None:
    with attack.cluster.client("alice") as alice, attack.cluster.client(ADMIN_A) as admin:
        job = alice.job(attack.failed_job)
        held = admin.release(attack.release_id)
    result = Result(JobResult(job_id=held.job_id, model=held.model, result=held.result))
    for view in (repr(job), job._repr_html_(), repr(result), result._repr_html_()):
        assert not RAW.findall(view), view
    assert "\\x1b[K" in job._repr_html_()
    assert "\\x1b[8mconcealed row" in result._repr_html_()
    assert job.reason is not None and "\x1b[K" in job.reason  # the data itself is kept as it came
