"""The store of `taskmanager serve`, as the runtime uses it: a task repository that keeps
its own outbox (SQLite; memory in tests), wrapped so that every committed write wakes the
outbox dispatcher at once and writes of this process's threads take turns.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Protocol

from taskmanager.domain.ports import Outbox, TaskRepository

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from taskmanager.domain.model import Change, Guard, Task
    from taskmanager.domain.ports import ListQuery, OutboxEntry, Page, WriteResult


class Store(TaskRepository, Outbox, Protocol):
    """A task repository that keeps its own outbox (SQLite; memory in tests), and deletes
    its expired tasks when asked (on AWS, DynamoDB's TTL does)."""

    def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` tasks with ``expires_at <= now``; returns how many."""
        ...


class NotifyingStore:
    """The store, plus a call to ``on_commit`` after every committed write.

    The dispatcher then delivers a change within a millisecond instead of at its next poll.
    Writes from this process's threads take turns on a lock: SQLite would otherwise answer
    a second writer "busy" and make it sleep for milliseconds before trying again.

    Group commit (a store with ``begin_batch``/``commit_batch``, i.e. SQLite): between
    :meth:`begin_batch` and :meth:`commit_batch` the writes of the thread that began the batch
    share one transaction, and the lock stays with that thread. ``commit_batch`` returns the
    outbox entries the batch committed."""

    def __init__(self, inner: Store, on_commit: Callable[[], None]) -> None:
        self.inner = inner
        self._on_commit = on_commit
        self._writing = threading.RLock()
        self._batch_thread: int | None = None

    @contextlib.contextmanager
    def writes_paused(self) -> Iterator[None]:
        """No write of this process's threads starts meanwhile."""
        with self._writing:
            yield

    @property
    def batches(self) -> bool:
        """Whether the store can group writes into one transaction."""
        return callable(getattr(self.inner, "begin_batch", None))

    def begin_batch(self) -> None:
        self._writing.acquire()
        try:
            self.inner.begin_batch()  # type: ignore[attr-defined]
        except BaseException:
            self._writing.release()
            raise
        self._batch_thread = threading.get_ident()

    def commit_batch(self) -> list[OutboxEntry]:
        self._batch_thread = None
        try:
            committed: list[OutboxEntry] = self.inner.commit_batch()  # type: ignore[attr-defined]
        finally:
            self._writing.release()
        return committed

    def _written(self, written: WriteResult) -> WriteResult:
        # A batch's events are handed over by commit_batch, once committed.
        if written.applied and self._batch_thread != threading.get_ident():
            self._on_commit()
        return written

    def create(self, task: Task, now: datetime) -> WriteResult:
        with self._writing:
            written = self.inner.create(task, now)
        return self._written(written)

    def get(self, task_id: str) -> Task | None:
        return self.inner.get(task_id)

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        with self._writing:
            written = self.inner.apply(guard, change)
        return self._written(written)

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        return self.inner.list_page(query, now)

    def due(self, now: datetime, limit: int) -> list[Task]:
        return self.inner.due(now, limit)

    def purge_expired(self, now: datetime, limit: int) -> int:
        with self._writing:
            return self.inner.purge_expired(now, limit)

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.inner.pending(limit)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        with self._writing:
            self.inner.mark_delivered(positions)
