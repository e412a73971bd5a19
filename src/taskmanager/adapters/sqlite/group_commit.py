"""Write transactions: each write in a transaction of its own, or many in one group commit.

A write takes the write lock up front (``BEGIN IMMEDIATE``), so no transaction fails half way
on an upgrade from a read lock. Group commit: between :meth:`GroupCommit.begin` and
:meth:`GroupCommit.commit` the writes of one thread share one transaction, so one commit
(one sync of the log) serves them all. Nothing of a batch is durable before its commit, and
a batch commits whole or not at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING, TypeAlias

from taskmanager.domain.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.adapters.sqlite.connections import ThreadConnections
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.ports import WriteResult

#: Outbox rows a write appended: (position, event).
Appended: TypeAlias = list[tuple[int, "OutboundEvent"]]
#: What a write step returns: its result and the outbox rows it appended.
Written: TypeAlias = tuple["WriteResult", Appended]
#: One write: its statements on the connection it is given, inside a transaction.
WriteStep: TypeAlias = "Callable[[sqlite3.Connection], Written]"


class _Batch(threading.local):
    """This thread's group commit: whether one is open, what it appended, how it failed."""

    def __init__(self) -> None:
        self.open = False
        self.events: Appended = []
        self.failed: BaseException | None = None


class GroupCommit:
    """Runs a repository's writes, alone or in this thread's open batch."""

    def __init__(self, connections: ThreadConnections) -> None:
        self._connections = connections
        self._batch = _Batch()

    @property
    def is_open(self) -> bool:
        """Whether this thread has a batch open."""
        return self._batch.open

    def begin(self) -> None:
        """Open one transaction on this thread's connection; the writes this thread makes
        until :meth:`commit` join it.

        A write that fails before changing a row (its first statement refused, say) leaves
        the batch as it was. One that fails after changing rows cannot be undone alone (there
        is no savepoint per write), so the whole batch is rolled back at once, the writes
        after it in the batch are refused, and :meth:`commit` raises: every write of the
        batch fails, none half-written."""
        db = self._connections.get()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite write failed: {exc}") from exc
        batch = self._batch
        batch.open, batch.events, batch.failed = True, [], None

    def commit(self) -> Appended:
        """Commit the transaction :meth:`begin` opened (rolled back if that fails) and return
        the outbox rows the batch appended, in position order."""
        batch = self._batch
        batch.open = False
        appended, batch.events = batch.events, []
        failed, batch.failed = batch.failed, None
        db = self._connections.get()
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
        return appended

    def write(self, step: WriteStep) -> Written:
        """Run ``step`` in this thread's open batch, or else in a transaction of its own.
        Returns its result and the outbox rows it committed: none inside a batch, whose
        rows :meth:`commit` returns once they are committed."""
        db = self._connections.get()
        if self._batch.open:
            return self._write_in_batch(db, step), []
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
        return result, appended

    def _write_in_batch(self, db: sqlite3.Connection, step: WriteStep) -> WriteResult:
        batch = self._batch
        if batch.failed is not None:
            raise StorageError(
                "SQLite write failed: an earlier write of this group commit failed part way"
            ) from batch.failed
        changes = db.total_changes
        try:
            result, appended = step(db)
        except BaseException as exc:
            if db.total_changes != changes:  # rows of this write are in the transaction
                self.fail(db, exc)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"SQLite write failed: {exc}") from exc
            raise
        batch.events += appended
        return result

    def fail(self, db: sqlite3.Connection, exc: BaseException) -> None:
        """The open batch fails as a whole: its later writes are refused and :meth:`commit`
        raises. Rolled back now, so that nothing reads half-written rows meanwhile
        (:meth:`commit` tries again should this fail too)."""
        self._batch.failed, self._batch.events = exc, []
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
