"""In-memory adapters: real, thread-safe, shipped for tests and for embedding.

The repository keeps the same guarantees as the databases: each write is atomic under one
lock, guarded by the domain's :class:`Guard`, and appends the events of
``events_for_change`` to its outbox in the same step. The bus delivers to subscribers chosen
by detail-type and task type.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from heapq import heappop, heappush
from itertools import islice
from operator import itemgetter
from time import time_ns
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

from taskmanager.adapters.outbound import trusted_event
from taskmanager.domain.errors import InvalidCursorError, PublishError
from taskmanager.domain.events import events_for_change
from taskmanager.domain.model import Task, apply_change, format_time, guard_holds, parse_time
from taskmanager.domain.ports import OutboxEntry, Page, WriteResult

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import ListQuery

logger = logging.getLogger("taskmanager.bus")


class SystemClock:
    """The machine's clock, in UTC."""

    #: ``datetime.now(UTC)`` bound once: a reading is one C call, with no Python frame.
    now: Callable[[], datetime] = staticmethod(partial(datetime.now, UTC))


class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


class UuidIdFactory:
    """Version 7 UUIDs (RFC 9562): the creation time in milliseconds, then 74 random bits
    from the OS's CSPRNG, made 256 at a time.

    Time-ordered, so an index on ids takes each new one near its end: SQLite's primary key
    then writes to the same leaf page for a whole batch of submits, where random (version 4)
    ids dirtied one page per task. Nothing reads meaning into an id; its time is the
    ``created_at`` the task shows anyway.

    ``str(uuid.uuid4())`` makes one system call and builds a ``UUID`` object per id, which
    costs more than a whole state change; here the random parts come 256 at a time and an
    id is its time and one of them. They are handed out by ``list.pop``, which is atomic;
    the lock only guards a refill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tails: list[tuple[str, str, str]] = []
        #: The last millisecond an id was made in, and its two groups (``xxxxxxxx-xxxx``).
        self._stamp = (0, "")

    def new_id(self) -> str:
        now = time_ns() // 1_000_000
        millisecond, stamp = self._stamp  # one tuple: threads see a consistent pair
        if now != millisecond:
            digits = f"{now:012x}"
            stamp = f"{digits[:8]}-{digits[8:]}"
            self._stamp = (now, stamp)
        third, fourth, fifth = self._tail()
        return f"{stamp}-{third}-{fourth}-{fifth}"

    def _tail(self) -> tuple[str, str, str]:
        tails = self._tails
        if tails:
            try:
                return tails.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
        with self._lock:
            if not self._tails:
                self._tails = _random_uuid_tails()
            return self._tails.pop()


#: Ids made per refill of a ``UuidIdFactory``.
_UUID_BATCH: Final = 256
#: Per 16 random bytes: the version nibble cleared then set to 7 (byte 6), the variant's top
#: two bits cleared then set to ``10`` (byte 8), as RFC 9562 asks; every other bit stays
#: random. The first six bytes give way to the time when an id is made.
_KEEP: Final = int.from_bytes((b"\xff" * 6 + b"\x0f\xff\x3f" + b"\xff" * 7) * _UUID_BATCH)
_SET: Final = int.from_bytes((b"\x00" * 6 + b"\x70\x00\x80" + b"\x00" * 7) * _UUID_BATCH)
#: The last three dash-separated groups of each 32 hex digits (the first 12 are the time's).
_UUID_TAIL: Final = re.compile(r".{12}(.{4})(.{4})(.{12})")


def _random_uuid_tails() -> list[tuple[str, str, str]]:
    """A batch of the last three groups of version 7 UUIDs (``7xxx``, ``yxxx``, 12 digits).
    The version and variant bits of the whole batch are set with one integer mask and the
    text is cut into groups by one regex scan, with no Python step per id."""
    size = 16 * _UUID_BATCH
    random = int.from_bytes(os.urandom(size))
    return _UUID_TAIL.findall(((random & _KEEP) | _SET).to_bytes(size).hex())


def _sort_key(task: Task) -> tuple[str, str]:
    return (format_time(task.created_at), task.id)


def encode_cursor(task: Task) -> str:
    created, task_id = _sort_key(task)
    raw = json.dumps([created, task_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        if not isinstance(decoded, list):
            raise InvalidCursorError
        created, task_id = decoded
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursorError from exc
    if not isinstance(created, str) or not isinstance(task_id, str) or not task_id:
        raise InvalidCursorError
    try:
        well_formed = format_time(parse_time(created)) == created
    except ValueError:
        well_formed = False
    if not well_formed:
        raise InvalidCursorError
    return created, task_id


class InMemoryTaskRepository:
    """Tasks in a dict; the outbox in a list; one lock makes each write atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._outbox: dict[int, OutboxEntry] = {}  # undelivered entries, in commit order
        self._next_position = 1
        #: (due time, task id) of each write of an open task, earliest first: the sweeper's
        #: index. An entry whose task has since moved its due time, ended or gone is stale
        #: and is dropped when it comes due, so ``due`` reads the due tasks (and the stale
        #: entries), never every open task.
        self._due: list[tuple[datetime, str]] = []

    # -- TaskRepository --
    # The writes and the outbox drain call the lock's acquire and release themselves: a
    # ``with`` block looks both up as special methods and passes ``__exit__`` three arguments,
    # which costs as much as a guard check and a change together on every write.
    def create(self, task: Task, now: datetime) -> WriteResult:
        task_id = task.id
        lock = self._lock
        lock.acquire()
        try:
            tasks = self._tasks
            existing = tasks.get(task_id)
            if existing is not None and not existing.is_expired(now):
                return WriteResult(applied=False, task=existing)
            tasks[task_id] = task
            self._append_events(None, task)
            self._index_due(task)
            return WriteResult(applied=True, task=task)
        finally:
            lock.release()

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def _index_due(self, task: Task, before: Task | None = None) -> None:
        """Note when the sweeper must look at ``task`` (the caller holds the lock); nothing
        when its due time is the one ``before`` the write already noted."""
        due_at = task.due_at
        if due_at is not None and (before is None or before.due_at != due_at):
            heappush(self._due, (due_at, task.id))

    def _append_events(self, old: Task | None, new: Task) -> None:
        """The committed change's events, in the outbox (the caller holds the lock)."""
        for event in events_for_change(old, new, trusted_event):
            position = self._next_position
            self._outbox[position] = OutboxEntry(position=position, event=event)
            self._next_position = position + 1

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        task_id = guard.task_id
        lock = self._lock
        lock.acquire()
        try:
            tasks = self._tasks
            current = tasks.get(task_id)
            if current is None or not guard_holds(current, guard):
                return WriteResult(applied=False, task=current)
            tasks[task_id] = new = apply_change(current, change)
            self._append_events(current, new)
            self._index_due(new, current)
            return WriteResult(applied=True, task=new)
        finally:
            lock.release()

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        after = decode_cursor(query.cursor) if query.cursor else None
        with self._lock:
            keyed = [
                (_sort_key(t), t)
                for t in self._tasks.values()
                if t.owner == query.owner
                and not t.is_expired(now)
                and (query.status is None or t.status == query.status)
                and (query.type is None or t.type == query.type)
            ]
        # Oldest first; the page is the newest ``limit`` before the cursor, found by a binary
        # search, so a deep page costs what the first does.
        keyed.sort(key=itemgetter(0))
        end = len(keyed) if after is None else bisect_left(keyed, after, key=itemgetter(0))
        start = max(0, end - query.limit)
        items = [task for _, task in reversed(keyed[start:end])]
        return Page(items=items, next_cursor=encode_cursor(items[-1]) if start > 0 else None)

    def due(self, now: datetime, limit: int) -> list[Task]:
        found: dict[str, tuple[datetime, Task]] = {}
        with self._lock:
            heap, tasks = self._due, self._tasks
            while heap and heap[0][0] <= now and len(found) < limit:
                due_at, task_id = heappop(heap)
                task = tasks.get(task_id)
                if task is not None and task.due_at == due_at:
                    found[task_id] = (due_at, task)
            for task_id, (due_at, _) in found.items():  # due until a write changes them
                heappush(heap, (due_at, task_id))
        return [task for _, task in found.values()]

    def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` tasks expired at ``now``; returns how many (as SQLite's)."""
        with self._lock:
            expired = [t.id for t in self._tasks.values() if t.is_expired(now)][:limit]
            for task_id in expired:
                del self._tasks[task_id]
        return len(expired)

    # -- Outbox --
    def pending(self, limit: int) -> list[OutboxEntry]:
        lock = self._lock
        lock.acquire()
        try:
            return list(islice(self._outbox.values(), limit))
        finally:
            lock.release()

    def mark_delivered(self, positions: Sequence[int]) -> None:
        lock = self._lock
        lock.acquire()
        try:
            pop = self._outbox.pop
            for position in positions:
                pop(position, None)
        finally:
            lock.release()

    @property
    def undelivered(self) -> list[OutboxEntry]:
        """Every entry not yet delivered, oldest first."""
        with self._lock:
            return list(self._outbox.values())


Handler = Callable[["OutboundEvent"], None]
_Route: TypeAlias = tuple[str, str]


class Subscription(NamedTuple):
    """One subscriber and its filters (a named tuple: a dataclass compiles several functions
    on every cold start that imports this module). Unsubscribing compares by identity."""

    handler: Handler
    detail_types: frozenset[str] | None
    task_types: frozenset[str] | None

    def matches(self, event: OutboundEvent) -> bool:
        return (self.detail_types is None or event.DETAIL_TYPE in self.detail_types) and (
            self.task_types is None or event.type in self.task_types
        )


class InMemoryEventBus:
    """An event publisher that calls subscribers synchronously, like a rule with targets.

    A subscriber that raises makes ``publish`` raise ``PublishError`` naming that event, so
    the outbox keeps it and delivers it again (at least once). With ``record=True`` (tests,
    embedding) every published event is also kept in ``published``; a long-running server
    passes ``record=False`` so that nothing is kept after delivery."""

    def __init__(self, *, record: bool = True) -> None:
        #: The subscriptions, and the handlers of each (detail-type, task type) found so far:
        #: replaced together, read together (publishing never blocks on subscribing).
        self._routing: tuple[tuple[Subscription, ...], dict[_Route, tuple[Handler, ...]]] = (
            (),
            {},
        )
        self._lock = threading.Lock()
        self._record = record
        self.published: list[OutboundEvent] = []

    def subscribe(
        self,
        handler: Handler,
        *,
        detail_types: Sequence[str] | None = None,
        task_types: Sequence[str] | None = None,
    ) -> Subscription:
        sub = Subscription(
            handler,
            frozenset(detail_types) if detail_types is not None else None,
            frozenset(task_types) if task_types is not None else None,
        )
        with self._lock:
            self._routing = ((*self._routing[0], sub), {})
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._routing = (tuple(s for s in self._routing[0] if s is not sub), {})

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        subs, routes = self._routing
        failed: list[str] = []
        errors: list[str] = []
        for event in events:
            if self._record:
                self.published.append(event)
            key = (event.DETAIL_TYPE, event.type)
            handlers = routes.get(key)
            if handlers is None:
                handlers = routes[key] = tuple(s.handler for s in subs if s.matches(event))
            for handler in handlers:
                try:
                    handler(event)
                except Exception as exc:
                    logger.warning("delivery of %s failed: %r", event.event_id, exc)
                    failed.append(event.event_id)
                    errors.append(f"{event.event_id}: {exc!r}")
                    break
        if failed:
            raise PublishError(failed, "; ".join(errors))
