"""`respan-mcp --sandbox`: the stand-in, over a SQLite file, as the server's HTTP transport.

No network and no Respan account: the server's client talks to the app in-process through
`sandbox_transport(db_path)`. Any non-empty bearer key is accepted (each key is its own scorer,
as each Respan user is); a missing or empty key is a 401, as it would be on Respan. What is
written stays in the file (`config.sandbox_db`, from the settings) for the next run, and for other sandbox servers
on the same file; `reset(db_path)` starts it afresh with the sample data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from respan_mcp.standin.app import RespanStandin
from respan_mcp.standin.sample_data import sample_evaluators, sample_logs
from respan_mcp.standin.sqlite_store import SqliteStore

if TYPE_CHECKING:
    import httpx2

def open_store(db_path: Path | str) -> SqliteStore:
    """The sandbox's store at `db_path` (its folder made if need be); a new file gets the sample data."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path, seed=(sample_evaluators(), sample_logs()))


def sandbox_app(db_path: Path | str) -> RespanStandin:
    """The stand-in as the sandbox serves it: strict about logs and values, any non-empty key."""
    return RespanStandin(open_store(db_path), accepts_key=bool, strict_logs=True, check_values=True)


def sandbox_transport(db_path: Path | str) -> httpx2.AsyncBaseTransport:
    """An httpx2 transport answering from the sandbox at `db_path`, for the server's one HTTP client."""
    import httpx2  # the server has it loaded already; imported here so this module costs nothing until used

    return httpx2.ASGITransport(app=sandbox_app(db_path))


def reset(db_path: Path | str) -> None:
    """Start the sandbox at `db_path` afresh: every score gone, the sample data as new. Safe while
    sandbox servers use the file (one transaction); a file that is not a database is replaced."""
    path = Path(db_path)
    try:
        with open_store(path) as store:
            store.replace_all(sample_evaluators(), sample_logs())
    except sqlite3.DatabaseError:  # not a database, or a damaged one
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        open_store(path).close()
