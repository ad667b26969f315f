"""The privacy budget ledger: the gateway's authoritative record of the ε and δ spent on its data.

- **Keyed by lineage**, not by dataset name: a lineage names the data itself. The gateway uses the
  fingerprint of a dataset's rows (`custos.data.fingerprint.row_lineage`), so the same rows registered
  again — under a new name, in another format, re-sorted, with renamed columns — share one budget.
- **Linked lineages are one budget.** `link` records that two lineages hold the same data (the gateway
  links a dataset's rows fingerprint to `content_lineage`, the digest of its file's bytes, under which
  earlier releases kept the ledger). Spending under any lineage of a linked group counts for all of
  them, so a ledger kept under the old key carries forward, and a change of one key while the other
  stays (a DuckDB upgrade changing the fingerprint of unchanged bytes) does not reset a budget. Links,
  like reservations, are never removed.
- **Reserve before running.** `reserve` checks the caps and records the cost in one SQLite write
  transaction (`BEGIN IMMEDIATE`), so reservations from any number of threads and processes serialise:
  together they can never pass a cap.
- **Spent from the moment it is reserved.** `commit` records that the computation ran. Nothing ever
  refunds a reservation, so a crash between reserve and commit leaves it spent ("reserved"). There is
  no cancel: the ledger cannot prove that a computation never started. The table refuses deletes and
  any update other than reserved -> committed.
- **Idempotent per (job_id, data).** A reserve repeated with the same job id and cost on a lineage of
  the same linked group (a task retried after a gateway restart) returns the first reservation instead
  of charging twice. A job that spends in several rounds passes one id per round, e.g.
  "job_1/round-2". A repeat after commit is refused: the result must come from the gateway's journal,
  not a second noisy run.
- **Exact sums.** Amounts are stored as the decimal text of the float asked for and added as
  decimals, so ten charges of 0.1 fill a cap of 1.0 exactly, no more and no less.
- **Durable.** WAL journal with synchronous=FULL: a reservation `reserve` returned survives a crash or a
  power cut.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from custos.core.clock import Clock, utcnow
from custos.core.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from custos.core.ids import new_id
from custos.privacy.controls import BudgetCaps, PrivacyCost

ReservationState = Literal["reserved", "committed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    lineage TEXT NOT NULL,
    dataset TEXT NOT NULL,
    researcher TEXT NOT NULL,
    researcher_key TEXT NOT NULL,
    org TEXT NOT NULL,
    org_key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    epsilon TEXT NOT NULL,
    delta TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'committed')),
    reserved_at TEXT NOT NULL,
    committed_at TEXT,
    UNIQUE (job_id, lineage)
);
CREATE INDEX IF NOT EXISTS reservations_researcher ON reservations (lineage, researcher_key);
CREATE INDEX IF NOT EXISTS reservations_org ON reservations (lineage, org_key);
CREATE TRIGGER IF NOT EXISTS reservations_keep BEFORE DELETE ON reservations
BEGIN
    SELECT RAISE(ABORT, 'the privacy budget ledger is append-only');
END;
CREATE TABLE IF NOT EXISTS lineage_links (
    lineage TEXT NOT NULL,
    alias TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (lineage, alias)
);
CREATE TRIGGER IF NOT EXISTS lineage_links_keep BEFORE DELETE ON lineage_links
BEGIN
    SELECT RAISE(ABORT, 'lineage links are append-only');
END;
CREATE TRIGGER IF NOT EXISTS lineage_links_fixed BEFORE UPDATE ON lineage_links
BEGIN
    SELECT RAISE(ABORT, 'lineage links are append-only');
END;
CREATE TRIGGER IF NOT EXISTS reservations_commit_only BEFORE UPDATE ON reservations
WHEN NOT (OLD.state = 'reserved' AND NEW.state = 'committed'
          AND NEW.id = OLD.id AND NEW.lineage = OLD.lineage AND NEW.researcher_key = OLD.researcher_key
          AND NEW.org_key = OLD.org_key AND NEW.job_id = OLD.job_id
          AND NEW.epsilon = OLD.epsilon AND NEW.delta = OLD.delta)
BEGIN
    SELECT RAISE(ABORT, 'a reservation can only move from reserved to committed');
END;
"""

_SELECT_BY_JOB = (
    "SELECT id, lineage, dataset, researcher, org, job_id, epsilon, delta, state, reserved_at, committed_at,"
    " researcher_key, org_key FROM reservations WHERE job_id = ? AND lineage IN ({lineages})"
)
_SELECT_BY_ID = (
    "SELECT id, lineage, dataset, researcher, org, job_id, epsilon, delta, state, reserved_at, committed_at"
    " FROM reservations WHERE id = ?"
)
_SELECT_BY_LINEAGE = (
    "SELECT id, lineage, dataset, researcher, org, job_id, epsilon, delta, state, reserved_at, committed_at"
    " FROM reservations WHERE lineage IN ({lineages}) ORDER BY seq"
)
_SELECT_AMOUNTS = (
    "SELECT epsilon, delta FROM reservations WHERE lineage IN ({lineages})"
    " AND (? IS NULL OR researcher_key = ?) AND (? IS NULL OR org_key = ?)"
)
# Every lineage linked to the one given, directly or through others (UNION stops at a cycle).
_SAME_DATA = """
WITH RECURSIVE same(lineage) AS (
    SELECT ?
    UNION
    SELECT CASE WHEN k.lineage = s.lineage THEN k.alias ELSE k.lineage END
    FROM lineage_links AS k JOIN same AS s ON s.lineage IN (k.lineage, k.alias)
)
SELECT lineage FROM same
"""


class BudgetExhausted(PolicyDenied):
    """A reservation would take a researcher or an organisation past a cap of the policy."""

    def __init__(self, message: str, *, spent: float, requested: float, cap: float) -> None:
        super().__init__(message)
        self.spent = spent
        self.requested = requested
        self.cap = cap


@dataclass(frozen=True)
class Reservation:
    """One charge on a lineage: spent from `reserved_at`; `committed_at` once its computation ran."""

    id: str
    lineage: str
    dataset: str
    researcher: str
    org: str
    job_id: str
    epsilon: float
    delta: float
    state: ReservationState
    reserved_at: datetime
    committed_at: datetime | None


def _amount(value: float, name: str, *, positive: bool) -> Decimal:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0) or number >= 1e6:
        accepted = "a positive number" if positive else "a number >= 0"
        raise InvalidInput(f"{name} must be {accepted} below 1e6, got {value!r}")
    return Decimal(repr(number))


def _show(value: Decimal) -> str:
    return f"{float(value):g}"


class BudgetLedger:
    """The ledger in one SQLite file. Each call opens its own connection, so one instance may be shared
    by threads, and any number of processes may open the same file."""

    def __init__(self, path: Path, *, clock: Clock = utcnow, busy_timeout_s: float = 60.0) -> None:
        self.path = path
        self._clock = clock
        self._timeout = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before the first read so that check-then-insert is atomic."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def reserve(
        self,
        *,
        lineage: str,
        dataset: str,
        researcher: str,
        org: str,
        epsilon: float,
        delta: float,
        caps: BudgetCaps,
        job_id: str,
    ) -> Reservation:
        """Debit (epsilon, delta) from the researcher's and the org's budget on `lineage`, or raise
        BudgetExhausted when either cap would be passed. See the module docstring for idempotency."""
        for name, value in (
            ("lineage", lineage),
            ("researcher", researcher),
            ("org", org),
            ("job_id", job_id),
        ):
            if not value.strip():
                raise InvalidInput(f"{name} must not be empty")
        eps = _amount(epsilon, "epsilon", positive=True)
        dlt = _amount(delta, "delta", positive=False)
        who, org_key = researcher.casefold(), org.casefold()
        with self._write() as db:
            same = _same_data(db, lineage)
            row = db.execute(_with_lineages(_SELECT_BY_JOB, same), (job_id, *same)).fetchone()
            if row is not None:
                return _repeat(row, who, org_key, eps, dlt)
            checks = (
                (
                    f"researcher {researcher}",
                    who,
                    None,
                    caps.epsilon_per_researcher,
                    caps.delta_per_researcher,
                ),
                (f"organisation {org}", None, org_key, caps.epsilon_per_org, caps.delta_per_org),
            )
            for label, by_researcher, by_org, epsilon_cap, delta_cap in checks:
                spent = _amounts(db, same, by_researcher, by_org)
                for symbol, used, need, cap in (
                    ("ε", spent[0], eps, epsilon_cap),
                    ("δ", spent[1], dlt, delta_cap),
                ):
                    limit = Decimal(repr(float(cap)))
                    if need > 0 and used + need > limit:
                        raise BudgetExhausted(
                            f"privacy budget for {label} on {dataset}: spent {symbol}={_show(used)} of "
                            f"{_show(limit)}; this job needs {symbol}={_show(need)}",
                            spent=float(used),
                            requested=float(need),
                            cap=float(limit),
                        )
            reservation = Reservation(
                new_id("rsv"), lineage, dataset, researcher, org, job_id,
                float(eps), float(dlt), "reserved", self._clock(), None,
            )  # fmt: skip
            db.execute(
                "INSERT INTO reservations (id, lineage, dataset, researcher, researcher_key, org, org_key,"
                " job_id, epsilon, delta, state, reserved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reservation.id, lineage, dataset, researcher, who, org, org_key, job_id,
                    str(eps), str(dlt), "reserved", reservation.reserved_at.isoformat(),
                ),
            )  # fmt: skip
            return reservation

    def commit(self, reservation_id: str) -> Reservation:
        """Record that the reserved computation ran. Committing twice is harmless."""
        with self._write() as db:
            db.execute(
                "UPDATE reservations SET state = 'committed', committed_at = ? "
                "WHERE id = ? AND state = 'reserved'",
                (self._clock().isoformat(), reservation_id),
            )
            return _get(db, reservation_id)

    def get(self, reservation_id: str) -> Reservation:
        with self._connect() as db:
            return _get(db, reservation_id)

    def spent(self, lineage: str, researcher: str | None = None, org: str | None = None) -> PrivacyCost:
        """What has been spent (reserved or committed) on `lineage`: by everyone, or only by the
        researcher and/or the organisation named."""
        who = researcher.casefold() if researcher is not None else None
        org_key = org.casefold() if org is not None else None
        with self._connect() as db:
            epsilon, delta = _amounts(db, _same_data(db, lineage), who, org_key)
        return PrivacyCost(float(epsilon), float(delta))

    def remaining(self, lineage: str, researcher: str, org: str, caps: BudgetCaps) -> PrivacyCost:
        """What the researcher may still spend on `lineage`: the tighter of their own and their org's."""
        mine, ours = self.spent(lineage, researcher=researcher), self.spent(lineage, org=org)
        epsilon = min(caps.epsilon_per_researcher - mine.epsilon, caps.epsilon_per_org - ours.epsilon)
        delta = min(caps.delta_per_researcher - mine.delta, caps.delta_per_org - ours.delta)
        return PrivacyCost(max(epsilon, 0.0), max(delta, 0.0))

    def history(self, lineage: str) -> list[Reservation]:
        """Every reservation on `lineage` and the lineages linked to it, oldest first."""
        with self._connect() as db:
            same = _same_data(db, lineage)
            return [_reservation(row) for row in db.execute(_with_lineages(_SELECT_BY_LINEAGE, same), same)]

    def head(self) -> int:
        """The ledger's head: the sequence number of its newest reservation, 0 when it has none. It
        only grows (reservations are never removed), so a report of it orders reports of the ledger."""
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM reservations").fetchone()
        return int(row[0])

    def totals(self, lineage: str) -> list[tuple[str, str, float, float]]:
        """What each researcher has spent (reserved or committed) on `lineage` and the lineages linked
        to it: (researcher, org, ε, δ), summed exactly, by researcher name."""
        with self._connect() as db:
            same = _same_data(db, lineage)
            sql = _with_lineages(
                "SELECT researcher_key, researcher, org, epsilon, delta FROM reservations"
                " WHERE lineage IN ({lineages}) ORDER BY seq",
                same,
            )
            sums: dict[str, tuple[str, str, Decimal, Decimal]] = {}
            for key, researcher, org, eps, dlt in db.execute(sql, same):
                name, org_name, e, d = sums.get(key, (researcher, org, Decimal(0), Decimal(0)))
                sums[key] = (name, org_name, e + Decimal(eps), d + Decimal(dlt))
        return [(name, org, float(e), float(d)) for name, org, e, d in sums.values()]

    def link(self, lineage: str, *aliases: str) -> None:
        """Record that each of `aliases` holds the same data as `lineage`: from now on what was spent
        under any lineage of the linked group counts for all of them. Linking again is harmless, and
        no link is ever removed."""
        for name, value in (("lineage", lineage), *(("alias", a) for a in aliases)):
            if not value.strip():
                raise InvalidInput(f"{name} must not be empty")
        pairs = [tuple(sorted((lineage, alias))) for alias in aliases if alias != lineage]
        if not pairs:
            return
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO lineage_links (lineage, alias, linked_at) VALUES (?, ?, ?)",
                [(a, b, self._clock().isoformat()) for a, b in pairs],
            )

    def linked(self, lineage: str) -> list[str]:
        """`lineage` and every lineage linked to it, directly or through others, sorted."""
        with self._connect() as db:
            return sorted(_same_data(db, lineage))


def _same_data(db: sqlite3.Connection, lineage: str) -> list[str]:
    return [row[0] for row in db.execute(_SAME_DATA, (lineage,))]


def _with_lineages(sql: str, lineages: list[str]) -> str:
    return sql.format(lineages=", ".join("?" for _ in lineages))


def _amounts(
    db: sqlite3.Connection, lineages: list[str], researcher_key: str | None, org_key: str | None
) -> tuple[Decimal, Decimal]:
    """Exact totals of ε and δ spent on `lineages`, by one researcher and/or one org when named."""
    epsilon, delta = Decimal(0), Decimal(0)
    sql = _with_lineages(_SELECT_AMOUNTS, lineages)
    for eps, dlt in db.execute(sql, (*lineages, researcher_key, researcher_key, org_key, org_key)):
        epsilon, delta = epsilon + Decimal(eps), delta + Decimal(dlt)
    return epsilon, delta


def _get(db: sqlite3.Connection, reservation_id: str) -> Reservation:
    row = db.execute(_SELECT_BY_ID, (reservation_id,)).fetchone()
    if row is None:
        raise NotFound(f"no budget reservation {reservation_id!r}")
    return _reservation(row)


def _repeat(row: tuple[str, ...], who: str, org_key: str, eps: Decimal, dlt: Decimal) -> Reservation:
    """A reserve repeated for the same (job_id, lineage): the first reservation, if it is the same
    charge and its computation has not committed."""
    reservation = _reservation(row[:11])
    if (row[11], row[12], Decimal(row[6]), Decimal(row[7])) != (who, org_key, eps, dlt):
        raise Conflict(
            f"job {reservation.job_id} already reserved ε={reservation.epsilon:g}, "
            f"δ={reservation.delta:g} on this data for {reservation.researcher} ({reservation.org}); "
            "a retry must ask for the same"
        )
    if reservation.state == "committed":
        raise Conflict(
            f"job {reservation.job_id} already ran and spent its budget on this data; its result must "
            "be re-sent from the gateway's journal, not computed again"
        )
    return reservation


def _reservation(row: tuple[str, ...]) -> Reservation:
    rid, lineage, dataset, researcher, org, job_id, eps, dlt, state_text, reserved_at, committed_at = row
    state: ReservationState = "committed" if state_text == "committed" else "reserved"
    return Reservation(
        rid, lineage, dataset, researcher, org, job_id, float(Decimal(eps)), float(Decimal(dlt)), state,
        datetime.fromisoformat(reserved_at), datetime.fromisoformat(committed_at) if committed_at else None,
    )  # fmt: skip


_CHUNK = 1024 * 1024


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_lineage(path: Path) -> str:
    """The lineage of a source's bytes: "sha256:" and the SHA-256 of a file's bytes. For a directory
    (a partitioned Parquet dataset, say), of the sorted SHA-256 digests of its regular files, so that
    renaming or moving files inside it does not change it; a directory of one file has that file's
    lineage. Any change to the bytes is a new lineage. Earlier releases keyed the ledger by it; the
    gateway now keys it by the rows' fingerprint and links this one to it (`BudgetLedger.link`)."""
    if path.is_file():
        return f"sha256:{_file_digest(path)}"
    if not path.is_dir():
        raise NotFound(f"no file or directory at {path.name!r} to take the lineage of")
    digests = sorted(_file_digest(p) for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    if not digests:
        raise InvalidInput(f"directory {path.name!r} has no files to take the lineage of")
    if len(digests) == 1:
        return f"sha256:{digests[0]}"
    combined = hashlib.sha256(b"custos-lineage-v1\n" + "\n".join(digests).encode()).hexdigest()
    return f"sha256:{combined}"
