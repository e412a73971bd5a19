"""The schema of the file: its tables, its version, and the migrations between versions.

The file carries its version in ``schema_version``. Opening an older file migrates it in one
transaction; opening a file written by newer code raises ``StorageSchemaError`` and changes
nothing.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Final

from taskmanager.adapters.sqlite.rows import epoch_us
from taskmanager.domain.errors import StorageSchemaError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

#: The schema this code writes. Older files are migrated on open; newer ones are refused.
SCHEMA_VERSION: Final = 4


def _migrate_to_1(db: sqlite3.Connection) -> None:
    """Tasks, the outbox, and the indexes for listing and for the sweeper."""
    db.execute(
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,            -- JSON text
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,       -- RFC 3339, fixed width: sorts as text
            updated_at TEXT NOT NULL,
            deadline_at TEXT NOT NULL,
            heartbeat_seconds INTEGER,
            progress TEXT,                  -- JSON object or NULL
            result TEXT,                    -- JSON text or NULL (absent)
            error TEXT,                     -- JSON object or NULL
            started_at TEXT,
            finished_at TEXT,
            expires_at TEXT,
            last_sequence INTEGER,
            idempotency_key TEXT,
            request_fingerprint TEXT,
            deadline_us INTEGER NOT NULL,   -- deadline_at in epoch microseconds
            due_us INTEGER                  -- when the sweeper must look; NULL once terminal
        )
        """
    )
    db.execute("CREATE INDEX tasks_by_owner ON tasks (owner, created_at, id)")
    db.execute("CREATE INDEX tasks_by_due ON tasks (due_us) WHERE due_us IS NOT NULL")
    db.execute(
        """
        CREATE TABLE outbox (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            detail_type TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """
    )


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """A per-file secret that signs list cursors."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO meta (key, value) VALUES ('cursor_key', ?)", (os.urandom(32),))


def _migrate_to_3(db: sqlite3.Connection) -> None:
    """The sweeper's index split in two, as DynamoDB's ``by-deadline`` and ``by-heartbeat``:
    ``due_us`` becomes the deadline of an open task (NULL once terminal) and the new
    ``heartbeat_due_us`` the heartbeat due time of a RUNNING task that has one.

    A progress update or heartbeat of a task without a heartbeat period then changes no
    indexed column, so its transaction writes one page fewer (the old ``due_us`` was
    rewritten, with its index entry, on every update)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    if "heartbeat_due_us" not in columns:
        db.execute("ALTER TABLE tasks ADD COLUMN heartbeat_due_us INTEGER")
    running = db.execute(
        "SELECT id, updated_at, heartbeat_seconds FROM tasks "
        "WHERE status = 'RUNNING' AND heartbeat_seconds IS NOT NULL"
    ).fetchall()
    db.executemany(
        "UPDATE tasks SET heartbeat_due_us = ? WHERE id = ?",
        [
            (epoch_us(datetime.fromisoformat(updated)) + seconds * 1_000_000, task_id)
            for task_id, updated, seconds in running
        ],
    )
    db.execute("UPDATE tasks SET due_us = deadline_us WHERE due_us IS NOT NULL")
    db.execute(
        "CREATE INDEX IF NOT EXISTS tasks_by_heartbeat ON tasks (heartbeat_due_us) "
        "WHERE heartbeat_due_us IS NOT NULL"
    )


def _migrate_to_4(db: sqlite3.Connection) -> None:
    """``start_timeout_seconds``: how long a task may stay CREATED. While it is CREATED, its
    start due time is kept in ``heartbeat_due_us`` (when the task must next show that
    someone works on it), so the sweeper finds it by the same index; tasks written before
    have none."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    if "start_timeout_seconds" not in columns:
        db.execute("ALTER TABLE tasks ADD COLUMN start_timeout_seconds INTEGER")


#: ``MIGRATIONS[n]`` takes a file from version n to n + 1.
MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
)


def create_or_migrate(db: sqlite3.Connection, path: str) -> bytes:
    """Bring the file to :data:`SCHEMA_VERSION` in one transaction (a new file gets every
    table) and return its cursor key. Raises ``StorageSchemaError`` for a newer file and
    ``sqlite3.Error`` when SQLite fails."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise StorageSchemaError(
                f"{path} has schema version {found}, but this taskmanager "
                f"understands up to version {SCHEMA_VERSION}; upgrade taskmanager "
                "or open another file",
                details={"path": path, "found": found, "supported": SCHEMA_VERSION},
            )
        for migrate in MIGRATIONS[found:]:
            migrate(db)
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        key = db.execute("SELECT value FROM meta WHERE key = 'cursor_key'").fetchone()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return bytes(key[0])


def stored_version(db: sqlite3.Connection) -> int:
    """The schema version the file says it has."""
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0])
