"""The durable outbox: updates the server did not take yet, kept in SQLite across a receiver
outage and a process restart, delivered in order per run; and the dead letters.

One file, ``outbox.sqlite3``, in the outbox directory. Several processes may share a directory:
each update being delivered is leased, so two processes do not send it at once.
"""
import os
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  body BLOB,
  what TEXT NOT NULL,
  queued_at REAL NOT NULL,
  first_attempt_at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL,
  lease_until REAL NOT NULL DEFAULT 0,
  last_error TEXT,
  refused INTEGER NOT NULL DEFAULT 0,
  unanswered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pending_by_run ON pending (run_id, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  body BLOB,
  what TEXT NOT NULL,
  queued_at REAL NOT NULL,
  first_attempt_at REAL NOT NULL,
  dead_at REAL NOT NULL,
  status INTEGER,
  code TEXT,
  reason TEXT NOT NULL,
  kind TEXT
);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One queued update. Times are Unix seconds. ``id`` is its Idempotency-Key (and the unique
    part of its ``webhook-id``), ``route`` the path after the base path, ``body`` the exact bytes."""

    seq: int
    id: str
    run_id: str
    method: str
    route: str
    body: Optional[bytes]
    what: str
    queued_at: float
    first_attempt_at: float
    attempts: int
    next_attempt_at: float
    last_error: Optional[str]
    #: Whether its last attempt was refused with 401/403 (waiting for the secret to be fixed).
    refused: bool = False
    #: Whether an earlier attempt got no definite answer (no answer at all, or a gateway's 502/504)
    #: and so may have been stored: a ``duplicate`` answer may then be the server's to that attempt.
    unanswered: bool = False


@dataclass(frozen=True)
class DeadLetter:
    """An update taken out of the queue because no retry can deliver it: refused with 400, 404,
    409, 415, 422 (or 413 after truncation), or older than the outbox's maximum age. Kept on disk
    for a person to look at; ``status`` and ``code`` are the server's last answer when there was
    one, ``reason`` says why in words. Times are Unix seconds."""

    id: str
    run_id: str
    method: str
    route: str
    body: Optional[bytes]
    what: str
    queued_at: float
    first_attempt_at: float
    dead_at: float
    status: Optional[int]
    code: Optional[str]
    reason: str
    #: ``"superseded"``: not an undelivery but the run's end elsewhere: refused (409
    #: ``run_finished``/``stage_finished``, or answered ``stale``) because the run was cancelled,
    #: failed by the stale-run sweeper or completed elsewhere while the update waited; not counted
    #: by :meth:`PrismaAPIClient.undelivered`. ``None`` for a dead letter proper.
    kind: Optional[str] = None


def _entry(row: tuple) -> OutboxEntry:
    return OutboxEntry(*row[:-2], refused=bool(row[-2]), unanswered=bool(row[-1]))


class Outbox:
    """The SQLite outbox in ``directory`` (created if missing). Every change is one committed
    transaction (``synchronous=FULL``), so an update the client reported as queued survives a
    crash of the process."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.path = os.path.join(directory, "outbox.sqlite3")
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            # A directory of an older version: its dead letters get the column, as dead letters
            # proper; its queued updates, as answered (an older version did not record it).
            for table, column, definition in (("dead_letters", "kind", "TEXT"), ("pending", "unanswered", "INTEGER NOT NULL DEFAULT 0")):
                if column in [row[1] for row in db.execute(f"PRAGMA table_info({table})")]:
                    continue
                try:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError as error:  # another process added it meanwhile
                    if "duplicate column" not in str(error):
                        raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as db:
            db.execute("PRAGMA synchronous=FULL")
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def append(self, id: str, run_id: str, method: str, route: str, body: Optional[bytes], what: str,
               first_attempt_at: float, next_attempt_at: float, last_error: Optional[str] = None, refused: bool = False,
               coalesce: bool = False, unanswered: bool = False) -> None:
        """Queues an update behind the run's earlier ones; ``refused``: its attempt got 401/403;
        ``unanswered``: an attempt got no definite answer (see :attr:`OutboxEntry.unanswered`).

        ``coalesce`` (progress reports only, ``what`` = ``stage 2 progress``): the update takes
        the place of the stage's newest pending update when that is a progress report not being
        delivered, so only the newest progress per stage is kept; status changes are never
        coalesced, and no report moves across one."""
        now = time.time()
        with self._transaction() as db:
            if coalesce:
                # The stage's newest pending update, whatever it is: only a progress report that
                # no status change follows may be replaced, so none moves across a status change.
                stage = what.rsplit(" ", 1)[0] + " "
                replaced = db.execute(
                    "UPDATE pending SET id = ?, body = ? WHERE seq = (SELECT max(seq) FROM pending WHERE run_id = ?"
                    " AND substr(what, 1, ?) = ?) AND what = ? AND lease_until <= ?",
                    (id, body, run_id, len(stage), stage, what, now),
                ).rowcount
                if replaced == 1:
                    return
            db.execute(
                "INSERT INTO pending (id, run_id, method, route, body, what, queued_at, first_attempt_at, attempts,"
                " next_attempt_at, last_error, refused, unanswered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (id, run_id, method, route, body, what, now, first_attempt_at, 1 if last_error else 0, next_attempt_at, last_error,
                 int(refused), int(unanswered)),
            )

    def pending_count(self, run_id: Optional[str] = None) -> int:
        """How many updates are queued, of one run or of all."""
        with self._connect() as db:
            if run_id is None:
                return int(db.execute("SELECT count(*) FROM pending").fetchone()[0])
            return int(db.execute("SELECT count(*) FROM pending WHERE run_id = ?", (run_id,)).fetchone()[0])

    def pending_by_run(self) -> Dict[str, int]:
        """How many updates are queued per run, of the runs that have any."""
        with self._connect() as db:
            return {str(run): int(count) for run, count in db.execute("SELECT run_id, count(*) FROM pending GROUP BY run_id ORDER BY min(seq)")}

    def pending(self, run_id: Optional[str] = None) -> List[OutboxEntry]:
        """The queued updates in delivery order (per run: the order they were reported)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT seq, id, run_id, method, route, body, what, queued_at, first_attempt_at, attempts, next_attempt_at,"
                " last_error, refused, unanswered FROM pending" + (" WHERE run_id = ?" if run_id is not None else "") + " ORDER BY seq",
                (run_id,) if run_id is not None else (),
            ).fetchall()
        return [_entry(row) for row in rows]

    def heads(self) -> List[OutboxEntry]:
        """The first queued update of every run: only these may be delivered now."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT p.seq, p.id, p.run_id, p.method, p.route, p.body, p.what, p.queued_at, p.first_attempt_at, p.attempts,"
                " p.next_attempt_at, p.last_error, p.refused, p.unanswered FROM pending p"
                " WHERE p.seq = (SELECT min(q.seq) FROM pending q WHERE q.run_id = p.run_id) ORDER BY p.seq"
            ).fetchall()
        return [_entry(row) for row in rows]

    def claim(self, seq: int, lease_seconds: float) -> bool:
        """Leases an update for one delivery attempt; ``False`` when another process holds it."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute("UPDATE pending SET lease_until = ? WHERE seq = ? AND lease_until <= ?", (now + lease_seconds, seq, now))
            return cursor.rowcount == 1

    def ack(self, seq: int) -> None:
        """Removes a delivered update."""
        with self._transaction() as db:
            db.execute("DELETE FROM pending WHERE seq = ?", (seq,))

    def reschedule(self, seq: int, next_attempt_at: float, error: str, refused: bool = False, unanswered: bool = False) -> None:
        """Counts a failed attempt and sets when to try again (Unix seconds); ``refused``: 401/403;
        ``unanswered``: no definite answer (kept once set)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE pending SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, refused = ?, lease_until = 0,"
                " unanswered = max(unanswered, ?) WHERE seq = ?",
                (next_attempt_at, error, int(refused), int(unanswered), seq),
            )

    def replace(self, seq: int, new_id: str, body: bytes) -> None:
        """Replaces a queued update's body in place, as a new update (new key), keeping its position."""
        with self._transaction() as db:
            db.execute("UPDATE pending SET id = ?, body = ?, next_attempt_at = 0, lease_until = 0 WHERE seq = ?", (new_id, body, seq))

    def make_due(self) -> None:
        """Makes every queued update due now (a flush, or a new process, tries them at once)."""
        with self._transaction() as db:
            db.execute("UPDATE pending SET next_attempt_at = 0")

    def next_due(self) -> Optional[float]:
        """When the earliest run head may be tried (Unix seconds: its next attempt, or the end of
        another process's lease on it), or ``None`` when nothing is queued."""
        with self._connect() as db:
            row = db.execute(
                "SELECT count(*), min(max(p.next_attempt_at, p.lease_until)) FROM pending p"
                " WHERE p.seq = (SELECT min(q.seq) FROM pending q WHERE q.run_id = p.run_id)"
            ).fetchone()
        # A head leased by another process is due when its lease ends, not before.
        return None if row[0] == 0 else float(row[1])

    def dead_letter(self, entry: OutboxEntry, status: Optional[int], code: Optional[str], reason: str,
                    kind: Optional[str] = None) -> None:
        """Moves a queued update to the dead letters (removing it from the queue); ``kind``
        ``"superseded"`` when the run ended elsewhere (see :class:`DeadLetter`)."""
        with self._transaction() as db:
            db.execute("DELETE FROM pending WHERE seq = ?", (entry.seq,))
            self._insert_dead(db, entry.id, entry.run_id, entry.method, entry.route, entry.body, entry.what,
                              entry.queued_at, entry.first_attempt_at, status, code, reason, kind)

    def add_dead_letter(self, id: str, run_id: str, method: str, route: str, body: Optional[bytes], what: str,
                        first_attempt_at: float, status: Optional[int], code: Optional[str], reason: str) -> None:
        """Keeps an update that was refused before it was ever queued."""
        with self._transaction() as db:
            self._insert_dead(db, id, run_id, method, route, body, what, first_attempt_at, first_attempt_at, status, code, reason)

    @staticmethod
    def _insert_dead(db: sqlite3.Connection, id: str, run_id: str, method: str, route: str, body: Optional[bytes], what: str,
                     queued_at: float, first_attempt_at: float, status: Optional[int], code: Optional[str], reason: str,
                     kind: Optional[str] = None) -> None:
        db.execute(
            "INSERT INTO dead_letters (id, run_id, method, route, body, what, queued_at, first_attempt_at, dead_at, status, code, reason, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (id, run_id, method, route, body, what, queued_at, first_attempt_at, time.time(), status, code, reason, kind),
        )

    def dead_letters(self, run_id: Optional[str] = None) -> List[DeadLetter]:
        """The dead letters (``kind`` ``None``) and superseded updates, oldest first, of one run or of all."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, run_id, method, route, body, what, queued_at, first_attempt_at, dead_at, status, code, reason, kind"
                " FROM dead_letters" + (" WHERE run_id = ?" if run_id is not None else "") + " ORDER BY seq",
                (run_id,) if run_id is not None else (),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]
