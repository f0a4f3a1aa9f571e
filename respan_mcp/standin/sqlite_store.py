"""The sandbox's storage: one SQLite file (standard library), kept across runs and shared by processes.

Two `respan-mcp --sandbox` servers (say, one per agent) may write to the same file at once: the
file is in WAL mode (readers do not block the writer), a writer waits up to `BUSY_TIMEOUT_MS`
for another, every write is one transaction, and the score upsert is one statement against a
unique index on (log, evaluator, scorer), so two writers of the same score leave one row.
Records are JSON in a `data` column; the columns beside it are what is looked up.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from respan_mcp.standin.store import Record, ScoreKey

BUSY_TIMEOUT_MS = 10_000
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluators (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (unique_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    log_id TEXT NOT NULL,
    evaluator_key TEXT NOT NULL,
    scorer TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS scores_one_per_log_evaluator_scorer ON scores (log_id, evaluator_key, scorer);
"""


def _load(text: str) -> Record:
    record: Record = json.loads(text)
    return record


class SqliteStore:
    """A `Store` in the SQLite file at `path`; `seed` (evaluators, logs) fills a new file, once.

    One connection, used under a lock: the app may be served from another thread than the one
    that opened it (uvicorn in a thread), and the sqlite3 module's connections are not shared safely.
    """

    def __init__(self, path: Path | str, *, seed: tuple[Iterable[Record], Iterable[Record]] | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):  # not executescript: it would COMMIT
                db.execute(statement)
            if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                if seed is not None:
                    self._insert(db, *seed)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock at once, so a read-then-write cannot be overtaken."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, *params: Any) -> list[Record]:
        with self._lock:
            return [_load(row[0]) for row in self._db.execute(sql, params).fetchall()]

    @staticmethod
    def _insert(db: sqlite3.Connection, evaluators: Iterable[Record], logs: Iterable[Record]) -> None:
        db.executemany("INSERT OR REPLACE INTO evaluators (id, data) VALUES (?, ?)",
                       [(e["id"], json.dumps(e)) for e in evaluators])
        db.executemany("INSERT OR REPLACE INTO logs (unique_id, data) VALUES (?, ?)",
                       [(log["unique_id"], json.dumps(log)) for log in logs])

    def replace_all(self, evaluators: Iterable[Record], logs: Iterable[Record]) -> None:
        """Everything gone, then these: in one transaction, so a server reading meanwhile sees before or after."""
        with self._transaction() as db:
            for table in ("scores", "logs", "evaluators"):
                db.execute(f"DELETE FROM {table}")
            self._insert(db, evaluators, logs)

    # -- Store ---------------------------------------------------------------------------
    def put_evaluator(self, evaluator: Record) -> None:
        with self._transaction() as db:
            self._insert(db, [evaluator], [])

    def get_evaluator(self, evaluator_id: str) -> Record | None:
        found = self._read("SELECT data FROM evaluators WHERE id = ?", evaluator_id)
        return found[0] if found else None

    def list_evaluators(self) -> list[Record]:
        return self._read("SELECT data FROM evaluators ORDER BY rowid")

    def put_log(self, log: Record) -> None:
        with self._transaction() as db:
            self._insert(db, [], [log])

    def get_log(self, unique_id: str) -> Record | None:
        found = self._read("SELECT data FROM logs WHERE unique_id = ?", unique_id)
        return found[0] if found else None

    def list_logs(self) -> list[Record]:
        return self._read("SELECT data FROM logs ORDER BY rowid")

    def upsert_score(self, key: ScoreKey, created: Record, changes: Record) -> tuple[Record, bool]:
        # One statement: the unique index decides between insert and update, whoever else is writing.
        update = "json_set(scores.data, " + ", ".join("?, json(?)" for _ in changes) + ")" if changes else "scores.data"
        changed = [part for name, value in changes.items() for part in (f"$.{name}", json.dumps(value))]
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO scores (id, log_id, evaluator_key, scorer, data) VALUES (?, ?, ?, ?, ?) "
                f"ON CONFLICT (log_id, evaluator_key, scorer) DO UPDATE SET data = {update} RETURNING id, data",
                [created["id"], key.log_id, key.evaluator, key.scorer, json.dumps(created), *changed],
            ).fetchone()
        return _load(row[1]), row[0] == created["id"]

    def get_score(self, score_id: str) -> Record | None:
        found = self._read("SELECT data FROM scores WHERE id = ?", score_id)
        return found[0] if found else None

    def update_score(self, score_id: str, change: Callable[[Record], Record]) -> Record | None:
        with self._transaction() as db:
            row = db.execute("SELECT data FROM scores WHERE id = ?", (score_id,)).fetchone()
            if row is None:
                return None
            score = change(_load(row[0]))
            db.execute("UPDATE scores SET data = ? WHERE id = ?", (json.dumps(score), score_id))
        return score

    def delete_score(self, score_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM scores WHERE id = ?", (score_id,)).rowcount > 0

    def scores_for_log(self, log_id: str) -> list[Record]:
        return self._read("SELECT data FROM scores WHERE log_id = ? ORDER BY seq", log_id)

    def clear_scores(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM scores")
