"""The budget ledger: reserve, commit, caps, idempotent retries, lineage, concurrency and crashes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from custos.core.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from custos.privacy import BudgetCaps, BudgetExhausted, BudgetLedger, PrivacyCost, content_lineage

CAPS = BudgetCaps(
    epsilon_per_researcher=1.0, epsilon_per_org=3.0, delta_per_researcher=1e-5, delta_per_org=1e-4
)
LINEAGE = "sha256:" + "ab" * 32
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class SteppingClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        current = self.now
        self.now += timedelta(seconds=1)
        return current


def reserve(ledger: BudgetLedger, job: str, epsilon: float, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "lineage": LINEAGE,
        "dataset": "site-a/cohort",
        "researcher": "alice",
        "org": "university",
        "epsilon": epsilon,
        "delta": 0.0,
        "caps": CAPS,
        "job_id": job,
    }
    return ledger.reserve(**(args | kw))


def test_reserve_then_commit_is_recorded_and_spent(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db", clock=SteppingClock())

    reservation = reserve(ledger, "job_1", 0.25, delta=1e-6)
    assert reservation.state == "reserved" and reservation.reserved_at == T0
    assert ledger.spent(LINEAGE) == PrivacyCost(0.25, 1e-6)  # spent from the moment it is reserved

    committed = ledger.commit(reservation.id)

    assert committed.state == "committed" and committed.committed_at == T0 + timedelta(seconds=1)
    assert ledger.commit(reservation.id) == committed  # committing twice changes nothing
    assert ledger.spent(LINEAGE) == PrivacyCost(0.25, 1e-6)
    assert ledger.spent(LINEAGE, researcher="ALICE") == PrivacyCost(0.25, 1e-6)
    assert ledger.spent(LINEAGE, researcher="bob") == PrivacyCost(0.0, 0.0)
    assert ledger.spent(LINEAGE, org="university") == PrivacyCost(0.25, 1e-6)
    assert [r.id for r in ledger.history(LINEAGE)] == [reservation.id]
    assert ledger.get(reservation.id) == committed


def test_an_exhausted_budget_is_refused_with_spent_requested_and_cap(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    reserve(ledger, "job_1", 0.9)

    with pytest.raises(BudgetExhausted) as refused:
        reserve(ledger, "job_2", 0.2)

    assert str(refused.value) == (
        "privacy budget for researcher alice on site-a/cohort: spent ε=0.9 of 1; this job needs ε=0.2"
    )
    assert isinstance(refused.value, PolicyDenied) and refused.value.status == 403
    assert (refused.value.spent, refused.value.requested, refused.value.cap) == (0.9, 0.2, 1.0)
    assert ledger.spent(LINEAGE) == PrivacyCost(0.9, 0.0)  # the refusal spent nothing
    assert len(ledger.history(LINEAGE)) == 1


def test_the_delta_cap_is_enforced_too(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    reserve(ledger, "job_1", 0.1, delta=8e-6)

    with pytest.raises(BudgetExhausted, match=r"spent δ=8e-06 of 1e-05; this job needs δ=3e-06"):
        reserve(ledger, "job_2", 0.1, delta=3e-6)


def test_researchers_of_one_org_share_the_org_cap(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    for i, who in enumerate(["alice", "bob", "carol"]):
        reserve(ledger, f"job_{i}", 1.0, researcher=who)

    with pytest.raises(BudgetExhausted, match="organisation university on site-a/cohort: spent ε=3 of 3"):
        reserve(ledger, "job_9", 0.5, researcher="dave")
    reserve(ledger, "job_10", 0.5, researcher="erin", org="hospital")  # another org has its own budget


def test_a_researcher_is_one_budget_whatever_the_case_of_their_name(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    reserve(ledger, "job_1", 0.6, researcher="Alice")

    with pytest.raises(BudgetExhausted):
        reserve(ledger, "job_2", 0.6, researcher="alice")


def test_decimal_amounts_fill_a_cap_exactly(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    for i in range(10):
        reserve(ledger, f"job_{i}", 0.1)  # 0.1 ten times is 0.9999999999999999 in floats, 1 here

    assert ledger.spent(LINEAGE).epsilon == 1.0
    with pytest.raises(BudgetExhausted, match="spent ε=1 of 1"):
        reserve(ledger, "job_10", 1e-9)


def test_a_retried_reservation_of_the_same_job_is_not_charged_twice(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    first = reserve(ledger, "job_1/round-0", 0.4)

    again = reserve(ledger, "job_1/round-0", 0.4)

    assert again == first
    assert ledger.spent(LINEAGE).epsilon == 0.4
    with pytest.raises(Conflict, match="a retry must ask for the same"):
        reserve(ledger, "job_1/round-0", 0.5)
    ledger.commit(first.id)
    with pytest.raises(Conflict, match="re-sent from the gateway's journal"):
        reserve(ledger, "job_1/round-0", 0.4)
    reserve(ledger, "job_1/round-1", 0.4)  # the next round of the job is a new charge
    assert ledger.spent(LINEAGE).epsilon == 0.8


def test_bad_amounts_and_unknown_reservations_are_refused(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")

    with pytest.raises(InvalidInput, match="epsilon must be a positive number"):
        reserve(ledger, "job_1", 0.0)
    with pytest.raises(InvalidInput, match="delta must be a number >= 0"):
        reserve(ledger, "job_1", 0.1, delta=float("nan"))
    with pytest.raises(InvalidInput, match="researcher must not be empty"):
        reserve(ledger, "job_1", 0.1, researcher=" ")
    with pytest.raises(NotFound, match="no budget reservation 'rsv_missing'"):
        ledger.commit("rsv_missing")


def test_remaining_is_the_tighter_of_researcher_and_org(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    reserve(ledger, "job_1", 0.25, researcher="alice")
    reserve(ledger, "job_2", 1.0, researcher="bob")
    reserve(ledger, "job_3", 1.0, researcher="carol")

    assert ledger.remaining(LINEAGE, "alice", "university", CAPS).epsilon == pytest.approx(0.75)
    assert ledger.remaining(LINEAGE, "dave", "university", CAPS).epsilon == pytest.approx(0.75)
    assert ledger.remaining(LINEAGE, "bob", "university", CAPS).epsilon == 0.0


def test_the_ledger_refuses_deletes_and_edits_of_amounts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = BudgetLedger(path)
    rid = reserve(ledger, "job_1", 0.5).id

    with sqlite3.connect(path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM reservations")
        with pytest.raises(sqlite3.IntegrityError, match="only move from reserved to committed"):
            db.execute("UPDATE reservations SET epsilon = '0.1' WHERE id = ?", (rid,))
    assert ledger.spent(LINEAGE).epsilon == 0.5


def test_the_ledger_survives_reopening(tmp_path: Path) -> None:
    reserve(BudgetLedger(tmp_path / "ledger.db"), "job_1", 0.7)

    assert BudgetLedger(tmp_path / "ledger.db").spent(LINEAGE).epsilon == 0.7


# --- lineage ------------------------------------------------------------------------------------------


def test_the_same_bytes_registered_under_two_names_share_one_budget(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, copy = tmp_path / "a" / "cohort.csv", tmp_path / "b" / "cohort-copy.csv"
    first.write_bytes(b"age,sex\n41,F\n37,M\n")
    copy.write_bytes(first.read_bytes())
    ledger = BudgetLedger(tmp_path / "ledger.db")
    reserve(ledger, "job_1", 0.8, lineage=content_lineage(first), dataset="site-a/cohort")

    with pytest.raises(BudgetExhausted, match=r"on site-a/cohort-again: spent ε=0\.8 of 1"):
        reserve(ledger, "job_2", 0.8, lineage=content_lineage(copy), dataset="site-a/cohort-again")


def test_content_lineage_of_files_and_directories(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b"x\n1\n")
    one = tmp_path / "one"
    one.mkdir()
    (one / "part-0.csv").write_bytes(b"x\n1\n")
    parts = tmp_path / "parts"
    (parts / "nested").mkdir(parents=True)
    (parts / "p0.parquet").write_bytes(b"first")
    (parts / "nested" / "p1.parquet").write_bytes(b"second")
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / "z.parquet").write_bytes(b"first")
    (renamed / "a.parquet").write_bytes(b"second")

    lineage = content_lineage(data)
    assert lineage == "sha256:" + hashlib.sha256(b"x\n1\n").hexdigest()
    assert content_lineage(one) == lineage  # a directory of one file is that file
    assert content_lineage(parts) == content_lineage(renamed)  # names and layout do not matter
    (renamed / "a.parquet").write_bytes(b"second!")
    assert content_lineage(parts) != content_lineage(renamed)  # bytes do
    with pytest.raises(NotFound):
        content_lineage(tmp_path / "missing.csv")


def test_linked_lineages_are_one_budget_in_every_direction(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    old, rows, csv, other = "sha256:" + "01" * 32, "rows-v1:" + "02" * 32, "sha256:" + "03" * 32, LINEAGE
    reserve(ledger, "job_old", 0.5, lineage=old)
    ledger.link(rows, old)
    ledger.link(rows, csv)

    for lineage in (old, rows, csv):
        assert ledger.spent(lineage, researcher="alice").epsilon == 0.5
        assert ledger.linked(lineage) == sorted([old, rows, csv])
    assert ledger.spent(other).epsilon == 0.0
    reserve(ledger, "job_new", 0.5, lineage=csv)
    with pytest.raises(BudgetExhausted, match=r"spent ε=1 of 1"):
        reserve(ledger, "job_more", 0.1, lineage=old)
    assert [r.job_id for r in ledger.history(rows)] == ["job_old", "job_new"]


def test_a_retry_finds_its_reservation_under_a_linked_lineage(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    old, rows = "sha256:" + "01" * 32, "rows-v1:" + "02" * 32
    first = reserve(ledger, "job_1/round-0", 0.4, lineage=old)
    ledger.link(rows, old)

    assert reserve(ledger, "job_1/round-0", 0.4, lineage=rows) == first
    assert ledger.spent(rows).epsilon == 0.4


def test_links_are_idempotent_and_cannot_be_removed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = BudgetLedger(path)
    ledger.link("rows-v1:a", "sha256:b", "sha256:b", "rows-v1:a")
    ledger.link("sha256:b", "rows-v1:a")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lineage_links").fetchone() == (1,)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM lineage_links")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE lineage_links SET alias = 'sha256:c'")
    with pytest.raises(InvalidInput, match="alias must not be empty"):
        ledger.link("rows-v1:a", " ")


def test_a_ledger_of_an_earlier_release_gets_the_links_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    reserve(BudgetLedger(path), "job_1", 0.3)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE lineage_links")  # as a ledger written before links existed

    reopened = BudgetLedger(path)
    reopened.link("rows-v1:" + "cd" * 32, LINEAGE)
    assert reopened.spent("rows-v1:" + "cd" * 32).epsilon == 0.3


# --- concurrency and crashes ---------------------------------------------------------------------------


def _reserve_in_process(path: str, job: str, start: Any, results: Any) -> None:
    ledger = BudgetLedger(Path(path))
    start.wait(timeout=120)
    try:
        reserve(ledger, job, 0.1)
        results.put((job, "reserved"))
    except BudgetExhausted:
        results.put((job, "refused"))


def test_twenty_processes_each_within_the_remaining_budget_never_pass_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = BudgetLedger(path)
    reserve(ledger, "earlier", 0.7)  # 0.3 left: each 0.1 fits alone, three fit together
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(20), context.Queue()
    workers = [
        context.Process(target=_reserve_in_process, args=(str(path), f"job_{n}", start, results))
        for n in range(20)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    assert sorted(state for _, state in outcomes).count("reserved") == 3
    assert ledger.spent(LINEAGE).epsilon == 1.0
    assert len(ledger.history(LINEAGE)) == 4


def _reserve_then_hang(path: str, reserved: Any) -> None:
    reservation = reserve(BudgetLedger(Path(path)), "job_crash", 0.6)
    reserved.put(reservation.id)
    time.sleep(120)  # "running the computation" until killed


def test_a_crash_after_reserving_keeps_the_budget_spent(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    context = multiprocessing.get_context("spawn")
    reserved = context.Queue()
    child = context.Process(target=_reserve_then_hang, args=(str(path), reserved))
    child.start()
    rid = reserved.get(timeout=120)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL

    ledger = BudgetLedger(path)  # as the gateway finds it after a restart

    assert ledger.get(rid).state == "reserved"
    assert ledger.spent(LINEAGE).epsilon == 0.6
    with pytest.raises(BudgetExhausted, match=r"spent ε=0\.6 of 1"):
        reserve(ledger, "job_after", 0.5)
