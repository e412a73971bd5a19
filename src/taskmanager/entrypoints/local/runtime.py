"""What runs beside the HTTP server in `taskmanager serve`.

- the store, wrapped so that every committed write wakes the outbox dispatcher at once;
- the outbox dispatcher thread: committed events -> the in-process bus (at least once);
- group commit (the HTTP server's writes): the thread that commits a batch delivers its
  events itself, right after the commit, when no older event waits; their rows are deleted
  in the next batch's transaction. Under load the dispatcher thread then has nothing to do,
  and the server's one busy thread neither waits for it nor shares the interpreter with it;
- the worker pool: processors run here when the bus hands them a ``TaskCreated``;
- the sweeper thread: fails overdue tasks (``TIMEOUT``, ``HEARTBEAT_TIMEOUT``);
- the checkpointer thread (SQLite): copies the write-ahead log into the database file, so
  that no request waits for a checkpoint;
- the change hub: every delivered event reaches the live streams (SSE) watching its task.

Shutdown runs in two steps: ``begin_shutdown`` (on the signal: close live streams, refuse
new work) and ``shutdown`` (once the HTTP server stopped accepting: let running processors
finish up to the grace period, stop the sweeper, flush the outbox).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from taskmanager.adapters.memory import InMemoryEventBus, SystemClock, UuidIdFactory
from taskmanager.domain.errors import PublishError, StorageError, TaskManagerError
from taskmanager.domain.events import TaskCreated, event_for
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import DEFAULT_POLICY, Policy, dispatch_outbox, expire_overdue
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.local.hub import ChangeHub

if TYPE_CHECKING:
    from datetime import datetime

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Change, Guard, Task
    from taskmanager.domain.ports import (
        Clock,
        IdFactory,
        OutboxEntry,
        Page,
        WriteResult,
    )

logger = logging.getLogger("taskmanager.local")

#: At start, how many pending outbox entries and CREATED tasks the recovery looks at.
_RECOVERY_SCAN_LIMIT = 100_000

#: The owner of every task on one machine (DESIGN §5: "locally the owner is `local`").
LOCAL_OWNER = "local"

#: Runs one delivered ``TaskCreated`` to the end (a processor bound to its transport).
Job = Callable[[TaskCreated], None]


class Store(Protocol):
    """A task repository that keeps its own outbox (SQLite; memory in tests)."""

    def create(self, task: Task, now: datetime) -> WriteResult: ...
    def get(self, task_id: str) -> Task | None: ...
    def apply(self, guard: Guard, change: Change) -> WriteResult: ...
    def list_page(self, query: ListQuery, now: datetime) -> Page: ...
    def due(self, now: datetime, limit: int) -> list[Task]: ...
    def pending(self, limit: int) -> list[OutboxEntry]: ...
    def mark_delivered(self, positions: Sequence[int]) -> None: ...


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

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.inner.pending(limit)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        with self._writing:
            self.inner.mark_delivered(positions)


class PoolClosedError(TaskManagerError):
    """The worker pool is shutting down; the event stays in the outbox for the next start."""

    code = "SHUTTING_DOWN"


class WorkerPool:
    """Daemon worker threads fed from one queue.

    Daemon threads, so that a processor still running after the grace period does not keep
    the process alive; its task stays RUNNING and the sweeper of the next start times it
    out (after its deadline or heartbeat)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the worker pool needs at least one worker")
        self.size = size
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        self._active = 0

    def start(self) -> None:
        for number in range(self.size):
            thread = threading.Thread(
                target=self._work, name=f"taskmanager-worker-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosedError("the worker pool is shutting down")
            self._jobs.put(job)

    @property
    def active(self) -> int:
        return self._active

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                if self._closed:  # queued but not started when shutdown began: left alone
                    continue
                self._active += 1
            try:
                job()
            except Exception:
                logger.exception("a processor raised outside its task")
            finally:
                with self._lock:
                    self._active -= 1

    def close(self, grace_seconds: float) -> int:
        """Start no more jobs; wait up to ``grace_seconds`` for running ones.

        Returns how many were still running when the grace period ended."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + grace_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    workers: int = 4
    grace_seconds: float = 10.0
    sweep_interval: float = 1.0
    #: How often the write-ahead log is copied into the database file, by a thread of its
    #: own (for a store that offers ``checkpoint``), so that no write waits for it.
    checkpoint_interval: float = 0.5
    #: A log larger than this (pages of 4 KiB) is caught up with writers held back.
    checkpoint_pages: int = 8192
    #: The dispatcher is woken by each write; this poll only bounds the retry of a failed
    #: delivery (and picks up writes made by another process on the same file).
    dispatch_interval: float = 0.5
    dispatch_batch: int = 100
    #: Under load, how long the dispatcher lets writes gather into one round (seconds):
    #: each round's delete of delivered rows is a commit that holds the writer lock, so
    #: fewer, larger rounds leave the API's writes more of it.
    dispatch_gather: float = 0.02
    #: A round that delivered at least this many events means the server is busy (a group
    #: commit of several submits); one task's lifecycle makes rounds of one to three.
    dispatch_busy_events: int = 8
    policy: Policy = DEFAULT_POLICY
    owner: str = LOCAL_OWNER


@dataclass
class _Loop:
    """A background thread that calls ``step`` whenever woken or every ``interval``."""

    name: str
    step: Callable[[], Any]
    interval: float
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            if self.stop.is_set():
                return
            try:
                self.step()
            except Exception:
                logger.exception("%s failed; retrying in %.1f s", self.name, self.interval)

    def halt(self, timeout: float) -> None:
        self.stop.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)


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
    """The outbox as a deliverer of the runtime reads it, with the runtime's ``_relay`` lock
    held. Rows of events delivered at their group commit are not delivered again: the
    dispatcher thread deletes them; a committing thread (``deferred``) leaves them to the
    next batch, as it does with what it delivers itself. ``committed``: the entries a group
    commit just committed, handed out as they are instead of read back. What is delivered
    moves the runtime's ``_delivered_upto`` on."""

    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        deferred: bool = False,
        committed: list[OutboxEntry] | None = None,
    ) -> None:
        self._runtime = runtime
        self._deferred = deferred or committed is not None
        self._committed = committed
        self._offered: list[OutboxEntry] = []

    def pending(self, limit: int) -> list[OutboxEntry]:
        runtime = self._runtime
        if self._committed is not None:
            self._offered, self._committed = self._committed[:limit], self._committed[limit:]
            return self._offered
        while True:
            skip = runtime._delivered_rows.snapshot()
            entries = runtime.repo.pending(limit + len(skip) if self._deferred else limit)
            done = [entry.position for entry in entries if entry.position in skip]
            if done and not self._deferred:
                runtime.repo.mark_delivered(done)
                runtime._delivered_rows.forget(done)
                continue  # read again: the limit counts only rows to deliver
            offered = [entry for entry in entries if entry.position not in skip][:limit]
            self._offered = offered
            return offered

    def mark_delivered(self, positions: Sequence[int]) -> None:
        runtime = self._runtime
        if self._deferred:
            runtime._delivered_rows.add(positions)
        else:
            runtime.repo.mark_delivered(positions)
        offered, self._offered = self._offered, []
        if offered:
            delivered = set(positions)
            failed = {e.event.event_id for e in offered if e.position not in delivered}
            runtime._delivered_upto = _delivered_upto(offered, failed)


class LocalRuntime:
    """The store, the bus, the dispatcher, the worker pool, the sweeper and the hub."""

    def __init__(
        self,
        store: Store,
        config: RuntimeConfig = RuntimeConfig(),
        *,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.ids: IdFactory = ids or UuidIdFactory()
        self.store = store
        self.repo = NotifyingStore(store, self._wake_dispatcher)
        self.bus = InMemoryEventBus(record=False)
        self.hub = ChangeHub()
        self.pool = WorkerPool(config.workers)
        self.task_types: tuple[str, ...] = ()
        self.stopping = threading.Event()
        self._busy = False
        self._dispatcher = _Loop(
            "taskmanager-dispatcher", self._dispatch_when_woken, config.dispatch_interval
        )
        self._sweeper = _Loop("taskmanager-sweeper", self._sweep, config.sweep_interval)
        self._checkpointer = (
            _Loop("taskmanager-checkpointer", self._checkpoint, config.checkpoint_interval)
            if callable(getattr(store, "checkpoint", None))
            else None
        )
        # Delivery goes in outbox order, by one deliverer at a time: the dispatcher thread,
        # or the thread that just committed a group commit (see commit_batch).
        self._relay = threading.Lock()
        #: Every outbox position up to this one is delivered (guarded by ``_relay``).
        self._delivered_upto = 0
        self._delivered_rows = _DeliveredRows()
        self._deleting: list[int] = []  # by the open batch's transaction
        self.bus.subscribe(self.hub.deliver)
        self._deps = Dependencies(self.repo, self.clock, self.ids, config.policy, self.bus)

    def add_job(self, task_type: str, job: Job) -> None:
        """Run ``job`` in the worker pool for each ``TaskCreated`` of ``task_type``."""

        def enqueue(event: OutboundEvent) -> None:
            if isinstance(event, TaskCreated):
                self.pool.submit(lambda: job(event))

        self.bus.subscribe(enqueue, detail_types=[TaskCreated.DETAIL_TYPE], task_types=[task_type])
        self.task_types = tuple(sorted({*self.task_types, task_type}))

    def deps(self) -> Dependencies:
        """What the API routes need, for ``create_app``'s dependency provider."""
        return self._deps

    def _wake_dispatcher(self) -> None:
        self._dispatcher.wake.set()

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
                self._wake_dispatcher()

    def _deliver_committed(self, committed: list[OutboxEntry]) -> None:
        with self._relay:  # waits for a dispatcher round (rare under load: it is not woken)
            if committed[0].position == self._delivered_upto + 1:
                # Nothing older waits: deliver the batch as it is, no need to read it back.
                outbox = _RelayOutbox(self, committed=committed)
                try:
                    dispatch_outbox(outbox, self.bus, limit=len(committed))
                except PublishError as exc:
                    logger.warning("outbox: %s; kept for the next round", exc.message)
                    self._wake_dispatcher()
                return
        # Older events wait (a processor's report not yet delivered, one that failed, rows
        # of another process): deliver everything pending, in order, as the dispatcher does.
        self._dispatch(deferred=True)

    # -- background steps --
    def _dispatch_when_woken(self) -> int:
        """One dispatcher round. When the last round found many events the server is busy:
        wait a moment first, so that one round (one read, one write) carries many events
        instead of one round per commit competing with the requests for the writer lock."""
        if self._busy and self.config.dispatch_gather > 0:
            time.sleep(self.config.dispatch_gather)
        delivered = self._dispatch()
        self._busy = delivered >= self.config.dispatch_busy_events
        return delivered

    def _dispatch(self, *, deferred: bool = False) -> int:
        """Deliver everything pending; returns how many events were delivered. ``deferred``:
        on the thread of a group commit, whose next batch deletes the delivered rows."""
        delivered = 0
        outbox = _RelayOutbox(self, deferred=deferred)
        while True:
            try:
                with self._relay:
                    count = dispatch_outbox(outbox, self.bus, limit=self.config.dispatch_batch)
            except PublishError as exc:
                logger.warning("outbox: %s; kept for the next round", exc.message)
                return delivered
            delivered += count
            if count < self.config.dispatch_batch:
                return delivered

    def _checkpoint(self) -> None:
        """Copy the log into the file while writes go on. Once the log holds more than
        ``checkpoint_pages``, copy the rest with this process's writers held back for that
        moment: a checkpoint that never catches up with the writers would never let SQLite
        start the log over, and the log would grow for as long as the load lasts."""
        checkpoint = self.store.checkpoint  # type: ignore[attr-defined]
        if checkpoint() > self.config.checkpoint_pages:
            with self.repo.writes_paused():
                checkpoint()

    def _sweep(self) -> None:
        for task in expire_overdue(repo=self.repo, clock=self.clock, policy=self.config.policy):
            logger.info("task %s failed: %s", task.id, task.error.code if task.error else "")

    # -- lifecycle --
    def start(self) -> None:
        self.pool.start()
        recovered = self._redeliver_created()
        if recovered:
            logger.info("handed %d task(s) still CREATED to their processors again", recovered)
        self._dispatcher.start()
        self._sweeper.start()
        if self._checkpointer is not None:
            self._checkpointer.start()
        self._wake_dispatcher()  # deliver what a previous run left undelivered

    def _redeliver_created(self) -> int:
        """Hand every task still CREATED whose ``TaskCreated`` counts as delivered to its
        processors again.

        Delivering a ``TaskCreated`` locally means queueing a job in memory; a crash
        (``kill -9``, power loss) empties that queue after the outbox marked the event
        delivered, and the task would wait for its deadline. At start, such tasks are the
        CREATED ones with no pending ``TaskCreated`` (those the dispatcher delivers anyway).
        At least once, as in AWS: the processor SDK skips a task that has moved on."""
        if not self.task_types:
            return 0
        pending = {entry.event.event_id for entry in self.store.pending(_RECOVERY_SCAN_LIMIT)}
        now, cursor, count = self.clock.now(), None, 0
        for _ in range(_RECOVERY_SCAN_LIMIT // 100):
            page = self.store.list_page(
                ListQuery(
                    owner=self.config.owner, limit=100, status=TaskStatus.CREATED, cursor=cursor
                ),
                now,
            )
            created = [
                event_for(task)
                for task in page.items
                if task.type in self.task_types and f"{task.id}:{task.version}" not in pending
            ]
            if created:
                self.bus.publish(created)
                count += len(created)
            cursor = page.next_cursor
            if cursor is None:
                break
        return count

    def begin_shutdown(self) -> None:
        """On the signal: live streams end, no new processor job starts after shutdown."""
        if not self.stopping.is_set():
            self.stopping.set()
            self.hub.close_all()

    def shutdown(self) -> None:
        """Let running processors finish (up to the grace period), then flush the outbox."""
        self.begin_shutdown()
        self._sweeper.halt(timeout=5)
        running = self.pool.close(self.config.grace_seconds)
        if running:
            logger.warning(
                "%d processor(s) still running after %.0f s; their tasks stay RUNNING until "
                "their deadline or heartbeat passes",
                running,
                self.config.grace_seconds,
            )
        self._dispatcher.halt(timeout=5)
        flushed = self._dispatch()
        logger.info("outbox flushed (%d event(s) delivered at shutdown)", flushed)
        if self._checkpointer is not None:
            self._checkpointer.halt(timeout=5)
        close = getattr(self.store, "close", None)
        if callable(close):
            close()
