"""Ports: what the use cases need from the outside world, in domain types only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Change, Guard, Task, TaskStatus


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class IdFactory(Protocol):
    def new_id(self) -> str:
        """A fresh UUID string for a task submitted without an idempotency key."""
        ...


class ListQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One page request of ``list_page``."""

    owner: str
    limit: int
    status: TaskStatus | None = None
    type: str | None = None
    cursor: str | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Task]
    next_cursor: str | None


class WriteResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a guarded write.

    ``applied`` is True when the guard held and ``task`` is the task after the change.
    Otherwise ``task`` is the task as stored when the guard failed (None if there is none),
    so the caller classifies the refusal without reading again.
    """

    applied: bool
    task: Task | None


@runtime_checkable
class TaskRepository(Protocol):
    """Stores tasks; every write is one atomic, guarded step.

    Where the adapter keeps an outbox, each committed write appends exactly the events
    ``events_for_change(old, new)`` in the same transaction.
    """

    def create(self, task: Task, now: datetime) -> WriteResult:
        """Insert ``task`` unless a live task (not expired at ``now``) has its id.

        ``applied=False`` returns that existing task.
        """
        ...

    def get(self, task_id: str) -> Task | None:
        """The stored task, whoever owns it (the use case checks owner and expiry)."""
        ...

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        """Apply ``change`` if and only if ``guard`` holds, atomically."""
        ...

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        """The owner's live tasks, newest first, filtered, one page at a time.

        A cursor this adapter did not issue raises ``InvalidCursorError``.
        """
        ...

    def due(self, now: datetime, limit: int) -> list[Task]:
        """Open tasks whose deadline, heartbeat or start timeout is due at ``now`` (found
        by index)."""
        ...


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    event: OutboundEvent


class Outbox(Protocol):
    """Events committed with their changes, waiting to be delivered (at least once)."""

    def pending(self, limit: int) -> list[OutboxEntry]:
        """The oldest undelivered entries, in commit order."""
        ...

    def mark_delivered(self, positions: Sequence[int]) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[OutboundEvent]) -> None:
        """Deliver every event or raise ``PublishError`` naming those not delivered."""
        ...
