"""The outbox table: the events of every committed change, until they are delivered.

A write inserts the events of its change (``events_for_change``) in its own transaction, so a
crash after ``COMMIT`` loses nothing: the dispatcher
(:func:`taskmanager.domain.services.dispatch_outbox`) reads what is pending, delivers it at
least once and deletes it. Positions come from ``AUTOINCREMENT``: never reused, and each
commit takes the positions that follow the last commit's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, cast

from taskmanager.adapters.outbound import trusted_event
from taskmanager.domain.events import (
    TaskCreated,
    TaskFailed,
    TaskRunning,
    TaskSuccessful,
    event_detail_json,
    events_for_change,
)
from taskmanager.domain.ports import OutboxEntry

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from taskmanager.adapters.sqlite.group_commit import Appended
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Task

_DETAIL_CLASSES: Final[dict[str, type[OutboundEvent]]] = {
    cls.DETAIL_TYPE: cls for cls in (TaskCreated, TaskRunning, TaskSuccessful, TaskFailed)
}
_INSERT_EVENT: Final = "INSERT INTO outbox (event_id, detail_type, detail) VALUES (?, ?, ?)"
_DELETE_EVENTS: Final = "DELETE FROM outbox WHERE position IN (SELECT value FROM json_each(?))"
#: Positions that follow one another: one seek, then along the rows.
_DELETE_EVENT_RANGE: Final = "DELETE FROM outbox WHERE position BETWEEN ? AND ?"
_SELECT_PENDING: Final = (
    "SELECT position, event_id, detail_type, detail FROM outbox ORDER BY position LIMIT ?"
)
#: How many committed events a repository keeps to hand out without parsing (then it forgets
#: them all and parses those rows): enough for a dispatcher in the same process to keep up.
_RECENT_EVENTS_MAX: Final = 1024


class Outbox:
    """One repository's view of the outbox: the rows, and the events it committed itself,
    which it hands out as they are instead of parsing their rows again."""

    def __init__(self) -> None:
        #: Events this repository committed and has not yet seen delivered, by position.
        #: Plain dict operations (atomic under the GIL) from every thread; bounded.
        self.recent_events: dict[int, OutboundEvent] = {}

    def append(self, db: sqlite3.Connection, old: Task | None, new: Task) -> Appended:
        """Insert the events of the change ``old`` -> ``new`` (in the caller's transaction)."""
        appended: Appended = []
        for event in events_for_change(old, new, trusted_event):
            cursor = db.execute(
                _INSERT_EVENT, (event.event_id, event.DETAIL_TYPE, event_detail_json(event))
            )
            appended.append((cast("int", cursor.lastrowid), event))
        return appended

    def remember(self, committed: Appended) -> None:
        """Committed: from now on these positions hold these events (``AUTOINCREMENT`` never
        reuses a committed position), so :meth:`pending` may hand them out without parsing."""
        recent = self.recent_events
        if len(recent) >= _RECENT_EVENTS_MAX:
            recent.clear()
        recent.update(committed)

    def pending(self, db: sqlite3.Connection, limit: int) -> list[OutboxEntry]:
        """The oldest ``limit`` rows not yet delivered, in position order."""
        rows = db.execute(_SELECT_PENDING, (limit,)).fetchall()
        recent = self.recent_events
        entries: list[OutboxEntry] = []
        for position, event_id, detail_type, detail in rows:
            # An event this object committed is used as it is; any other row (written by
            # another process, or before a restart) is parsed and validated from its text.
            event = recent.get(position)
            if event is None or event.event_id != event_id:
                event = _DETAIL_CLASSES[detail_type].model_validate_json(detail)
            entries.append(OutboxEntry(position=position, event=event))
        return entries

    def delete(self, db: sqlite3.Connection, positions: Sequence[int]) -> None:
        """Delete the delivered rows at ``positions`` (not empty) with one statement: atomic
        on its own (autocommit), or part of the open group commit's transaction. A run of
        positions is one range; others go through ``json_each``, which keeps the statement
        text (and its prepared form) fixed whatever their number."""
        numbers = sorted(set(map(int, positions)))
        first, last = numbers[0], numbers[-1]
        if last - first + 1 == len(numbers):  # every position between is one of them
            db.execute(_DELETE_EVENT_RANGE, (first, last))
        else:
            db.execute(_DELETE_EVENTS, ("[" + ",".join(map(str, numbers)) + "]",))
        recent = self.recent_events
        for position in numbers:
            recent.pop(position, None)
