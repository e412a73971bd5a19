"""Delivery of the outbox to the in-process bus: every committed event at least once, in
outbox order, by one deliverer at a time.

- The dispatcher thread, woken by every committed write, delivers everything pending (its
  poll only bounds the retry of a failed delivery and picks up other processes' writes).
- Group commit (the HTTP server's writes): the thread that commits a batch delivers its
  events itself, right after the commit, when no older event waits; their rows are deleted
  in the next batch's transaction. Under load the dispatcher thread then has nothing to do,
  and the server's one busy thread neither waits for it nor shares the interpreter with it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from taskmanager.domain.errors import PublishError, StorageError
from taskmanager.domain.services import dispatch_outbox
from taskmanager.entrypoints.local.threads import Loop

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from taskmanager.domain.ports import EventPublisher, OutboxEntry
    from taskmanager.entrypoints.local.runtime import RuntimeConfig
    from taskmanager.entrypoints.local.store import NotifyingStore

logger = logging.getLogger("taskmanager.local")


class OutboxRelay:
    """The dispatcher thread and the group commit's own delivery, taking turns."""

    def __init__(self, repo: NotifyingStore, bus: EventPublisher, config: RuntimeConfig) -> None:
        self.repo = repo
        self.bus = bus
        self.config = config
        self._dispatcher = Loop(
            "taskmanager-dispatcher", self._dispatch_when_woken, config.dispatch_interval
        )
        self._busy = False
        # Delivery goes in outbox order, by one deliverer at a time: the dispatcher thread,
        # or the thread that just committed a group commit (see commit_batch).
        self._lock = threading.Lock()
        #: Every outbox position up to this one is delivered (guarded by ``_lock``).
        self._delivered_upto = 0
        self._delivered_rows = _DeliveredRows()
        self._deleting: list[int] = []  # by the open batch's transaction

    def start(self) -> None:
        """Start the dispatcher thread."""
        self._dispatcher.start()

    def wake(self) -> None:
        """Have the dispatcher thread deliver what is pending now."""
        self._dispatcher.wake.set()

    def halt(self, timeout: float) -> None:
        """Stop the dispatcher thread (:meth:`dispatch` still delivers on the caller's)."""
        self._dispatcher.halt(timeout)

    # -- group commit --
    def begin_batch(self) -> None:
        """Group commit: the calling thread's writes share one transaction until
        :meth:`commit_batch`. The transaction also deletes the outbox rows of events that
        earlier batches delivered at their commit."""
        self.repo.begin_batch()
        positions = sorted(self._delivered_rows.snapshot())
        if positions:
            try:
                self.repo.mark_delivered(positions)
            except StorageError as exc:  # delivered all the same; deleted another time
                logger.warning("outbox: %s; delivered rows kept for later", exc.message)
            else:
                self._deleting = positions

    def commit_batch(self) -> None:
        """Commit the batch, then deliver its events on this thread: as they are when every
        older event is delivered, else with everything pending, in outbox order. Under load
        the dispatcher thread is then never woken: no read and delete of its own per round,
        no thread switches. Raises ``StorageError`` when the batch failed (nothing of it
        was kept, nothing is delivered)."""
        deleting, self._deleting = self._deleting, []
        committed = self.repo.commit_batch()
        self._delivered_rows.forget(deleting)
        if committed:
            try:
                self._deliver_committed(committed)
            except Exception:  # committed all the same: the dispatcher delivers them
                logger.exception("delivering a group commit's events failed")
                self.wake()

    def _deliver_committed(self, committed: list[OutboxEntry]) -> None:
        with self._lock:  # waits for a dispatcher round (rare under load: it is not woken)
            if committed[0].position == self._delivered_upto + 1:
                # Nothing older waits: deliver the batch as it is, no need to read it back.
                outbox = _RelayOutbox(self, committed=committed)
                try:
                    dispatch_outbox(outbox, self.bus, limit=len(committed))
                except PublishError as exc:
                    logger.warning("outbox: %s; kept for the next round", exc.message)
                    self.wake()
                return
        # Older events wait (a processor's report not yet delivered, one that failed, rows
        # of another process): deliver everything pending, in order, as the dispatcher does.
        self.dispatch(deferred=True)

    # -- the dispatcher --
    def _dispatch_when_woken(self) -> int:
        """One dispatcher round. When the last round found many events the server is busy:
        wait a moment first, so that one round (one read, one write) carries many events
        instead of one round per commit competing with the requests for the writer lock."""
        if self._busy and self.config.dispatch_gather > 0:
            time.sleep(self.config.dispatch_gather)
        delivered = self.dispatch()
        self._busy = delivered >= self.config.dispatch_busy_events
        return delivered

    def dispatch(self, *, deferred: bool = False) -> int:
        """Deliver everything pending; returns how many events were delivered. ``deferred``:
        on the thread of a group commit, whose next batch deletes the delivered rows."""
        delivered = 0
        outbox = _RelayOutbox(self, deferred=deferred)
        while True:
            try:
                with self._lock:
                    count = dispatch_outbox(outbox, self.bus, limit=self.config.dispatch_batch)
            except PublishError as exc:
                logger.warning("outbox: %s; kept for the next round", exc.message)
                return delivered
            delivered += count
            if count < self.config.dispatch_batch:
                return delivered


def _delivered_upto(entries: Sequence[OutboxEntry], failed: set[str]) -> int:
    """The last position of ``entries`` (in order) before the first that failed."""
    for entry in entries:
        if entry.event.event_id in failed:
            return entry.position - 1
    return entries[-1].position


class _DeliveredRows:
    """Outbox positions whose events are delivered but whose rows are not yet deleted (read
    and changed from any thread)."""

    def __init__(self) -> None:
        self._positions: set[int] = set()
        self._lock = threading.Lock()

    def add(self, positions: Iterable[int]) -> None:
        with self._lock:
            self._positions.update(positions)

    def forget(self, positions: Iterable[int]) -> None:
        """These rows are deleted."""
        with self._lock:
            self._positions.difference_update(positions)

    def snapshot(self) -> set[int]:
        with self._lock:
            return set(self._positions)


class _RelayOutbox:
    """The outbox as a deliverer of the relay reads it, with the relay's lock held. Rows of
    events delivered at their group commit are not delivered again: the dispatcher thread
    deletes them; a committing thread (``deferred``) leaves them to the next batch, as it
    does with what it delivers itself. ``committed``: the entries a group commit just
    committed, handed out as they are instead of read back. What is delivered moves the
    relay's ``_delivered_upto`` on."""

    def __init__(
        self,
        relay: OutboxRelay,
        *,
        deferred: bool = False,
        committed: list[OutboxEntry] | None = None,
    ) -> None:
        self._relay = relay
        self._deferred = deferred or committed is not None
        self._committed = committed
        self._offered: list[OutboxEntry] = []

    def pending(self, limit: int) -> list[OutboxEntry]:
        relay = self._relay
        if self._committed is not None:
            self._offered, self._committed = self._committed[:limit], self._committed[limit:]
            return self._offered
        while True:
            skip = relay._delivered_rows.snapshot()
            entries = relay.repo.pending(limit + len(skip) if self._deferred else limit)
            done = [entry.position for entry in entries if entry.position in skip]
            if done and not self._deferred:
                relay.repo.mark_delivered(done)
                relay._delivered_rows.forget(done)
                continue  # read again: the limit counts only rows to deliver
            offered = [entry for entry in entries if entry.position not in skip][:limit]
            self._offered = offered
            return offered

    def mark_delivered(self, positions: Sequence[int]) -> None:
        relay = self._relay
        if self._deferred:
            relay._delivered_rows.add(positions)
        else:
            relay.repo.mark_delivered(positions)
        offered, self._offered = self._offered, []
        if offered:
            delivered = set(positions)
            failed = {e.event.event_id for e in offered if e.position not in delivered}
            relay._delivered_upto = _delivered_upto(offered, failed)
