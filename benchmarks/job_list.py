"""How long `GET /api/v1/jobs` takes to serve a page deep in a long job list: the cursor page (what the
API does: `created_at, id` after the cursor, on the `(created_at, id)` index) next to the same page by
OFFSET, the baseline, measured in the same run on the same database.

    .venv/bin/python benchmarks/job_list.py [--jobs 200000] [--page 50] [--repeat 5]
        [--database-url URL] [--keep]

Fills an orchestrator database (SQLite in the work folder, or `--database-url`, e.g. an empty
PostgreSQL database) with `--jobs` jobs of one researcher, one second apart, then times, as that
researcher (`list_jobs`, the service behind the route): the first page, and the page that starts
90 % down the list, by cursor and by OFFSET. Checks that both give the same jobs. The last line is
the medians as JSON.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from deployment import describe_load, load_average, median, print_json_figures, work_folder
from sqlalchemy import insert, select, text

from custos.core.identity import Identity, Role
from custos.core.states import JobState, SpecState
from custos.orchestrator.db import Database, migrate
from custos.orchestrator.services.job_list import JobFilter, encode_cursor, list_jobs
from custos.orchestrator.tables import ComputeSpec, Job

ALICE = Identity("alice", "university", Role.LEAD_RESEARCHER)
START = datetime(2026, 1, 1, tzinfo=UTC)


def fill(db: Database, jobs: int) -> None:
    with db.session() as session:
        session.add(
            ComputeSpec(
                id="spec_bench", name="bench", model="stats@1.0.0", datasets=["site-a/patients"],
                columns=["age"], resources={}, state=SpecState.ACTIVE, reason=None, owner="alice",
                org="university", owner_role="lead_researcher", created_at=START, updated_at=START,
            )
        )  # fmt: skip
    rows = [
        {
            "id": f"job_{i:016x}",
            "spec_id": "spec_bench",
            "model": "stats@1.0.0",
            "params": {},
            "state": JobState.SUCCEEDED,
            "round": 0,
            "model_state": {},
            "min_count": 10,
            "reason": None,
            "submitter": "alice",
            "org": "university",
            "role": "lead_researcher",
            "created_at": START + timedelta(seconds=i),
            "finished_at": START + timedelta(seconds=i + 1),
        }
        for i in range(jobs)
    ]
    for first in range(0, jobs, 10_000):
        with db.session() as session:
            session.execute(insert(Job), rows[first : first + 10_000])
    with db.session() as session:  # the planner's statistics, as autovacuum would gather them
        session.execute(text("ANALYZE jobs" if db.engine.dialect.name == "postgresql" else "ANALYZE"))


def _job(i: int) -> dict[str, object]:
    return {
        "id": f"job_{i:016x}", "spec_id": "spec_bench", "model": "stats@1.0.0", "params": {},
        "state": JobState.SUCCEEDED, "round": 0, "model_state": {}, "min_count": 10, "reason": None,
        "submitter": "alice", "org": "university", "role": "lead_researcher",
        "created_at": START + timedelta(seconds=i), "finished_at": START + timedelta(seconds=i + 1),
    }  # fmt: skip


def timed(repeat: int, run: Callable[[], list[str]]) -> tuple[float, list[str]]:
    times, answers = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        answers.append(run())
        times.append(time.perf_counter() - start)
    assert all(a == answers[0] for a in answers)
    return median(times), answers[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    with work_folder("custos-job-list-", keep=args.keep) as work:
        db = Database(args.database_url or f"sqlite:///{work / 'orchestrator.db'}")
        migrate(db.engine)
        fill(db, args.jobs)
        print(f"{args.jobs:,} jobs on {db.engine.dialect.name}; {describe_load(load_average())}")
        depth = int(args.jobs * 0.9)
        with db.session() as session:
            newest_first = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
            before = session.execute(newest_first.offset(depth - 1).limit(1)).scalar_one()
            cursor = encode_cursor(before)

        def page(where: JobFilter) -> list[str]:
            with db.session() as session:
                return [j.id for j in list_jobs(session, ALICE, where).jobs]

        def by_offset() -> list[str]:
            with db.session() as session:
                query = newest_first.where(Job.submitter == "alice").offset(depth).limit(args.page)
                return [j.id for j in session.execute(query).scalars()]

        first_s, _ = timed(args.repeat, lambda: page(JobFilter(limit=args.page)))
        cursor_s, by_cursor = timed(args.repeat, lambda: page(JobFilter(limit=args.page, cursor=cursor)))
        offset_s, offset_ids = timed(args.repeat, by_offset)
        assert by_cursor == offset_ids, "the cursor page and the OFFSET page differ"
        print(f"first page: {first_s * 1000:.1f} ms")
        print(f"page at 90 %: by cursor {cursor_s * 1000:.1f} ms, by OFFSET {offset_s * 1000:.1f} ms "
              f"(cursor / OFFSET = {cursor_s / offset_s:.2f})")  # fmt: skip
        db.dispose()
        figures = {"jobs": args.jobs, "dialect": db.engine.dialect.name}
        figures |= {"first_page_ms": round(first_s * 1000, 2), "cursor_page_ms": round(cursor_s * 1000, 2)}
        figures |= {
            "offset_page_ms": round(offset_s * 1000, 2),
            "cursor_over_offset": round(cursor_s / offset_s, 3),
        }
        print_json_figures(figures | {"load_1min": load_average()[0]})


if __name__ == "__main__":
    main()
