"""``SQLiteTaskRepository``: the task repository and outbox in one SQLite file.

It ties the parts of this package together: :mod:`.connections` (one connection per thread),
:mod:`.schema` (create or migrate the file), :mod:`.statements` and :mod:`.rows` (the SQL and
the task <-> row codec), :mod:`.group_commit` (write transactions), :mod:`.outbox` and
:mod:`.cursors` (signed list cursors).

Every write is one transaction: the guarded ``INSERT`` or ``UPDATE`` of the task and the
outbox rows of its events. When a guarded write changes no row, the stored row is read
inside the same transaction so the caller can classify the refusal.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import msgspec

from taskmanager.adapters.sqlite import schema
from taskmanager.adapters.sqlite.connections import ThreadConnections
from taskmanager.adapters.sqlite.cursors import decode_cursor, encode_cursor
from taskmanager.adapters.sqlite.group_commit import GroupCommit
from taskmanager.adapters.sqlite.outbox import Outbox
from taskmanager.adapters.sqlite.rows import epoch_us, row_to_task, time_text
from taskmanager.adapters.sqlite.statements import (
    DUE_BY_DEADLINE,
    DUE_BY_HEARTBEAT,
    PURGE_EXPIRED,
    SELECT_ONE,
    insert_statement,
    list_statement,
    update_statement,
)
from taskmanager.domain.errors import StorageError
from taskmanager.domain.ports import OutboxEntry, Page, WriteResult

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from datetime import datetime

    from taskmanager.adapters.sqlite.group_commit import WriteStep, Written
    from taskmanager.domain.model import Change, Guard, Task
    from taskmanager.domain.ports import ListQuery


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
        self._connections = ThreadConnections(
            path, synchronous=synchronous, autocheckpoint=autocheckpoint
        )
        self.path = self._connections.path
        self._group_commit = GroupCommit(self._connections)
        self._outbox = Outbox()
        try:
            self._cursor_key = schema.create_or_migrate(self._db(), self.path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot prepare SQLite database {self.path}: {exc}") from exc

    # -- the file ----------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """This thread's connection."""
        return self._connections.get()

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
        return schema.stored_version(self._db())

    def close(self) -> None:
        """Close every connection this repository opened (from any thread)."""
        self._connections.close()

    def __enter__(self) -> SQLiteTaskRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- group commit ------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """Group commit: open one transaction on this thread's connection; the writes this
        thread makes until :meth:`commit_batch` join it. Nothing is durable before
        ``commit_batch``: a caller answers the batch's requests only after it returned.
        A write that fails part way fails the whole batch (see :meth:`GroupCommit.begin`)."""
        self._group_commit.begin()

    def commit_batch(self) -> list[OutboxEntry]:
        """Commit the transaction :meth:`begin_batch` opened (rolled back if that fails).

        Returns the outbox entries the batch committed, in position order: an owner in this
        process may deliver them at once instead of reading them back (see ``pending``)."""
        committed = self._group_commit.commit()
        self._outbox.remember(committed)
        return [OutboxEntry(position=position, event=event) for position, event in committed]

    # -- writes ------------------------------------------------------------------------------
    def _write(self, step: WriteStep) -> WriteResult:
        result, committed = self._group_commit.write(step)
        if committed:
            self._outbox.remember(committed)
        return result

    def create(self, task: Task, now: datetime) -> WriteResult:
        sql, params = insert_statement(task, now)

        def step(db: sqlite3.Connection) -> Written:
            if db.execute(sql, params).rowcount == 0:
                row = db.execute(SELECT_ONE, (task.id,)).fetchone()
                return WriteResult(applied=False, task=row_to_task(row)), []
            return WriteResult(applied=True, task=task), self._outbox.append(db, None, task)

        return self._write(step)

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        sql, params = update_statement(guard, change)

        def step(db: sqlite3.Connection) -> Written:
            row = db.execute(sql, params).fetchone()
            if row is None:
                stored = db.execute(SELECT_ONE, (guard.task_id,)).fetchone()
                task = None if stored is None else row_to_task(stored)
                return WriteResult(applied=False, task=task), []
            new = row_to_task(row)
            # The guarded UPDATE moved the version by exactly one; the row before it is the
            # new one at version - 1 as far as events_for_change is concerned.
            old = msgspec.structs.replace(new, version=new.version - 1)
            return WriteResult(applied=True, task=new), self._outbox.append(db, old, new)

        return self._write(step)

    # -- reads -------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        try:
            row = self._db().execute(SELECT_ONE, (task_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        return None if row is None else row_to_task(row)

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        after = None
        if query.cursor:
            after = decode_cursor(self._cursor_key, query.cursor, query.owner)
        sql, params = list_statement(query, now, after)
        try:
            rows = self._db().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        items = [row_to_task(row) for row in rows[: query.limit]]
        cursor = None
        if len(rows) > query.limit:
            last = items[-1]
            cursor = encode_cursor(
                self._cursor_key, query.owner, time_text(last.created_at), last.id
            )
        return Page(items=items, next_cursor=cursor)

    def due(self, now: datetime, limit: int) -> list[Task]:
        # Each index gives its earliest `limit` due tasks; a task among the `limit` earliest
        # overall is among the earliest of the index holding its own earlier due time.
        now_us = epoch_us(now)
        try:
            db = self._db()
            rows = db.execute(DUE_BY_DEADLINE, (now_us, limit)).fetchall()
            rows += db.execute(DUE_BY_HEARTBEAT, (now_us, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc
        tasks = {task.id: task for task in map(row_to_task, rows)}
        return sorted(tasks.values(), key=lambda task: task.due_at or now)[:limit]

    def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` tasks expired at ``now`` (``expires_at <= now``: reads
        already skip them) in one statement, atomic on its own; returns how many. Their
        outbox rows stay: an event carries what it says, and is delivered all the same."""
        try:
            return int(self._db().execute(PURGE_EXPIRED, (time_text(now), limit)).rowcount)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite write failed: {exc}") from exc

    # -- outbox ------------------------------------------------------------------------------
    def pending(self, limit: int) -> list[OutboxEntry]:
        try:
            return self._outbox.pending(self._db(), limit)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc

    def mark_delivered(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        db = self._db()
        try:
            self._outbox.delete(db, positions)
        except sqlite3.Error as exc:
            if self._group_commit.is_open and not db.in_transaction:
                # SQLite ended the batch's transaction (disk full, I/O error): what the batch
                # wrote before is gone, so the batch must fail as a whole.
                self._group_commit.fail(db, exc)
            raise StorageError(f"SQLite write failed: {exc}") from exc

    @property
    def undelivered(self) -> list[OutboxEntry]:
        """Every entry not yet delivered, oldest first."""
        count = self._db().execute("SELECT count(*) FROM outbox").fetchone()[0]
        return self.pending(int(count))
