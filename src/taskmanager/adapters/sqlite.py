"""SQLite: the embedded default store for one machine (``taskmanager serve``).

One database file holds the tasks and the **outbox**. Every write is one transaction:

- submit is one ``INSERT`` (an expired task with the same id is replaced by the same
  statement's upsert; a live one is returned unchanged for replay detection);
- every guarded change is one ``UPDATE ... WHERE <guard> RETURNING *``: the guard (prior
  status, sequence bound, owner, version) is part of the ``WHERE`` clause, so two racing
  writers can never both apply. When no row comes back, the stored row is read inside the
  same transaction so the caller can classify the refusal;
- the events of the committed change (``events_for_change``) are inserted into the
  ``outbox`` table in that same transaction, so a crash after ``COMMIT`` loses nothing: the
  dispatcher (:func:`taskmanager.domain.services.dispatch_outbox`) delivers what is pending
  at least once and deletes it when delivered.

The file runs in WAL mode with ``synchronous=NORMAL`` (a committed change survives the
process being killed; ``synchronous="FULL"`` also survives power loss) and a busy timeout,
so several threads (one connection each) and several processes can share it. Writers take
the write lock up front (``BEGIN IMMEDIATE``), so no transaction fails half way on an
upgrade from a read lock.

The schema carries a version in ``schema_version``. Opening an older file migrates it in
one transaction; opening a file written by newer code raises ``StorageSchemaError``.
List cursors are signed with a random key kept in the file, so a cursor that was altered,
forged or issued for another owner is refused with ``InvalidCursorError``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

import pydantic_core

from taskmanager.domain.errors import InvalidCursorError, StorageError, StorageSchemaError
from taskmanager.domain.events import (
    TaskCreated,
    TaskFailed,
    TaskRunning,
    TaskSuccessful,
    event_detail_json,
    events_for_change,
)
from taskmanager.domain.model import TERMINAL_STATUSES, Progress, Task, TaskError, TaskStatus
from taskmanager.domain.ports import OutboxEntry, Page, WriteResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pydantic import BaseModel

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import ListQuery

#: ``UPDATE ... RETURNING`` arrived in SQLite 3.35.0.
MIN_SQLITE_VERSION: Final = (3, 35, 0)
#: The schema this code writes. Older files are migrated on open; newer ones are refused.
SCHEMA_VERSION: Final = 3
BUSY_TIMEOUT_MS: Final = 30_000
#: Checkpoint the WAL into the database every this many pages (about 40 MB) instead of
#: SQLite's 1000: each checkpoint syncs the file, and at 1000 pages it cost a quarter of the
#: write throughput (benchmarks/adapters.py).
WAL_AUTOCHECKPOINT_PAGES: Final = 10_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DETAIL_CLASSES: Final[dict[str, type[OutboundEvent]]] = {
    cls.DETAIL_TYPE: cls for cls in (TaskCreated, TaskRunning, TaskSuccessful, TaskFailed)
}

_COLUMNS: Final = (
    "id, owner, type, status, input, version, created_at, updated_at, deadline_at, "
    "heartbeat_seconds, progress, result, error, started_at, finished_at, expires_at, "
    "last_sequence, idempotency_key, request_fingerprint"
)
#: A task row as three columns: a JSON array of the small ones, then ``input`` and ``result``
#: as stored. Python's sqlite3 releases and takes back the GIL for every column it reads
#: (about 1,400 instructions each), so the array, parsed by pydantic-core, costs a third
#: less than seventeen columns. The payloads stay out of it: escaped into a JSON string and
#: back, a large one would cost twice what it costs to parse.
_ROW: Final = (
    "json_array("
    + ", ".join(c for c in _COLUMNS.split(", ") if c not in {"input", "result"})
    + "), input, result"
)


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
            (_epoch_us(datetime.fromisoformat(updated)) + seconds * 1_000_000, task_id)
            for task_id, updated, seconds in running
        ],
    )
    db.execute("UPDATE tasks SET due_us = deadline_us WHERE due_us IS NOT NULL")
    db.execute(
        "CREATE INDEX IF NOT EXISTS tasks_by_heartbeat ON tasks (heartbeat_due_us) "
        "WHERE heartbeat_due_us IS NOT NULL"
    )


#: ``MIGRATIONS[n]`` takes a file from version n to n + 1.
MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
)


_ONE_US: Final = timedelta(microseconds=1)


def _epoch_us(value: datetime) -> int:
    return (value - _EPOCH) // _ONE_US


#: ``YYYY-MM-DDTHH:MM:SS.`` by the six numbers it shows: the timestamps of one second share
#: it (a task's own, its neighbours'), and formatting six numbers costs more than the rest
#: of building a row. Bounded: forgotten all at once when full.
_SECONDS: Final[dict[tuple[int, int, int, int, int, int], str]] = {}
_SECONDS_MAX: Final = 4096
#: ``000`` to ``999``: a microsecond count is two of them.
_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


def _stamp(value: datetime) -> str:
    """``format_time(value)`` (fixed-width RFC 3339, UTC, microseconds, ``Z``) without
    ``strftime``, ``isoformat`` or ``%`` formatting, each of which costs about three times
    as much: the seconds' text is looked up, the microseconds are two table entries."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    seconds = _SECONDS.get(key)
    if seconds is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        seconds = _SECONDS[key] = "%04d-%02d-%02dT%02d:%02d:%02d." % key  # noqa: UP031
    micro = value.microsecond
    return f"{seconds}{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}Z"


def _text(value: datetime | None) -> str | None:
    return None if value is None else _stamp(value)


#: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``, with the encoder built
#: once rather than on every call.
_dumps: Final[Callable[[Any], str]] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False
).encode
# Stored input and result JSON: written and read by pydantic-core in one call each (the
# standard encoder and decoder run Python frames per call). The domain measured the same
# serialisation for the payload limit, so whatever it accepted serialises here too.
_loads: Final = pydantic_core.from_json


def _value_json(value: Any) -> str:
    return _to_json(value).decode()


_to_json: Final = pydantic_core.to_json


_parse_time: Final = datetime.fromisoformat
_STATUS_BY_VALUE: Final = {status.value: status for status in TaskStatus}


def _heartbeat_due_us(task: Task) -> int | None:
    due = task.heartbeat_due_at
    return None if due is None else _epoch_us(due)


def _row_to_task(row: Sequence[Any]) -> Task:
    """The task of a row read as ``_ROW``."""
    small, input_, result = row
    (
        task_id,
        owner,
        type_,
        status,
        version,
        created_at,
        updated_at,
        deadline_at,
        heartbeat_seconds,
        progress,
        error,
        started_at,
        finished_at,
        expires_at,
        last_sequence,
        idempotency_key,
        fingerprint,
    ) = _loads(small)
    return Task(
        id=task_id,
        owner=owner,
        type=type_,
        status=_STATUS_BY_VALUE[status],
        input=_loads(input_),
        version=version,
        created_at=_parse_time(created_at),
        updated_at=_parse_time(updated_at),
        deadline_at=_parse_time(deadline_at),
        heartbeat_seconds=heartbeat_seconds,
        progress=None if progress is None else Progress.model_validate_json(progress),
        result=None if result is None else _loads(result),
        error=None if error is None else TaskError.model_validate_json(error),
        started_at=None if started_at is None else _parse_time(started_at),
        finished_at=None if finished_at is None else _parse_time(finished_at),
        expires_at=None if expires_at is None else _parse_time(expires_at),
        last_sequence=last_sequence,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )


def _model_json(value: BaseModel | None) -> str | None:
    """A stored progress or error: the text of ``value.model_dump_json()``."""
    return None if value is None else value.model_dump_json()


def _first_params(task: Task) -> tuple[Any, ...]:
    """The first nine columns, ``id`` to ``deadline_at``, which every insert binds."""
    created_at, updated_at = task.created_at, task.updated_at
    created = _stamp(created_at)
    return (
        task.id,
        task.owner,
        task.type,
        task.status.value,
        _value_json(task.input),
        task.version,
        created,
        # A new task was created and updated at the same instant: format it once.
        created if updated_at is created_at else _stamp(updated_at),
        _stamp(task.deadline_at),
    )


def _task_params(task: Task) -> tuple[Any, ...]:
    deadline_us = _epoch_us(task.deadline_at)
    return (
        *_first_params(task),
        task.heartbeat_seconds,
        _model_json(task.progress),
        None if task.result is None else _value_json(task.result),
        _model_json(task.error),
        _text(task.started_at),
        _text(task.finished_at),
        _text(task.expires_at),
        task.last_sequence,
        task.idempotency_key,
        task.request_fingerprint,
        deadline_us,
        None if task.is_terminal else deadline_us,  # due_us: the deadline while open
        _heartbeat_due_us(task),
    )


def _is_new(task: Task) -> bool:
    """Whether ``task`` has only the columns of ``_INSERT_NEW`` (a task as submitted)."""
    return (
        task.status is TaskStatus.CREATED
        and task.progress is None
        and task.result is None
        and task.error is None
        and task.started_at is None
        and task.finished_at is None
        and task.expires_at is None
        and task.last_sequence is None
    )


def _new_task_params(task: Task) -> tuple[Any, ...]:
    """The parameters of ``_INSERT_NEW`` (without the final ``now``)."""
    deadline_us = _epoch_us(task.deadline_at)
    return (
        *_first_params(task),
        task.heartbeat_seconds,
        task.idempotency_key,
        task.request_fingerprint,
        deadline_us,
        deadline_us,  # due_us: the deadline, while the task is open
    )


def _upsert(columns: str) -> str:
    """Insert a task with ``columns`` (any other column is NULL). The upsert replaces only
    an expired row (expires_at <= now, the last parameter); otherwise nothing changes, and
    whether a row went in is the statement's change count (no RETURNING row to step to)."""
    every = (*_COLUMNS.split(", ")[1:], "deadline_us", "due_us", "heartbeat_due_us")
    return (
        f"INSERT INTO tasks ({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))}) "
        "ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in every)
        + " WHERE tasks.expires_at IS NOT NULL AND tasks.expires_at <= ?"
    )


_INSERT: Final = _upsert(f"{_COLUMNS}, deadline_us, due_us, heartbeat_due_us")
#: A task as submitted: the columns it can have before it runs. Every other one is NULL,
#: and left out rather than bound: each parameter costs Python's sqlite3 a call, a None
#: the most (an adapter lookup), and a new task has eight that are always None.
_INSERT_NEW: Final = _upsert(
    "id, owner, type, status, input, version, created_at, updated_at, deadline_at, "
    "heartbeat_seconds, idempotency_key, request_fingerprint, deadline_us, due_us"
)
_SELECT_ONE: Final = f"SELECT {_ROW} FROM tasks WHERE id = ?"


_DUE_BY_DEADLINE: Final = (
    f"SELECT {_ROW} FROM tasks WHERE due_us IS NOT NULL AND due_us <= ? ORDER BY due_us LIMIT ?"
)
_DUE_BY_HEARTBEAT: Final = (
    f"SELECT {_ROW} FROM tasks WHERE heartbeat_due_us IS NOT NULL AND heartbeat_due_us <= ? "
    "ORDER BY heartbeat_due_us LIMIT ?"
)
_INSERT_EVENT: Final = "INSERT INTO outbox (event_id, detail_type, detail) VALUES (?, ?, ?)"
_DELETE_EVENTS: Final = "DELETE FROM outbox WHERE position IN (SELECT value FROM json_each(?))"
#: Positions that follow one another: one seek, then along the rows (a third of the cost).
_DELETE_EVENT_RANGE: Final = "DELETE FROM outbox WHERE position BETWEEN ? AND ?"
_SELECT_PENDING: Final = (
    "SELECT position, event_id, detail_type, detail FROM outbox ORDER BY position LIMIT ?"
)
#: How many committed events a repository keeps to hand out without parsing (then it forgets
#: them all and parses those rows): enough for a dispatcher in the same process to keep up.
_RECENT_EVENTS_MAX: Final = 1024
#: The result of a write step, and the outbox rows (position, event) it appended.
_Written: TypeAlias = tuple[WriteResult, list[tuple[int, "OutboundEvent"]]]


class _Connection:
    """One thread's connection (a weak reference target; ``sqlite3.Connection`` is not)."""

    __slots__ = ("__weakref__", "db")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db


class SQLiteTaskRepository:
    """A :class:`~taskmanager.domain.ports.TaskRepository` and ``Outbox`` in one SQLite file.

    Thread-safe: each thread gets its own connection to the file. Process-safe: SQLite's
    file locks serialise writers; every write is one short ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        autocheckpoint: bool = True,
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old; "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer is needed (UPDATE ... "
                "RETURNING)"
            )
        if synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        # False: the owner calls checkpoint() from a thread of its own, so no write waits
        # for a checkpoint (one copies up to ~40 MB into the file and syncs it).
        self._autocheckpoint = WAL_AUTOCHECKPOINT_PAGES if autocheckpoint else 0
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: a thread that ends drops its connection (SQLite closes it when collected).
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        #: Events this object committed and has not yet seen delivered, by outbox position.
        #: Plain dict operations (atomic under the GIL) from every thread; bounded.
        self._recent_events: dict[int, OutboundEvent] = {}
        self._cursor_key = self._open_schema()

    # -- connections and schema --------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            # Each connection is used by its own thread only; check_same_thread=False just
            # lets close() shut them all from whichever thread closes the repository.
            db = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
        return db

    def _db(self) -> sqlite3.Connection:
        holder: _Connection | None = getattr(self._local, "holder", None)
        if holder is None:
            if self._closed:
                raise StorageError("the SQLite repository is closed")
            holder = _Connection(self._connect())
            self._local.holder = holder
            with self._lock:
                self._connections.add(holder)
        return holder.db

    def _open_schema(self) -> bytes:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = db.execute("SELECT version FROM schema_version").fetchone()
                found = 0 if row is None else int(row[0])
                if found > SCHEMA_VERSION:
                    raise StorageSchemaError(
                        f"{self.path} has schema version {found}, but this taskmanager "
                        f"understands up to version {SCHEMA_VERSION}; upgrade taskmanager "
                        "or open another file",
                        details={"path": self.path, "found": found, "supported": SCHEMA_VERSION},
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
        except sqlite3.Error as exc:
            raise StorageError(f"cannot prepare SQLite database {self.path}: {exc}") from exc
        return bytes(key[0])

    def checkpoint(self) -> int:
        """Copy the committed write-ahead log into the database file (``PASSIVE``: writers
        and readers go on meanwhile). For an owner that turned ``autocheckpoint`` off.
        Returns how many pages the log holds (all copied when the log did not grow
        meanwhile)."""
        try:
            row = self._db().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite checkpoint failed: {exc}") from exc
        return int(row[1])

    @property
    def schema_version(self) -> int:
        row = self._db().execute("SELECT version FROM schema_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close every connection this repository opened (from any thread)."""
        with self._lock:
            self._closed = True
            holders, self._connections = list(self._connections), weakref.WeakSet()
        for holder in holders:
            holder.db.close()
        self._local = threading.local()

    def __enter__(self) -> SQLiteTaskRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- group commit ------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """Group commit: open one transaction on this thread's connection; the writes this
        thread makes until :meth:`commit_batch` join it. Nothing is durable before
        ``commit_batch``: a caller answers the batch's requests only after it returned.

        A write that fails before changing a row (its first statement refused, say) leaves
        the batch as it was. One that fails after changing rows cannot be undone alone (no
        savepoint per write: two statements of every write, a sixth of a submit's cost), so
        the whole batch is rolled back at once, the writes after it in the batch are refused,
        and ``commit_batch`` raises: every request of the batch fails, none half-written."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite write failed: {exc}") from exc
        self._local.batch = True
        self._local.batch_events = []
        self._local.batch_failed = None

    def commit_batch(self) -> list[OutboxEntry]:
        """Commit the transaction :meth:`begin_batch` opened (rolled back if that fails).

        Returns the outbox entries the batch committed, in position order: an owner in this
        process may deliver them at once instead of reading them back (see ``pending``)."""
        self._local.batch = False
        appended, self._local.batch_events = self._local.batch_events, []
        failed, self._local.batch_failed = self._local.batch_failed, None
        db = self._db()
        if failed is not None:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise StorageError(
                "SQLite write failed: a write of this group commit failed part way, so the "
                "whole group was rolled back"
            ) from failed
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"SQLite commit failed: {exc}") from exc
        self._remember(appended)
        return [OutboxEntry(position=position, event=event) for position, event in appended]

    # -- writes ------------------------------------------------------------------------------
    def _write(self, step: Callable[[sqlite3.Connection], _Written]) -> WriteResult:
        db = self._db()
        if getattr(self._local, "batch", False):
            return self._write_in_batch(db, step)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result, appended = step(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite write failed: {exc}") from exc
        if appended:
            self._remember(appended)
        return result

    def _write_in_batch(
        self, db: sqlite3.Connection, step: Callable[[sqlite3.Connection], _Written]
    ) -> WriteResult:
        local = self._local
        if local.batch_failed is not None:
            raise StorageError(
                "SQLite write failed: an earlier write of this group commit failed part way"
            ) from local.batch_failed
        changes = db.total_changes
        try:
            result, appended = step(db)
        except BaseException as exc:
            if db.total_changes != changes:  # rows of this write are in the transaction
                self._fail_batch(db, exc)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"SQLite write failed: {exc}") from exc
            raise
        # Remembered only once commit_batch has committed them (a rolled-back batch frees
        # its positions for other events).
        local.batch_events += appended
        return result

    def _fail_batch(self, db: sqlite3.Connection, exc: BaseException) -> None:
        """The open batch fails as a whole: its later writes are refused and commit_batch
        raises. Rolled back now, so that nothing reads half-written rows meanwhile
        (commit_batch tries again should this fail too)."""
        self._local.batch_failed, self._local.batch_events = exc, []
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def _remember(self, appended: list[tuple[int, OutboundEvent]]) -> None:
        """Committed: from now on these positions hold these events (AUTOINCREMENT never
        reuses a committed position, and gives each commit the positions that follow the
        last commit's), so pending() may hand them out without parsing."""
        recent = self._recent_events
        if len(recent) >= _RECENT_EVENTS_MAX:
            recent.clear()
        recent.update(appended)

    @staticmethod
    def _append_events(
        db: sqlite3.Connection, old: Task | None, new: Task
    ) -> list[tuple[int, OutboundEvent]]:
        appended: list[tuple[int, OutboundEvent]] = []
        for event in events_for_change(old, new):
            cursor = db.execute(
                _INSERT_EVENT, (event.event_id, event.DETAIL_TYPE, event_detail_json(event))
            )
            appended.append((cast("int", cursor.lastrowid), event))
        return appended

    def create(self, task: Task, now: datetime) -> WriteResult:
        if _is_new(task):
            sql, params = _INSERT_NEW, _new_task_params(task)
        else:
            sql, params = _INSERT, _task_params(task)
        # A new task is made at ``now``: its created_at, already formatted in ``params``.
        params += (params[6] if now is task.created_at else _stamp(now),)

        def step(db: sqlite3.Connection) -> _Written:
            if db.execute(sql, params).rowcount == 0:
                row = db.execute(_SELECT_ONE, (task.id,)).fetchone()
                return WriteResult(applied=False, task=_row_to_task(row)), []
            return WriteResult(applied=True, task=task), self._append_events(db, None, task)

        return self._write(step)

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        sql, params = _update_statement(guard, change)

        def step(db: sqlite3.Connection) -> _Written:
            row = db.execute(sql, params).fetchone()
            if row is None:
                stored = db.execute(_SELECT_ONE, (guard.task_id,)).fetchone()
                task = None if stored is None else _row_to_task(stored)
                return WriteResult(applied=False, task=task), []
            new = _row_to_task(row)
            # The guarded UPDATE moved the version by exactly one; the row before it is the
            # new one at version - 1 as far as events_for_change is concerned.
            old = new._replace(version=new.version - 1)
            return WriteResult(applied=True, task=new), self._append_events(db, old, new)

        return self._write(step)

    # -- reads -------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        try:
            row = self._db().execute(_SELECT_ONE, (task_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        return None if row is None else _row_to_task(row)

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        where = ["owner = ?", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [query.owner, _stamp(now)]
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status.value)
        if query.type is not None:
            where.append("type = ?")
            params.append(query.type)
        if query.cursor:
            created, task_id = self._decode_cursor(query.cursor, query.owner)
            where.append("(created_at, id) < (?, ?)")
            params += [created, task_id]
        params.append(query.limit + 1)
        sql = (
            f"SELECT {_ROW} FROM tasks WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        try:
            rows = self._db().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        items = [_row_to_task(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        cursor = self._encode_cursor(items[-1], query.owner) if more else None
        return Page(items=items, next_cursor=cursor)

    def due(self, now: datetime, limit: int) -> list[Task]:
        # Each index gives its earliest `limit` due tasks; a task among the `limit` earliest
        # overall is among the earliest of the index holding its own earlier due time.
        now_us = _epoch_us(now)
        try:
            db = self._db()
            rows = db.execute(_DUE_BY_DEADLINE, (now_us, limit)).fetchall()
            rows += db.execute(_DUE_BY_HEARTBEAT, (now_us, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        tasks = {task.id: task for task in map(_row_to_task, rows)}
        return sorted(tasks.values(), key=lambda task: task.due_at or now)[:limit]

    # -- cursors -----------------------------------------------------------------------------
    def _signature(self, owner: str, created: str, task_id: str) -> bytes:
        # surrogatepass: a tampered cursor may decode to a lone surrogate; it must fail the
        # comparison (400), not the encoding (500).
        message = f"{owner}\x00{created}\x00{task_id}".encode("utf-8", "surrogatepass")
        return hmac.new(self._cursor_key, message, hashlib.sha256).digest()[:16]

    def _encode_cursor(self, task: Task, owner: str) -> str:
        created = _stamp(task.created_at)
        payload = _dumps([created, task.id]).encode()
        sig = self._signature(owner, created, task.id)
        return (
            base64.urlsafe_b64encode(payload).decode().rstrip("=")
            + "."
            + base64.urlsafe_b64encode(sig).decode().rstrip("=")
        )

    def _decode_cursor(self, cursor: str, owner: str) -> tuple[str, str]:
        try:
            payload_b64, sig_b64 = cursor.split(".")
            payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
            sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
            created, task_id = json.loads(payload)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidCursorError from exc
        if not isinstance(created, str) or not isinstance(task_id, str):
            raise InvalidCursorError
        if not hmac.compare_digest(sig, self._signature(owner, created, task_id)):
            raise InvalidCursorError
        return created, task_id

    # -- Outbox ------------------------------------------------------------------------------
    def pending(self, limit: int) -> list[OutboxEntry]:
        try:
            rows = self._db().execute(_SELECT_PENDING, (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        recent = self._recent_events
        entries: list[OutboxEntry] = []
        for position, event_id, detail_type, detail in rows:
            # An event this object committed is used as it is; any other row (written by
            # another process, or before a restart) is parsed and validated from its text.
            event = recent.get(position)
            if event is None or event.event_id != event_id:
                event = _DETAIL_CLASSES[detail_type].model_validate_json(detail)
            entries.append(OutboxEntry(position=position, event=event))
        return entries

    def mark_delivered(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        # One DELETE per call: on its own it is atomic (autocommit), so no BEGIN/COMMIT
        # round trips; inside a group commit it joins the batch's transaction. A run of
        # positions is one range; others go through json_each, which keeps the statement
        # text (and its prepared form) fixed whatever their number.
        numbers = sorted(set(map(int, positions)))
        first, last = numbers[0], numbers[-1]
        db = self._db()
        try:
            if last - first + 1 == len(numbers):  # every position between is one of them
                db.execute(_DELETE_EVENT_RANGE, (first, last))
            else:
                db.execute(_DELETE_EVENTS, ("[" + ",".join(map(str, numbers)) + "]",))
        except sqlite3.Error as exc:
            if getattr(self._local, "batch", False) and not db.in_transaction:
                # SQLite ended the batch's transaction (disk full, I/O error): what the batch
                # wrote before is gone, so the batch must fail as a whole.
                self._fail_batch(db, exc)
            raise StorageError(f"SQLite write failed: {exc}") from exc
        recent = self._recent_events
        for position in numbers:
            recent.pop(position, None)

    @property
    def undelivered(self) -> list[OutboxEntry]:
        """Every entry not yet delivered, oldest first."""
        count = self._db().execute("SELECT count(*) FROM outbox").fetchone()[0]
        return self.pending(int(count))


# --- the guarded UPDATE ---------------------------------------------------------------------

_TERMINAL_VALUES: Final = frozenset(s.value for s in TERMINAL_STATUSES)


def _update_statement(guard: Guard, change: Change) -> tuple[str, list[Any]]:
    """``UPDATE tasks SET <change> WHERE <guard> RETURNING <task>``, with its parameters."""
    status = change.status
    running = status is TaskStatus.RUNNING
    statuses = _STATUS_VALUES.get(guard.statuses)
    if statuses is None:
        statuses = _STATUS_VALUES[guard.statuses] = tuple(sorted(s.value for s in guard.statuses))
    shape = (
        status.value,
        running and change.progress is not None,
        change.started_at is not None,
        change.sequence is not None,
        statuses,
        guard.sequence is not None,
        guard.owner is not None,
        guard.version is not None,
    )
    sql = _UPDATE_SQL.get(shape)
    if sql is None:
        sql = _UPDATE_SQL[shape] = _update_sql(*shape)
    now = change.updated_at
    stamp = _stamp(now)
    params: list[Any] = [status.value, stamp]
    if running:
        if change.progress is not None:
            params.append(_model_json(change.progress))
        params.append(_epoch_us(now))
    # A change usually starts or finishes the task at the instant of the change itself.
    finished_at, started_at = change.finished_at, change.started_at
    params += [
        None if change.result is None else _value_json(change.result),
        _model_json(change.error),
        stamp if finished_at is now else _text(finished_at),
        _text(change.expires_at),
    ]
    if started_at is not None:
        params.append(stamp if started_at is now else _stamp(started_at))
    if change.sequence is not None:
        params.append(change.sequence)
    params += [guard.task_id, *statuses]
    if guard.sequence is not None:
        params.append(guard.sequence)
    if guard.owner is not None:
        params.append(guard.owner)
    if guard.version is not None:
        params.append(guard.version)
    return sql, params


#: Sorted status values of each guard's status set (a handful of distinct sets).
_STATUS_VALUES: dict[frozenset[TaskStatus], tuple[str, ...]] = {}
#: UPDATE statements by shape (which optional parts are present): built once each.
_UPDATE_SQL: dict[tuple[Any, ...], str] = {}


def _update_sql(  # noqa: PLR0917 (the fields of one shape key, in order)
    status: str,
    with_progress: bool,
    with_started: bool,
    with_sequence: bool,
    statuses: tuple[str, ...],
    guard_sequence: bool,
    guard_owner: bool,
    guard_version: bool,
) -> str:
    sets = ["status = ?", "version = version + 1", "updated_at = ?"]
    if status == TaskStatus.RUNNING.value:
        if with_progress:
            sets.append("progress = ?")
        # due_us (the open deadline) stays; a task without a heartbeat period keeps NULL
        # here, so its update touches neither index.
        sets.append(
            "heartbeat_due_us = CASE WHEN heartbeat_seconds IS NULL THEN NULL "
            "ELSE ? + heartbeat_seconds * 1000000 END"
        )
    else:
        sets.append("progress = NULL")
        sets.append("heartbeat_due_us = NULL")
        sets.append("due_us = NULL" if status in _TERMINAL_VALUES else "due_us = deadline_us")
    sets += ["result = ?", "error = ?", "finished_at = ?", "expires_at = ?"]
    if with_started:
        sets.append("started_at = coalesce(started_at, ?)")
    if with_sequence:
        sets.append("last_sequence = ?")
    where = [f"id = ? AND status IN ({', '.join('?' * len(statuses))})"]
    if guard_sequence:
        where.append("(last_sequence IS NULL OR last_sequence < ?)")
    if guard_owner:
        where.append("owner = ?")
    if guard_version:
        where.append("version = ?")
    return f"UPDATE tasks SET {', '.join(sets)} WHERE {' AND '.join(where)} RETURNING {_ROW}"
